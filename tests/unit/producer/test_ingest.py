"""``ingest``: newline-delimited JSON through the intake in chunks, with a summary by reason and line."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import fakeredis
import orjson
import pytest

from producer import ingest
from producer.ingest import ingest_lines, run_ingest
from producer.intake import SyncIntake
from tests.support.intake import (
    DESTINATIONS,
    TARGET,
    PipelineDownRedis,
    entered,
    router,
    settings,
)
from worker import keys


def make_intake(client: Any, **overrides: Any) -> SyncIntake:
    return SyncIntake(router(), client, settings(**overrides))


def line(event: Any) -> bytes:
    return orjson.dumps(event) + b"\n"


def test_summary_counts_accepted_and_rejected_by_reason_with_line_numbers() -> None:
    client = fakeredis.FakeRedis()
    lines = [
        line(entered("a@example.com")),  # 1
        b"\n",  # 2: blank, skipped
        b'{"type": "track",\n',  # 3: not JSON
        line(entered(None, "m4")),  # 4
        "   \n",  # 5: blank (str lines work too)
        line(entered("b@example.com")),  # 6
        line(entered(None, "m7")),  # 7
    ]

    summary = ingest_lines(lines, make_intake(client), chunk=2, progress=False)

    assert (summary.accepted, summary.rejected, summary.operations, summary.lines) == (2, 3, 2, 7)
    assert summary.rejected_by_code["no_identifier"].count == 2
    assert summary.rejected_by_code["no_identifier"].lines == [4, 7]
    assert summary.rejected_by_code["no_identifier"].example.startswith("line 4: mapping 1 (addToAudience)")
    invalid = summary.rejected_by_code["invalid_json"]
    assert invalid.lines == [3] and invalid.example.startswith("line 3: invalid JSON: ")
    assert summary.error is None
    assert client.xlen(keys.stream(TARGET.name)) == 2  # one entry per chunk that had operations

    text = summary.render()
    assert "accepted: 2" in text and "rejected: 3" in text
    assert "no_identifier: 2 (lines 4, 7)" in text


def test_only_the_first_few_line_numbers_are_kept() -> None:
    summary = ingest_lines([line(entered(None))] * 12, make_intake(fakeredis.FakeRedis()), progress=False)

    entry = summary.rejected_by_code["no_identifier"]
    assert entry.count == 12 and entry.lines == [1, 2, 3, 4, 5]
    assert "(lines 1, 2, 3, 4, 5, ...)" in summary.render()


def test_a_full_backlog_makes_the_load_wait_and_retry() -> None:
    client = fakeredis.FakeRedis()
    client.set(keys.BACKLOG, 100)
    waits: list[float] = []

    def drain(seconds: float) -> None:  # stands in for workers draining while the loader sleeps
        waits.append(seconds)
        client.set(keys.BACKLOG, 0)
        time.sleep(0.11)  # past the intake's backlog cache

    summary = ingest_lines([line(entered())], make_intake(client, backlog_limit=10), progress=False,
                           sleep=drain)

    assert summary.accepted == 1 and waits


def test_redis_failure_stops_the_load_and_says_how_far_it_got() -> None:
    intake = make_intake(PipelineDownRedis())
    lines = [line(entered(None)), line(entered()), line(entered())]

    summary = ingest_lines(lines, intake, chunk=2, progress=False)

    assert summary.error and "Connection refused" in summary.error
    assert summary.stored_through_line == 0
    assert "stopped:" in summary.render()


# -- the command ---------------------------------------------------------------------------------------------


@pytest.fixture
def command_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, fakeredis.FakeRedis]:
    config = tmp_path / "destinations.yaml"
    config.write_bytes(orjson.dumps(DESTINATIONS))  # JSON is YAML
    client = fakeredis.FakeRedis()
    monkeypatch.setattr(ingest, "_redis_client", lambda url: client)
    return config, client


def run(path: str, config: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_ingest(path, settings(config_path=str(config)), progress=False, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_command_exits_0_when_everything_was_accepted(tmp_path: Path,
                                                      command_env: tuple[Path, fakeredis.FakeRedis]) -> None:
    config, client = command_env
    events = tmp_path / "events.ndjson"
    events.write_bytes(line(entered("a@example.com")) + line(entered("b@example.com")))

    code, out, _ = run(str(events), config)

    assert code == 0
    assert "accepted: 2" in out
    assert int(client.get(keys.BACKLOG)) == 2


def test_command_exits_1_when_some_were_rejected(tmp_path: Path,
                                                 command_env: tuple[Path, fakeredis.FakeRedis]) -> None:
    config, _ = command_env
    events = tmp_path / "events.ndjson"
    events.write_bytes(line(entered()) + b"nope\n")

    code, out, _ = run(str(events), config)

    assert code == 1
    assert "invalid_json: 1 (lines 2)" in out


def test_command_reads_stdin(monkeypatch: pytest.MonkeyPatch,
                             command_env: tuple[Path, fakeredis.FakeRedis]) -> None:
    config, _ = command_env
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(line(entered()))))

    code, out, _ = run("-", config)

    assert code == 0 and "accepted: 1" in out


def test_command_exits_2_on_errors(tmp_path: Path, command_env: tuple[Path, fakeredis.FakeRedis]) -> None:
    config, _ = command_env

    code, _, err = run(str(tmp_path / "missing.ndjson"), config)
    assert code == 2 and "cannot read" in err

    code, _, err = run("-", tmp_path / "no-config.yaml")
    assert code == 2 and "destinations file" in err


def test_events_some_mappings_refused_are_accepted_and_summarised_apart() -> None:
    from core.destinations import parse_destinations
    from producer.routing import Router
    from tests.support.intake import ADVERTISER

    data = {"destinations": [{
        "id": "tiktok-main", "access_token_env": "TIKTOK_ACCESS_TOKEN", "advertiser_ids": [ADVERTISER],
        "mappings": [{"action": "addToAudience"},
                     {"action": "syncAudience", "subscribe": 'event = "Audience Entered"'}]}]}
    event = entered()
    event["properties"]["vip"] = "yes"  # syncAudience needs a boolean; addToAudience does not care
    intake = SyncIntake(Router.from_destinations(parse_destinations(data)), fakeredis.FakeRedis(), settings())
    summary = ingest_lines([line(event), line({**entered(), "integrations": {"All": False}})], intake,
                           progress=False)

    assert (summary.accepted, summary.rejected, summary.operations, summary.opted_out) == (2, 0, 1, 1)
    assert summary.partial_by_code["invalid_membership"].lines == [1]
    text = summary.render()
    assert "accepted, but some of their mappings refused them: 1" in text
    assert "opted out of a destination by their integrations: 1" in text
