"""``tiktok-audiences audiences resync`` and ``shadow report`` over fakeredis: what they print and enqueue."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import orjson
import pytest

from core.settings import Settings
from tests.support.cli import ADVERTISER
from tiktok_audiences.cli import build_parser
from tiktok_audiences.commands.audiences import audiences_resync
from tiktok_audiences.commands.shadow import shadow_report_command
from tiktok_audiences.commands.times import parse_moment
from worker import keys
from worker.keys import Target
from worker.ledger import BatchRecord, Ledger
from worker.membership import Membership, identifiers_key
from worker.operations import PackedOperation, decode_entry

TARGET = Target("main", ADVERTISER, "1234")
EVENT_MS = 1_765_000_000_000


def run(settings: Settings, client: Any, *argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    command = audiences_resync if args.command == "audiences" else shadow_report_command
    return command(args, settings, client)


def members(client: Any, count: int) -> None:
    client.sadd(keys.TARGETS, TARGET.name)
    Membership(client).record(TARGET.name, None, f"{EVENT_MS}-0", [
        PackedOperation("add", f"{i:064x}", "", "", "", EVENT_MS + i, f"m{i}") for i in range(count)])  # type: ignore[arg-type]


def test_resync_dry_run_shows_what_it_would_send_and_sends_nothing(
        settings: Settings, redis_client: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str]) -> None:
    members(redis_client, 5)
    assert run(settings, redis_client, "audiences", "resync", "1234", "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"{TARGET.name}: 5 current members recorded, would enqueue 5 adds" in out
    assert out.count("  add email=") == 3
    assert f"{1:064x}" not in out  # digests are shortened
    assert not redis_client.exists(keys.stream(TARGET.name))


def test_resync_enqueues_every_member_and_says_who_it_cannot_resend(
        settings: Settings, redis_client: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str]) -> None:
    members(redis_client, 4)
    redis_client.hdel(identifiers_key(TARGET.name), *redis_client.hkeys(identifiers_key(TARGET.name))[:1])
    assert run(settings, redis_client, "audiences", "resync", "1234", "--json") == 0
    (entry,) = orjson.loads(capsys.readouterr().out)["targets"]
    assert (entry["members"], entry["adds"], entry["without_identifiers"]) == (4, 3, 1)
    ((_, fields),) = redis_client.xrange(keys.stream(TARGET.name))
    sent = decode_entry(fields[b"o"])
    assert {op.action for op in sent} == {"add"} and len(sent) == 3
    assert int(redis_client.get(keys.pending_count(TARGET.name))) == 3
    assert redis_client.zscore(keys.lane_due("main"), TARGET.name) is not None


def test_resync_of_an_unknown_audience_is_refused(settings: Settings, redis_client: fakeredis.FakeRedis,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run(settings, redis_client, "audiences", "resync", "999") == 2
    assert "no audience '999' has recorded deliveries" in capsys.readouterr().err


def test_shadow_report_prints_adds_and_removes_per_audience(
        settings: Settings, redis_client: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = Ledger(redis_client, delivered_retention=3600, dead_retention=3600)
    for number, (action, audiences) in enumerate([("add", {"1234": 7, "would-create:vip": 2}),
                                                  ("delete", {"1234": 3})]):
        record = BatchRecord(id=f"b{number}", target=TARGET.name, destination="main", advertiser_id=ADVERTISER,
                             audience_id="", action=action, rows=sum(audiences.values()), audiences=audiences,
                             targets={TARGET.name: "1234", f"main|{ADVERTISER}|@vip": "would-create:vip"})
        pipe = redis_client.pipeline(transaction=True)
        ledger.stage(pipe, record, b"{}")
        ledger.stage_update(pipe, record, status="shadow", finished_at=time.time())
        pipe.execute()
    assert run(settings, redis_client, "shadow", "report", "--since", "1h") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(": 2 (recorded, not sent)")
    assert lines[2].split() == ["main", ADVERTISER, "1234", "7", "3", "2"]
    assert lines[3].split() == ["main", ADVERTISER, "would-create:vip", "(not", "created)", "2", "0", "1"]
    assert run(settings, redis_client, "shadow", "report", "--since", "1h", "--audience", "1234", "--json") == 0
    (only,) = orjson.loads(capsys.readouterr().out)["audiences"]
    assert (only["audience_id"], only["adds"], only["removes"]) == ("1234", 7, 3)
    assert run(settings, redis_client, "shadow", "report", "--since", "2h", "--until", "1h") == 0
    assert "no shadow requests in this range" in capsys.readouterr().out


def test_report_times_are_durations_ago_or_iso_times() -> None:
    assert parse_moment("4h", 100_000.0) == 100_000.0 - 4 * 3600
    assert parse_moment("2026-01-31T12:00", 0) == parse_moment("2026-01-31T12:00+00:00", 0)
    with pytest.raises(ValueError, match="cannot read time 'yesterday'"):
        parse_moment("yesterday", 0)
