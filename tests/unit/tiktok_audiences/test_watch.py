"""``tiktok-audiences stats --watch``: the live view, rendered to a recording console over fakeredis state."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
from rich.console import Console

from core.destinations import parse_destinations
from core.settings import Settings
from tiktok_audiences import watch
from tiktok_audiences.cli import build_parser
from tiktok_audiences.commands import stats
from tiktok_audiences.watch_sample import Sampler, token_destinations
from worker import keys, pause
from worker.keys import Target
from worker.ledger import BatchRecord, Ledger
from worker.limiter import RateLimiter
from worker.operations import Operation
from worker.queue import enqueue

TOKEN_ENV = "TTA_WATCH_TEST_TOKEN"
ADVERTISER = "7000000000000000001"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def ledger(client: fakeredis.FakeRedis) -> Ledger:
    return Ledger(client, delivered_retention=3600, dead_retention=86400)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def token_id(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, "a-token-the-view-never-shows")
    destinations = parse_destinations({"destinations": [
        {"id": "tiktok-main", "access_token_env": TOKEN_ENV, "advertiser_ids": [ADVERTISER]}]})
    return destinations.destinations[0].token_id()


@pytest.fixture
def sampler(client: fakeredis.FakeRedis, ledger: Ledger, clock: FakeClock, token_id: str) -> Sampler:
    destinations = parse_destinations({"destinations": [
        {"id": "tiktok-main", "access_token_env": TOKEN_ENV, "advertiser_ids": [ADVERTISER]}]})
    return Sampler(client, ledger, 10.0, token_destinations(destinations), clock=clock, wall_clock=time.time)


def _enqueue(client: fakeredis.FakeRedis, audience: str, users: int, *, now: float | None = None) -> None:
    target = Target("tiktok-main", ADVERTISER, audience)
    operations = [Operation(target, "add", email=f"{i:064x}") for i in range(users)]
    enqueue(client, operations, flush_interval=2.0, batch_size=10_000, now=now)


def _screen(sampler: Sampler, interval: float = 2.0) -> str:
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(watch.render(sampler.sample(), interval))
    return console.export_text()


def _row(screen: str, first_cell: str) -> str:
    return next(line for line in screen.splitlines() if first_cell in line)


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.split("│")[1:-1]]


def test_the_backlog_of_each_audience_is_shown_largest_first(client: fakeredis.FakeRedis,
                                                            sampler: Sampler) -> None:
    _enqueue(client, "1001", 3)
    _enqueue(client, "1002", 40)
    screen = _screen(sampler)
    assert "backlog 43 operations" in screen
    assert screen.index("1002") < screen.index("1001")
    cells = _cells(_row(screen, "1002"))
    assert cells[:4] == ["tiktok-main", ADVERTISER, "1002", "40"]
    assert cells[5] == "0"  # delivered members
    assert _cells(_row(screen, "1001"))[3] == "3"


def test_an_audience_waiting_long_shows_how_long_its_oldest_operation_waited(client: fakeredis.FakeRedis,
                                                                            sampler: Sampler) -> None:
    _enqueue(client, "1001", 2)
    # The oldest pending time comes from the stream entry id; the view is sampled five minutes after it.
    old_ms = int((time.time() - 3600) * 1000)
    client.xadd(keys.stream("tiktok-main|7000000000000000001|1003"), {"o": b"x"}, id=f"{old_ms}-0")
    client.sadd(keys.TARGETS, "tiktok-main|7000000000000000001|1003")
    client.set(keys.pending_count("tiktok-main|7000000000000000001|1003"), 1)
    sampler.wall_clock = lambda: old_ms / 1000 + 300
    row = _row(_screen(sampler), "1003")
    assert "5m00s" in row, row


def test_calls_per_second_are_measured_between_refreshes_against_the_rate_limit(
        client: fakeredis.FakeRedis, sampler: Sampler, clock: FakeClock, token_id: str) -> None:
    limiter = RateLimiter(client, qps=10)
    assert limiter.reserve(token_id, ahead=5.0)[0]
    first = _row(_screen(sampler), token_id)
    assert "tiktok-main" in first
    assert "measuring" in first
    for _ in range(8):
        granted, _wait = limiter.reserve(token_id, ahead=5.0)
        assert granted
    assert not limiter.reserve(token_id, ahead=0.0)[0]  # refused: not a call, not counted
    clock.now += 2.0
    assert "4.0 of 10 (40%)" in _row(_screen(sampler), token_id)
    clock.now += 2.0
    assert "0.0 of 10 (0%)" in _row(_screen(sampler), token_id)


def test_the_token_itself_never_appears(client: fakeredis.FakeRedis, sampler: Sampler, token_id: str) -> None:
    RateLimiter(client, qps=10).acquire(token_id)
    assert "a-token-the-view-never-shows" not in _screen(sampler)


def test_a_throttled_token_shows_its_cooldown(client: fakeredis.FakeRedis, sampler: Sampler,
                                              token_id: str) -> None:
    RateLimiter(client, qps=10).throttle(token_id, 30)
    row = _row(_screen(sampler), token_id)
    assert "throttled" in row
    assert "s left" in row
    seconds = float(row.split("throttled, ")[1].split("s left")[0])
    assert 0 < seconds <= 30


def test_a_token_without_a_destination_in_the_file_is_shown_by_its_id(client: fakeredis.FakeRedis,
                                                                       sampler: Sampler) -> None:
    RateLimiter(client, qps=10).throttle("0123456789abcdef", 5)
    assert "throttled" in _row(_screen(sampler), "0123456789abcdef")


def test_paused_destinations_show_why_and_the_command_that_resumes_them(client: fakeredis.FakeRedis,
                                                                        sampler: Sampler) -> None:
    _enqueue(client, "1001", 2)
    pause.pause(client, "tiktok-main", reason="Access token is expired", code=40105)
    screen = _screen(sampler)
    assert "Paused destinations" in screen
    row = _row(screen, "tiktok-audiences destinations resume tiktok-main")
    assert "40105" in row
    assert "Access token is expired" in row


def test_nothing_paused_and_nothing_dead_shows_no_such_tables(client: fakeredis.FakeRedis,
                                                              sampler: Sampler) -> None:
    _enqueue(client, "1001", 2)
    screen = _screen(sampler)
    assert "Paused destinations" not in screen
    assert "dead batches" not in screen


def _dead_batch(ledger: Ledger, client: fakeredis.FakeRedis, batch_id: str, message: str) -> None:
    record = BatchRecord(id=batch_id, target=f"tiktok-main|{ADVERTISER}|1001", destination="tiktok-main",
                         advertiser_id=ADVERTISER, audience_id="1001", action="add", rows=1234)
    pipe = client.pipeline(transaction=True)
    ledger.stage(pipe, record, b"[]")
    pipe.execute()
    ledger.update(record, status="dead", last_code=40002, last_message=message, finished_at=time.time())


def test_recent_dead_batches_are_listed_newest_first(client: fakeredis.FakeRedis, ledger: Ledger,
                                                     sampler: Sampler) -> None:
    _dead_batch(ledger, client, "batch-older", "audience does not belong to the advertiser")
    time.sleep(0.01)
    _dead_batch(ledger, client, "batch-newer", "invalid id_schema")
    screen = _screen(sampler)
    assert screen.index("batch-newer") < screen.index("batch-older")
    cells = _cells(_row(screen, "batch-newer"))
    assert cells[0] == "batch-newer"
    assert cells[2:] == ["tiktok-main", "1001", "add", "1,234", "40002", "invalid id_schema"]


def test_ctrl_c_ends_the_watch_with_exit_code_0(client: fakeredis.FakeRedis, sampler: Sampler) -> None:
    _enqueue(client, "1001", 7)
    slept: list[float] = []

    def interrupted(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            raise KeyboardInterrupt

    output = io.StringIO()
    console = Console(file=output, width=160, force_terminal=False)
    assert watch.watch(sampler, interval=1.5, console=console, sleep=interrupted) == 0
    assert slept == [1.5, 1.5]
    assert "Backlog per audience" in output.getvalue()


def test_the_view_is_redrawn_every_interval_with_fresh_state(client: fakeredis.FakeRedis, sampler: Sampler,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    frames: list[str] = []
    original = watch.render

    def recording(snapshot: Any, interval: float) -> Any:
        frame = original(snapshot, interval)
        capture = Console(record=True, width=160, file=io.StringIO())
        capture.print(frame)
        frames.append(capture.export_text())
        return frame

    def more_events(seconds: float) -> None:
        _enqueue(client, "1001", 5)

    monkeypatch.setattr(watch, "render", recording)
    console = Console(width=160, file=io.StringIO(), force_terminal=True)
    assert watch.watch(sampler, interval=0.25, console=console, refreshes=2, sleep=more_events) == 0
    assert len(frames) == 3
    assert "backlog 0 operations" in frames[0]
    assert "backlog 5 operations" in frames[1]
    assert "backlog 10 operations" in frames[2]


def test_redis_going_away_is_shown_and_the_watch_goes_on(clock: FakeClock) -> None:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    sampler = Sampler(client, Ledger(client, delivered_retention=60, dead_retention=60), 10.0, clock=clock)
    server.connected = False
    screen = _screen(sampler)
    assert "cannot read from Redis: ConnectionError" in screen
    server.connected = True
    assert "Backlog per audience" in _screen(sampler)


# -- the command line ----------------------------------------------------------------------------------------


def _stats(settings: Settings, client: fakeredis.FakeRedis, *argv: str) -> int:
    args = build_parser().parse_args(["stats", *argv])
    return stats.stats(args, settings, client)


def test_stats_watch_runs_the_live_view_until_ctrl_c(settings: Settings, client: fakeredis.FakeRedis,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _enqueue(client, "1001", 4)
    intervals: list[float] = []
    original: Callable[..., int] = watch.watch

    def stop_at_first_sleep(sampler: Sampler, **kwargs: Any) -> int:
        def ctrl_c(seconds: float) -> None:
            intervals.append(seconds)
            raise KeyboardInterrupt

        return original(sampler, sleep=ctrl_c, **kwargs)

    monkeypatch.setattr(watch, "watch", stop_at_first_sleep)
    assert _stats(settings, client, "--watch", "--interval", "0.5") == 0
    assert intervals == [0.5]
    out = capsys.readouterr().out
    assert "backlog 4 operations" in out
    assert "1001" in out


def test_stats_json_stays_one_document_and_refuses_watch(settings: Settings, client: fakeredis.FakeRedis,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import json

    _enqueue(client, "1001", 4)
    assert _stats(settings, client, "--json") == 0
    assert json.loads(capsys.readouterr().out)["backlog"] == 4
    assert _stats(settings, client, "--json", "--watch") == 2
    assert "give one of them" in capsys.readouterr().err


@pytest.mark.parametrize("interval", ["0", "-1", "soon", "86400"])
def test_the_refresh_interval_must_be_a_sensible_number_of_seconds(interval: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["stats", "--watch", "--interval", interval])
    assert "--interval" in capsys.readouterr().err
