"""settings.cfg: the seed's format verbatim, optional keys, environment, clear errors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dropgz.core.config import load_settings, parse_percent, parse_size
from dropgz.core.eligibility import excluding_pattern
from dropgz.core.errors import ConfigError
from dropgz.core.secret import Secret

SEED = """\
[Dropbox]
token: sl.TOKEN-1234567890
secret: app-secret-abcdef

[AWS]
aws_access_key_id = AKIAEXAMPLEKEYID
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
region = us-west-1
queue = dropgz-work
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "settings.cfg"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_seed_format_is_read_verbatim(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SEED), env={})
    assert settings.dropbox.token.reveal() == "sl.TOKEN-1234567890"
    assert settings.dropbox.secret.reveal() == "app-secret-abcdef"
    assert settings.aws.aws_access_key_id == "AKIAEXAMPLEKEYID"
    assert settings.aws.aws_secret_access_key.reveal().endswith("EXAMPLEKEY")
    assert settings.aws.region == "us-west-1"
    assert settings.aws.queue == "dropgz-work"
    assert settings.aws.dead_letter_name == "dropgz-work-dlq"
    assert settings.compression.level == 6
    assert settings.compression.compressor == "gzip"


def test_region_defaults_to_us_west_1(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[Dropbox]\ntoken: t\n"), env={})
    assert settings.aws.region == "us-west-1"
    assert settings.aws.queue is None


def test_environment_overrides_file(tmp_path: Path) -> None:
    env = {"DROPGZ_DROPBOX_TOKEN": "from-env", "DROPGZ_COMPRESSION_LEVEL": "1",
           "DROPGZ_COMPRESSION_EXCLUDE": "*.jpg, *.zip\n/private/*"}
    settings = load_settings(write(tmp_path, SEED), env=env)
    assert settings.dropbox.token.reveal() == "from-env"
    assert settings.compression.level == 1
    assert settings.compression.exclude == ("*.jpg", "*.zip", "/private/*")
    patterns = settings.compression.exclude
    assert excluding_pattern("/Photos/A.JPG", patterns) == "*.jpg"
    assert excluding_pattern("/private/notes.txt", patterns) == "/private/*"
    assert excluding_pattern("/notes.txt", patterns) is None


def test_environment_alone_is_enough() -> None:
    settings = load_settings(env={"DROPGZ_DROPBOX_TOKEN": "t", "DROPGZ_AWS_QUEUE": "q"})
    assert settings.dropbox.has_credentials()
    assert settings.aws.queue == "q"
    assert settings.source == "<environment>"


def test_optional_keys(tmp_path: Path) -> None:
    text = SEED + """
[Compression]
compressor = isal
level = 9
min_size = 1KiB
max_size = 2GB
replace_original = yes

[Service]
concurrency = 32
"""
    text = text.replace("secret: app-secret-abcdef",
                        "secret: app-secret-abcdef\napp_key: key1\nrefresh_token: rt-1\n"
                        "api_base_url: http://127.0.0.1:8765/")
    settings = load_settings(write(tmp_path, text), env={})
    assert settings.dropbox.app_key == "key1"
    assert settings.dropbox.refresh_token.reveal() == "rt-1"
    assert settings.dropbox.api_base_url == "http://127.0.0.1:8765"
    assert settings.compression.compressor == "isal"
    assert settings.compression.min_size == 1024
    assert settings.compression.max_size == 2_000_000_000
    assert settings.compression.replace_original is True
    assert settings.service.concurrency == 32


@pytest.mark.parametrize(("text", "expected"), [
    ("[Compression]\nlevel = 11\n", "[Compression] level: 11 is outside 1..9"),
    ("[Compression]\nlevel = fast\n", "[Compression] level: not a whole number"),
    ("[Compression]\ncompressor = zstd\n", "[Compression] compressor: unknown value 'zstd'"),
    ("[Compression]\nmax_size = lots\n", "[Compression] max_size: not a size"),
    ("[Compression]\nreplace_original = maybe\n", "[Compression] replace_original: not true/false"),
    ("[AWS]\nregion = mars-1\n", "[AWS] region: not an AWS region name: 'mars-1'"),
    ("[AWS]\naws_access_key_id = AKIA\n", "[AWS] aws_secret_access_key: missing"),
    ("[Dropbox]\napi_base_url = ftp://x\n", "[Dropbox] api_base_url: not an http(s) URL"),
    ("[Dropbox]\ntokn = x\n", "[Dropbox] tokn: unknown key"),
    ("[Dropbx]\ntoken = x\n", "[Dropbx]: unknown section"),
    ("[Dropbox]\ntoken = x\ntoken = y\n", "malformed: While reading"),
    ("token = x\n", "malformed: File contains no section headers"),
    ("[Compression]\nmin_size = 10\nmax_size = 5\n", "min_size: 10 is larger than max_size 5"),
    ("[Compression]\nmin_savings = 0.05\n",
     "[Compression] min_savings: not a percentage: '0.05' (write it like 5%"),
    ("[Compression]\nmin_savings = 5\n", "[Compression] min_savings: not a percentage: '5'"),
    ("[Compression]\nmin_savings = 100%\n", "[Compression] min_savings: 100% is not below 100%"),
])
def test_bad_values_name_file_section_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    message = str(caught.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="environment DROPGZ_COMPRESSION_LEVEL"):
        load_settings(env={"DROPGZ_COMPRESSION_LEVEL": "0"})


def test_missing_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="settings file not found"):
        load_settings(tmp_path / "nope.cfg", env={})
    with pytest.raises(ConfigError, match="is a folder"):
        load_settings(tmp_path, env={})


