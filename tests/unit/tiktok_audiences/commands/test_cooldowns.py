"""``stats`` names a throttled destination, and ``destinations lift-cooldown`` ends its rest."""

from __future__ import annotations

import argparse

import fakeredis
import pytest

from core.destinations import load_destinations
from core.settings import Settings
from tiktok_audiences.commands import destinations, stats
from worker import keys


def test_stats_names_the_throttle_and_the_command_that_lifts_it(settings: Settings,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    client = fakeredis.FakeRedis()
    token = load_destinations(settings.config_path).get("main").token_id()
    client.set(keys.cooldown(token), 1, px=60_000)
    client.zadd(keys.READY, {"main": 1_900_000_000.0})
    assert stats.stats(argparse.Namespace(json=False, watch=False), settings, client) == 0
    out = capsys.readouterr().out
    assert "THROTTLED destination main" in out
    assert "2030-03-17 17:46:40" in out  # when its audiences are due
    assert "tiktok-audiences destinations lift-cooldown main" in out


def test_lift_cooldown_ends_the_rest(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    client = fakeredis.FakeRedis()
    token = load_destinations(settings.config_path).get("main").token_id()
    client.set(keys.cooldown(token), 1, px=60_000)
    assert destinations.destinations_lift_cooldown(argparse.Namespace(destination="main"), settings, client) == 0
    assert "cooldown lifted" in capsys.readouterr().out
    assert not client.exists(keys.cooldown(token))
    assert stats.stats(argparse.Namespace(json=False, watch=False), settings, client) == 0
    assert "THROTTLED" not in capsys.readouterr().out


def test_lift_cooldown_of_an_unknown_destination_says_so(settings: Settings,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert destinations.destinations_lift_cooldown(argparse.Namespace(destination="nope"), settings,
                                               fakeredis.FakeRedis()) != 0
    assert "nope" in capsys.readouterr().err
