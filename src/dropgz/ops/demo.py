"""``dropgz demo``: the whole pipeline, offline, on the bundled Dropbox emulator.

Starts the emulator with several users (webhooks pointed at the web tier, dropgz's redirect
URI registered), ``dropgz serve`` wired to it with the embedded SQLite queue and local push
queue, and connects every user the way a person does: ``/connect``, the emulator's consent
page, Allow (:mod:`dropgz.ops.connect_driver`, over HTTP). Then it uploads a varied sample
set into each user's Dropbox through the official SDK and lets the emulator's webhooks drive
everything. It watches the .gz files appear, verifies each by decompressing and comparing,
and prints a table per user that says, for each file left alone, why: the rule that refused
its name, or the reason the worker logged for it.
"""

from __future__ import annotations

import gzip
import secrets
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dropbox
from cryptography.fernet import Fernet
from dropbox.files import FileMetadata, WriteMode
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dropgz.core.config import CompressionSettings, DropboxSettings
from dropgz.core.eligibility import skip_reason
from dropgz.core.logs import parse_fields
from dropgz.core.secret import Secret
from dropgz.dropbox_client import make_dropbox
from dropgz.ops.connect_driver import ConnectFailed, connect_over_http
from dropgz.ops.processes import ProcessFailed, spawn, start_emulator, stop, wait_http
from dropgz.ops.samples import Sample, sample_set


@dataclass
class Result:
    user: User
    sample: Sample
    gz_size: int = 0
    seconds: float = 0.0
    problem: str = ""


@dataclass
class User:
    """One emulated Dropbox user of the demo and a client acting as them."""

    number: int
    account_id: str
    name: str
    dbx: dropbox.Dropbox


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _settings_text(info: dict, web_url: str, data_dir: Path, password: str) -> str:
    # No [Dropbox] token: every user is served because they connected.
    return (f"[Dropbox]\nsecret: {info['app_secret']}\napp_key: {info['app_key']}\n"
            f"api_base_url: {info['url']}\nredirect_uri: {web_url}/connect/callback\n\n"
            f"[Service]\ndata_dir = {data_dir}\nconcurrency = 8\n"
            f"encryption_key = {Fernet.generate_key().decode()}\n"
            f"operator_password = {password}\n")


