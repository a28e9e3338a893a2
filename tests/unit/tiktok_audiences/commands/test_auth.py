"""``tiktok-audiences auth exchange|check`` against the sandbox's OAuth and user endpoints."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.admin import SandboxAdmin
from sandbox.config import (
    DEFAULT_ADVERTISERS,
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_AUTH_CODE,
    DEFAULT_TOKEN,
)
from tests.support.cli import TOKEN_ENV
from tiktok_audiences.commands.auth import write_secret_file

Cli = Callable[..., int]
SECRET_ENV = "TTA_UNIT_APP_SECRET"
CODE_ENV = "TTA_UNIT_AUTH_CODE"
ADVERTISERS = list(DEFAULT_ADVERTISERS)


@pytest.fixture(autouse=True)
def app_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, DEFAULT_APP_SECRET)


def exchange(cli: Cli, *extra: str, code: str = DEFAULT_AUTH_CODE) -> int:
    os.environ[CODE_ENV] = code  # monkeypatch restores it: the fixture below sets it first
    return cli("auth", "exchange", "--app-id", DEFAULT_APP_ID, "--secret-env", SECRET_ENV,
               "--auth-code-env", CODE_ENV, *extra)


@pytest.fixture(autouse=True)
def auth_code_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CODE_ENV, DEFAULT_AUTH_CODE)


def test_exchange_writes_an_owner_only_token_file_and_names_the_advertisers(
        cli: Cli, sandbox: SandboxAdmin, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "token"
    assert exchange(cli, "--write", str(token_file)) == 0
    out = capsys.readouterr()
    token = token_file.read_text().strip()
    assert token.startswith("act.")
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    for advertiser in DEFAULT_ADVERTISERS:
        assert f"  {advertiser}\n" in out.out
    assert f"access_token_file: {token_file}" in out.out
    assert token not in out.out + out.err and DEFAULT_APP_SECRET not in out.out + out.err


def test_exchange_replaces_a_wider_readable_file(cli: Cli, sandbox: SandboxAdmin, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old")
    token_file.chmod(0o644)
    assert exchange(cli, "--write", str(token_file)) == 0
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().startswith("act.")
    assert not list(tmp_path.glob(".token.*"))  # no temporary file left behind


def test_a_bad_auth_code_is_a_clear_error(cli: Cli, sandbox: SandboxAdmin, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "token"
    assert exchange(cli, "--write", str(token_file), code="expired-code") == 1
    err = capsys.readouterr().err
    assert "TikTok refused the auth code exchange" in err and "40110" in err and "new one" in err
    assert "expired-code" not in err and DEFAULT_APP_SECRET not in err
    assert not token_file.exists()


def test_a_missing_secret_variable_is_named(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(SECRET_ENV)
    assert exchange(cli) == 2
    assert f"environment variable {SECRET_ENV} is not set" in capsys.readouterr().err


def test_check_passes_for_a_working_token(cli: Cli, sandbox: SandboxAdmin,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("auth", "check") == 0
    out = capsys.readouterr().out
    assert out.startswith("ok    main:") and f"environment variable {TOKEN_ENV}" in out
    assert DEFAULT_TOKEN not in out


def test_check_fails_for_a_revoked_token_without_showing_it(cli: Cli, sandbox: SandboxAdmin,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    sandbox.knobs(revoked_tokens=[DEFAULT_TOKEN])
    assert cli("auth", "check") == 1
    captured = capsys.readouterr()
    assert "FAIL  main: TikTok refuses the token" in captured.out and "40105" in captured.out
    assert "destinations resume main" in captured.out
    assert DEFAULT_TOKEN not in captured.out + captured.err


def test_check_reads_access_token_file(cli: Cli, sandbox: SandboxAdmin, config_file: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "token"
    write_secret_file(token_file, DEFAULT_TOKEN)
    monkeypatch.delenv(TOKEN_ENV)
    config_file.write_text(yaml.safe_dump({"destinations": [
        {"id": "from-file", "access_token_file": str(token_file), "advertiser_ids": ADVERTISERS},
        {"id": "unset", "access_token_env": "TTA_UNIT_NOT_SET", "advertiser_ids": ADVERTISERS},
    ]}))
    assert cli("auth", "check") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ok    from-file:") and f"file {token_file}" in lines[0]
    assert lines[1] == "FAIL  unset: destination 'unset': environment variable TTA_UNIT_NOT_SET is not set"


def test_an_unreachable_tiktok_is_not_blamed_on_the_auth_code(cli: Cli, settings: Any, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    settings.tiktok_api_base_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    assert exchange(cli, "--write", str(tmp_path / "token")) == 1
    err = capsys.readouterr().err
    assert "could not reach TikTok at http://127.0.0.1:9" in err and "refused" not in err


def test_the_auth_code_is_read_from_stdin_when_no_variable_is_named(
        cli: Cli, sandbox: SandboxAdmin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(DEFAULT_AUTH_CODE + "\n"))
    token_file = tmp_path / "token"
    assert cli("auth", "exchange", "--app-id", DEFAULT_APP_ID, "--secret-env", SECRET_ENV,
               "--write", str(token_file)) == 0
    assert token_file.read_text().startswith("act.")


def test_an_auth_code_on_the_command_line_is_refused_unspent(cli: Cli, sandbox: SandboxAdmin, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("auth", "exchange", "--app-id", DEFAULT_APP_ID, "--secret-env", SECRET_ENV,
               "--auth-code", DEFAULT_AUTH_CODE, "--write", str(tmp_path / "token")) == 2
    err = capsys.readouterr().err
    assert "ps" in err and "--auth-code-env" in err and DEFAULT_AUTH_CODE not in err
    assert exchange(cli, "--write", str(tmp_path / "token")) == 0  # the code was not spent


def test_an_unwritable_token_path_is_refused_before_the_code_is_spent(
        cli: Cli, sandbox: SandboxAdmin, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert exchange(cli, "--write", str(tmp_path / "missing-dir" / "token")) == 2
    err = capsys.readouterr().err
    assert "cannot write in" in err and "auth code is still good" in err
    assert exchange(cli, "--write", str(tmp_path / "token")) == 0  # the same single-use code still works
