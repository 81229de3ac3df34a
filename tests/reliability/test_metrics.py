"""/metrics against the invariant checker: the pipeline as processes (two workers reporting
to ``dropgz web``), then the counters Prometheus would read equal what the checker counts."""

from __future__ import annotations

from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.compression.conftest import text_bytes
from tests.reliability.harness import (
    Pipeline,
    World,
    check_invariants,
    invariant_counts,
    wait_for,
)

TOKEN = "metrics-token-for-the-reliability-suite-0001"
POISON = '{"path": "not/absolute.txt"}'


def scrape(pipe: Pipeline) -> dict[str, float]:
    response = requests.get(f"{pipe.base_url}/metrics", timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    return {s.name + "".join(f"|{v}" for _, v in sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def test_metrics_equal_the_invariant_checker(pipeline: tuple[Any, Pipeline],
                                            world: World) -> None:
    """/metrics counters equal the invariant checker's counts (two reporting workers)"""
    _, pipe = pipeline
    pipe.env.update(DROPGZ_SERVICE_METRICS_TOKEN=TOKEN, DROPGZ_SERVICE_WEB_URL=pipe.base_url,
                    DROPGZ_SERVICE_INTERNAL_KEY="reliability-internal-key-000000000001",
                    DROPGZ_COMPRESSION_EXCLUDE="*.skip")
    world.put("/before-start.txt", b"existed before the service\n" * 20, eligible=False)
    pipe.start_web()
    pipe.start_worker()
    pipe.start_worker()
    for n in range(24):
        world.put(f"/m/{['', 'a/', 'b/c/'][n % 3]}file {n:02d}.txt", text_bytes(3000 + 331 * n,
                                                                             seed=n))
    world.put("/m/notes.skip", b"excluded by pattern\n", eligible=False)
    pipe.queue().send([POISON])
    pipe.settle(world)
    check_invariants(world, pipe.queue(), poisoned=[POISON])
    counts = invariant_counts(world, pipe.queue())

    # Both workers' heartbeats are part of the precondition: on a loaded machine the second
    # worker may start beating only after the first has compressed everything.
    wait_for(lambda: scrape(pipe)["dropgz_files_total|compressed"] >= counts["compressed"]
             and scrape(pipe)["dropgz_files_total|failed"] >= counts["dead"]
             and scrape(pipe)["dropgz_workers|live"] >= 2,
             what="every worker report and both workers' heartbeats arrived")
    m = scrape(pipe)
    assert m["dropgz_files_total|compressed"] == counts["compressed"] == 24
    assert m["dropgz_files_total|failed"] == counts["dead"] == 1
    assert m["dropgz_bytes_in_total"] == counts["bytes_in"]
    assert m["dropgz_bytes_out_total"] == counts["bytes_out"]
    assert m["dropgz_compress_seconds_count"] == counts["compressed"]
    assert m["dropgz_queue_messages|dead"] == counts["dead"]
    assert m["dropgz_queue_messages|visible"] == m["dropgz_queue_messages|in_flight"] == 0
    assert m["dropgz_webhooks_total|accepted"] >= 1 and m["dropgz_delta_runs_total|done"] >= 1
    assert m["dropgz_workers|live"] == 2