class Demo:
    """One demo run in ``workdir``; :meth:`run` returns the process exit code."""

    def __init__(self, workdir: Path, big_bytes: int, timeout: float, console: Console,
                 accounts: int = 2) -> None:
        self.workdir = workdir
        self.big_bytes = big_bytes
        self.timeout = timeout
        self.console = console
        self.accounts = accounts
        self.procs: list = []
        # The dashboard's password for this run only (printed: it guards a local demo).
        self.password = secrets.token_urlsafe(12)

    def run(self, keep: bool = False) -> int:
        try:
            users, web_url, settings_path = self._start()
            # The first user gets the large file too; the others the small set.
            samples = {u.number: sample_set(self.big_bytes if u.number == 1 else 0)
                       for u in users}
            uploaded = self._upload(users, samples)
            results = self._watch(users, samples, uploaded)
            code = self._report(users, results)
            if keep:
                self._keep(web_url, settings_path)
            return code
        except (ProcessFailed, ConnectFailed) as exc:
            self.console.print(f"[red]demo failed:[/] {exc}")
            return 1
        finally:
            for proc in reversed(self.procs):
                stop(proc)

    def _start(self) -> tuple[list[User], str, Path]:
        port = _free_port()
        web_url = f"http://127.0.0.1:{port}"
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.console.print(f"[bold]dropgz demo[/] in {self.workdir}")
        emulator, info = start_emulator(
            self.workdir / "dropbox", logs / "emulator.log",
            "--app-secret", secrets.token_hex(16), "--webhook-url", f"{web_url}/webhook",
            "--accounts", str(self.accounts), "--redirect-uri", f"{web_url}/connect/callback")
        self.procs.append(emulator)
        self.console.print(f"  Dropbox emulator  {info['url']}  ({self.accounts} users, "
                           f"files in {info['root']})")
        settings_path = self.workdir / "settings.cfg"
        settings_path.write_text(_settings_text(info, web_url, self.workdir / "data",
                                                self.password))
        settings_path.chmod(0o600)
        serve = spawn([sys.executable, "-m", "dropgz", "serve", "--config", str(settings_path),
                       "--port", str(port), "--workers", "1"], logs / "serve.log")
        self.procs.append(serve)
        wait_http(f"{web_url}/webhook?challenge=ready", serve, logs / "serve.log")
        self.console.print(f"  dropgz serve      {web_url}/connect  (logs in {logs})")
        self.console.print(f"  dashboard         {web_url}/dashboard  "
                           f"(log in with the password {self.password})")
        return self._connect(info, web_url), web_url, settings_path

    def _connect(self, info: dict, web_url: str) -> list[User]:
        """Each user connects as a person would: /connect, consent page, Allow."""
        users = []
        for number, account in enumerate(info["accounts"], start=1):
            answer = connect_over_http(web_url, account["account_id"])
            if answer.status_code != 200:
                raise ConnectFailed(f"{account['display_name']} could not connect: "
                                    f"{answer.status_code}")
            self.console.print(f"  user {number}: {account['display_name']} "
                               f"<{account['email']}> connected at {web_url}/connect")
            dbx = make_dropbox(DropboxSettings(token=Secret(account["token"]),
                                               api_base_url=info["url"]))
            users.append(User(number, account["account_id"], account["display_name"], dbx))
        return users

    def _upload(self, users: list[User],
                samples: dict[int, list[Sample]]) -> dict[tuple[int, str], float]:
        uploaded: dict[tuple[int, str], float] = {}
        count = sum(len(s) for s in samples.values())
        total = sum(len(s.data) for ss in samples.values() for s in ss)
        self.console.print(f"Uploading {count} files ({total / 1e6:.1f} MB) into "
                           f"{len(users)} users' Dropboxes through the Dropbox SDK...")
        for user in users:
            for sample in samples[user.number]:
                user.dbx.files_upload(sample.data, sample.path, mode=WriteMode.overwrite)
                uploaded[(user.number, sample.path)] = time.monotonic()
        return uploaded

    def _watch(self, users: list[User], samples: dict[int, list[Sample]],
               uploaded: dict[tuple[int, str], float]) -> list[Result]:
        wanted = {(u.number, s.path.lower() + ".gz"): Result(u, s)
                  for u in users for s in samples[u.number] if s.eligible}
        bytes_in = sum(len(r.sample.data) for r in wanted.values())
        deadline = time.monotonic() + self.timeout
        columns = (TextColumn("{task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total} files"),
                   TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
        with Progress(*columns, console=self.console) as progress:
            task = progress.add_task("Compressing", total=len(wanted), detail="")
            while time.monotonic() < deadline:
                found = {(u.number, path): md for u in users
                         for path, md in self._gz_files(u.dbx).items()}
                done_in, done_out = 0, 0
                for key, result in wanted.items():
                    if key in found and not result.gz_size:
                        result.gz_size = found[key].size
                        result.seconds = time.monotonic() - uploaded[
                            (result.user.number, result.sample.path)]
                    if result.gz_size:
                        done_in += len(result.sample.data)
                        done_out += result.gz_size
                done = sum(1 for r in wanted.values() if r.gz_size)
                progress.update(task, completed=done,
                                detail=f"{done_in / 1e6:.1f}/{bytes_in / 1e6:.1f} MB in, "
                                       f"{done_out / 1e6:.1f} MB out")
                if done == len(wanted):
                    break
                time.sleep(0.3)
        for result in wanted.values():
            if not result.gz_size:
                result.problem = f"no .gz after {self.timeout:.0f}s"
        return list(wanted.values())

    @staticmethod
    def _gz_files(dbx: dropbox.Dropbox) -> dict[str, FileMetadata]:
        found: dict[str, FileMetadata] = {}
        page = dbx.files_list_folder("", recursive=True)
        while True:
            for entry in page.entries:
                if isinstance(entry, FileMetadata) and entry.path_lower.endswith(".gz"):
                    found[entry.path_lower] = entry
            if not page.has_more:
                return found
            page = dbx.files_list_folder_continue(page.cursor)

    def _report(self, users: list[User], results: list[Result]) -> int:
        for result in results:
            if result.problem:
                continue
            _, response = result.user.dbx.files_download(result.sample.path + ".gz")
            with response:
                if gzip.decompress(response.content) != result.sample.data:
                    result.problem = "decompressed bytes differ from the original"
        untouched = [s for s in sample_set(0) if not s.eligible]
        problems = [r for r in results if r.problem]
        for user in users:
            mine = sorted((r for r in results if r.user is user), key=lambda r: r.sample.path)
            why = {s.path: self._why_left_alone(user, s) for s in untouched}
            self.console.print(self._table(user, mine, untouched, why))
            gz = self._gz_files(user.dbx)
            problems += [Result(user, s, problem="the worker logged no decision about it")
                         for s in untouched if not why[s.path]]
            problems += [Result(user, s, problem="was compressed but must be left alone")
                         for s in untouched if s.path.lower() + ".gz" in gz]
        good = [r for r in results if not r.problem]
        size_in = sum(len(r.sample.data) for r in good)
        size_out = sum(r.gz_size for r in good)
        if problems:
            for p in problems:
                self.console.print(f"[red]FAILED[/] user {p.user.number} {p.sample.path}: "
                                   f"{p.problem}")
            return 1
        self.console.print(f"[green]All {len(results)} files of {len(users)} users compressed "
                           f"and verified[/], each user's with their own credentials. "
                           f"{size_in:,} bytes -> {size_out:,} bytes: "
                           f"{size_in - size_out:,} bytes saved "
                           f"({1 - size_out / max(size_in, 1):.1%}).")
        return 0

    def _why_left_alone(self, user: User, sample: Sample) -> str:
        """The delta tier's rule that refused the name, else the skip reason the worker
        logged for this user's file (waited for: it may come after the other files)."""
        rule = skip_reason(sample.path, len(sample.data), CompressionSettings())
        if rule:
            return rule
        log_path = self.workdir / "logs" / "serve.log"
        deadline = time.monotonic() + 30
        while True:
            for line in log_path.read_text(errors="replace").splitlines():
                found = parse_fields(line)
                if (found.get("path") == sample.path and found.get("outcome") == "skipped"
                        and found.get("account") == user.account_id):
                    return found.get("reason", "")
            if time.monotonic() > deadline:
                return ""
            time.sleep(0.3)

    @staticmethod
    def _table(user: User, results: list[Result], untouched: list[Sample],
               why: dict[str, str]) -> Table:
        table = Table(title=f"user {user.number}: {user.name} ({user.account_id})")
        for column in ("file", "size", ".gz size", "ratio", "seconds", "check"):
            table.add_column(column, justify="left" if column == "file" else "right")
        for r in results:
            size = len(r.sample.data)
            table.add_row(r.sample.path, f"{size:,}", f"{r.gz_size:,}" if r.gz_size else "-",
                          f"{r.gz_size / size:.3f}" if r.gz_size and size else "-",
                          f"{r.seconds:.1f}" if r.gz_size else "-",
                          f"[red]{r.problem}[/]" if r.problem else "[green]ok[/]")
        for s in untouched:
            table.add_row(s.path, f"{len(s.data):,}", "-", "-", "-",
                          f"[green]left alone[/]: {why[s.path]}" if why[s.path] else
                          "[red]no decision logged[/]")
        return table

    def _keep(self, web_url: str, settings_path: Path) -> None:
        self.console.print(f"\nStill running (Ctrl-C to stop). Connect page: {web_url}/connect"
                           f"  Webhook: {web_url}/webhook\n"
                           f"Dashboard: {web_url}/dashboard (password: {self.password})\n"
                           f"Settings for other dropgz commands: {settings_path}\n"
                           f"{settings_path.read_text()}")
        try:
            while all(p.poll() is None for p in self.procs):
                time.sleep(1)
        except KeyboardInterrupt:
            pass


def run_demo(keep: bool, big_bytes: int, timeout: float, workdir: Path | None,
             accounts: int = 2) -> int:
    console = Console()
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return Demo(workdir, big_bytes, timeout, console, accounts).run(keep)
    with tempfile.TemporaryDirectory(prefix="dropgz-demo-") as tmp:
        return Demo(Path(tmp), big_bytes, timeout, console, accounts).run(keep)
