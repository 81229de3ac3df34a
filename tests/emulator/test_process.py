"""The emulator as a program: CLI flags, ready line, signals, the in-process Python API."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import dropbox
import pytest
from dropbox.exceptions import AuthError

from dropgz.dropbox_client.transport import make_session
from dropgz.emulator import EmulatorConfig, EmulatorServer
from tests.fixtures.emulator import start_emulator

FLAGS = ("--host", "--port", "--root", "--token", "--app-key", "--app-secret",
         "--refresh-token", "--account-id", "--webhook-url", "--tls-cert", "--tls-key",
         "--latency-ms", "--fail-rate", "--seed", "--token-ttl", "--retry-after", "--accounts",
         "--app-name", "--redirect-uri", "--auth-code-ttl")


def test_dropgz_emulator_help_documents_every_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "dropgz", "emulator", "--help"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    for flag in FLAGS:
        assert flag in result.stdout, flag


@pytest.mark.parametrize(("args", "complaint"), [
    (["--fail-rate", "1.5"], "fail_rate"),
    (["--account-id", "dbid:short"], "account_id"),
    (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "TLS file"),
    (["--fail-kinds", "teapot"], "fail-kinds"),
])
def test_bad_flags_exit_2_with_one_line(args: list[str], complaint: str,
                                        tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "dropgz.emulator", "--root", str(tmp_path),
                             *args], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert complaint in result.stderr and "Traceback" not in result.stderr


def test_ready_line_and_given_credentials(tmp_path: Path) -> None:
    with start_emulator(tmp_path, token="given-token", app_key="givenkey",
                        account_id="dbid:AAA" + "x" * 32) as emulator:
        assert emulator.url.startswith("http://127.0.0.1:")
        assert emulator.token == "given-token" and emulator.app_key == "givenkey"
        assert emulator.account_id == "dbid:AAA" + "x" * 32
        assert emulator.root == tmp_path / "dropbox"
        account = emulator.client().users_get_current_account()
        assert account.account_id == emulator.account_id
        with pytest.raises(AuthError):
            emulator.client(oauth2_access_token="another").users_get_current_account()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly(signum: signal.Signals, tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "dropgz.emulator", "--root",
                                str(tmp_path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        ready = json.loads(process.stdout.readline())
        assert set(ready) >= {"event", "url", "token", "app_key", "app_secret",
                              "refresh_token", "account_id", "root", "accounts"}
        process.send_signal(signum)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_in_process_server(tmp_path: Path) -> None:
    with EmulatorServer(EmulatorConfig(root=tmp_path)).start() as server:
        dbx = dropbox.Dropbox(server.token, session=make_session(server.url))
        dbx.files_upload(b"in process", "/inproc.txt")
        assert (server.root / "inproc.txt").read_bytes() == b"in process"
        assert server.ready_info()["url"] == server.url
        first_token = server.token
    # Credentials generated for a root are kept with it.
    with EmulatorServer(EmulatorConfig(root=tmp_path)).start() as again:
        assert again.token == first_token
        dbx = dropbox.Dropbox(again.token, session=make_session(again.url))
        assert dbx.files_download("/inproc.txt")[1].content == b"in process"


def test_https_serves_the_sdk(tmp_path: Path) -> None:
    with start_emulator(tmp_path, tls=True) as emulator:
        assert emulator.url.startswith("https://") and emulator.ca_bundle
        dbx = emulator.client()
        dbx.files_upload(b"tls", "/tls.txt")
        assert dbx.files_download("/tls.txt")[1].content == b"tls"
        # Without the CA the client must refuse the certificate.
        plain = dropbox.Dropbox(emulator.token, session=make_session(emulator.url, None),
                                max_retries_on_error=0)
        plain._session.trust_env = False
        plain._session.verify = True
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            plain.users_get_current_account()
