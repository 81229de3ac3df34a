"""``dropgz setup-aws``: create the SQS work queue and its dead-letter queue."""

from __future__ import annotations

from pathlib import Path

import click

from dropgz.cli.common import config_option, load


@click.command("setup-aws")
@config_option
def command(config_path: Path | None) -> None:
    """Create (or update) the [AWS] queue and its dead-letter queue in [AWS] region, with a
    redrive policy after [AWS] max_receive_count receives, the configured visibility timeout,
    14 days retention and 20 s long polling. Safe to run again."""
    settings = load(config_path, "WARNING")
    settings.require("AWS", "queue")
    from dropgz.queues.sqs import ensure_queues

    main, dead = ensure_queues(settings)
    click.echo(f"work queue:        {main}")
    click.echo(f"dead-letter queue: {dead} (after {settings.aws.max_receive_count} receives)")
