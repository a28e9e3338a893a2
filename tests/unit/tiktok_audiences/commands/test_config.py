"""``config check`` prints what it understood, names the broken mapping, and never prints a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiktok_audiences.commands.config import config_check

CONFIG = """
destinations:
  - id: tiktok-main
    access_token_env: CHECK_TOKEN
    advertiser_ids: ["7000000000000000001"]
    native: {advertiser_id: "7000000000000000001", auto_create: true}
    mappings:
      - action: addToAudience
      - action: addUser
        subscribe: 'event = "Signed Up"'
        fields: {selected_advertiser_id: "7000000000000000001", audience_id: "1234345", send_phone: false}
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "destinations.yaml"
    path.write_text(text)
    return str(path)


def test_prints_destinations_mappings_and_triggers_but_not_the_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHECK_TOKEN", "tok-very-secret-value")
    assert config_check(write(tmp_path, CONFIG)) == 0
    out = capsys.readouterr().out
    assert "environment variable CHECK_TOKEN (set)" in out
    assert 'mapping 1 (addToAudience): when event = "Audience Entered"' in out
    assert 'mapping 2 (addUser): when event = "Signed Up"' in out
    assert "auto-create on" in out
    assert "tok-very-secret-value" not in out


def test_says_when_the_token_variable_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CHECK_TOKEN", raising=False)
    assert config_check(write(tmp_path, CONFIG)) == 0
    assert "CHECK_TOKEN (NOT SET)" in capsys.readouterr().out


def test_a_broken_trigger_names_the_destination_mapping_and_position(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert config_check(write(tmp_path, CONFIG.replace('"Signed Up"', '"Signed Up" and'))) == 1
    err = capsys.readouterr().err
    assert "destination 'tiktok-main'" in err and "mapping 2 (addUser)" in err and "position" in err


def test_a_51st_mapping_is_a_configuration_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    many = CONFIG.split("    mappings:")[0] + "    mappings:\n" + "      - action: addToAudience\n" * 51
    assert config_check(write(tmp_path, many)) == 1
    assert "at most 50" in capsys.readouterr().err


def test_shows_an_integration_name_other_than_the_default(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert config_check(write(tmp_path, CONFIG)) == 0
    assert "integrations name" not in capsys.readouterr().out
    named = CONFIG.replace("    native:", "    integration_name: TikTok (EU)\n    native:")
    assert config_check(write(tmp_path, named)) == 0
    assert "integrations name: 'TikTok (EU)'" in capsys.readouterr().out
