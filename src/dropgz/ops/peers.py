"""Local stand-ins for the cloud, shared by tests and benchmarks: ``moto_server`` for SQS.

moto_server is the real SQS wire protocol over a loopback socket, so boto3 talks to it as it
would to AWS. It comes with the test extra (``pip install -e '.[test]'``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from dropgz.ops.processes import READY_TIMEOUT, ProcessFailed

MOTO_REGION = "us-west-1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def moto_server_command() -> str:
    """Path of ``moto_server``: beside this Python first (the venv), then on PATH."""
    beside = Path(sys.executable).with_name("moto_server")
    if beside.is_file():
        return str(beside)
    found = shutil.which("moto_server")
    if found is None:
        raise ProcessFailed("moto_server is not installed: run `pip install 'moto[server]'` "
                            "(it is in the test extra: `pip install -e '.[test]'`)")
    return found


def _moto_answers(url: str) -> bool:
    try:
        # moto's own management API: answers once the server is up.
        return requests.get(f"{url}/moto-api/data.json", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def start_moto(log_path: Path, timeout: float = READY_TIMEOUT,
               ) -> tuple[subprocess.Popen[bytes], str]:
    """Start moto_server (:mod:`.moto_peer`) on a free loopback port; returns the process
    and its URL.

    Raises :class:`ProcessFailed` (with the log's tail) when it is missing, exits or does not
    answer within ``timeout`` seconds. The caller stops it (``processes.stop``).
    """
    moto_server_command()  # installed, or a clear error
    port = free_port()
    # moto's own server, with the race of its SQS model closed (see .moto_peer)
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dropgz.ops.moto_peer",
                                 "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while not _moto_answers(url):
        failed = proc.poll() is not None
        if failed or time.monotonic() > deadline:
            if not failed:
                proc.kill()
                proc.wait()
            what = f"exited with {proc.returncode}" if failed else \
                f"did not answer on {url} within {timeout:.0f} s"
            raise ProcessFailed(f"moto_server {what}: "
                                f"{log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return proc, url


def moto_env(url: str, queue: str) -> dict[str, str]:
    """``DROPGZ_AWS_*`` for ``queue`` on moto_server (moto takes any keys; these are fake)."""
    return {
        "DROPGZ_AWS_QUEUE": queue,
        "DROPGZ_AWS_ENDPOINT_URL": url,
        "DROPGZ_AWS_REGION": MOTO_REGION,
        "DROPGZ_AWS_AWS_ACCESS_KEY_ID": "AKIAMOTOTESTING",
        "DROPGZ_AWS_AWS_SECRET_ACCESS_KEY": "moto-fake-secret-key-do-not-log",
    }