def test_require_names_the_missing_key(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[AWS]\nqueue = q\n"), env={})
    with pytest.raises(ConfigError, match=r"\[Dropbox\] token: missing"):
        settings.require_dropbox_credentials()
    with pytest.raises(ConfigError, match=r"\[Dropbox\] secret: missing"):
        settings.require("Dropbox", "secret")


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SEED), env={})
    text = repr(settings) + str(settings)
    for secret in ("sl.TOKEN-1234567890", "app-secret-abcdef", "EXAMPLEKEY"):
        assert secret not in text
    assert "***" in text
    assert set(settings.secrets()) >= {"sl.TOKEN-1234567890", "app-secret-abcdef"}
    assert f"{Secret('x-very-secret')}" == "***"


def test_world_readable_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, SEED, mode=0o644)
    with caplog.at_level(logging.WARNING, logger="dropgz.core.config"):
        load_settings(path, env={})
    assert "readable by group or others" in caplog.text
    assert "sl.TOKEN" not in caplog.text


@pytest.mark.parametrize(("raw", "value"), [
    ("0", 0), ("4096", 4096), ("10MB", 10_000_000), ("2GiB", 2 * 1024**3), ("1k", 1000),
    ("3 MiB", 3 * 1024**2),
])
def test_sizes(raw: str, value: int) -> None:
    assert parse_size(raw) == value


@pytest.mark.parametrize(("raw", "value"), [
    ("5%", 0.05), ("0", 0.0), ("0%", 0.0), ("12.5%", 0.125), (" 1 % ", 0.01), ("99.9%", 0.999),
])
def test_percentages(raw: str, value: float) -> None:
    assert parse_percent(raw) == pytest.approx(value)


def test_min_savings_defaults_to_five_percent() -> None:
    assert load_settings(env={}).compression.min_savings == 0.05
    assert load_settings(env={"DROPGZ_COMPRESSION_MIN_SAVINGS": "0"}).compression.min_savings == 0


def test_cli_reports_bad_settings_in_one_line_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, "[Compression]\nlevel = 99\n")
    result = subprocess.run(
        [sys.executable, "-m", "dropgz", "worker", "--config", str(path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "[Compression] level: 99 is outside 1..9" in lines[0]
    assert "Traceback" not in result.stderr
