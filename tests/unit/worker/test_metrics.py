"""Worker metrics: outcomes counted where they happen, due work read from Redis as the autoscaling signal."""

from __future__ import annotations

import urllib.error
import urllib.request

import fakeredis
from prometheus_client import CollectorRegistry, generate_latest

from worker import keys, metrics
from worker.metrics import FleetCollector, read_destination_work, read_due_work
from worker.probes import ProbeServer

NOW = 1_000_000.0
LEASE = 50.0


def value(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_outcomes_and_delivered_rows_are_counted_once_per_change() -> None:
    before = value("tta_batches_total", outcome="delivered"), value("tta_rows_total", action="add")
    metrics.batch_status("delivering", "delivered", "add", 120)
    metrics.batch_status("delivered", "delivered", "add", 120)  # no change: nothing counted
    metrics.batch_status("pending", "delivering", "add", 120)  # a step, not an outcome
    assert value("tta_batches_total", outcome="delivered") == before[0] + 1
    assert value("tta_rows_total", action="add") == before[1] + 120


def test_tiktok_calls_are_counted_by_endpoint_and_code_and_timed() -> None:
    before = value("tta_tiktok_requests_total", endpoint="segment/mapping", code="40100")
    metrics.tiktok_call("/segment/mapping/", 40100, 0.2)
    assert value("tta_tiktok_requests_total", endpoint="segment/mapping", code="40100") == before + 1
    assert value("tta_tiktok_request_duration_seconds_count", endpoint="segment/mapping") >= 1


def seeded() -> fakeredis.FakeRedis:
    client = fakeredis.FakeRedis()
    client.zadd(keys.READY, {
        "main|1|a": NOW - 30,  # overdue 30 s, unclaimed
        "main|1|b": 0,  # a full batch: due at once
        "main|1|c": NOW + LEASE - 1,  # claimed (being drained)
        "main|1|d": NOW + 300,  # backing off far beyond a lease
        "paused|1|e": NOW - 5,  # its destination is paused
        "slow|1|f": NOW - 5,  # its token is cooling down after a throttle
    })
    client.set(keys.paused("paused"), "{}")
    client.set(keys.cooldown("tok-slow"), "1", px=5000)
    return client


TOKENS = {"main": "tok-main", "paused": "tok-paused", "slow": "tok-slow"}


def test_due_work_counts_what_more_workers_would_speed_up() -> None:
    work = read_due_work(seeded(), TOKENS, lease=LEASE, now=NOW)
    assert work.due_targets == 3  # a, b and c; not d (backoff), e (paused) or f (throttled)
    assert work.oldest_due_age == 30
    assert (work.paused_destinations, work.throttled_tokens) == (1, 1)


def test_no_work_is_zero_everywhere() -> None:
    work = read_due_work(fakeredis.FakeRedis(), TOKENS, lease=LEASE, now=NOW)
    assert (work.due_targets, work.oldest_due_age, work.paused_destinations, work.throttled_tokens) == (0, 0, 0, 0)


def test_the_collector_exports_fleet_gauges_read_at_scrape_time() -> None:
    client = seeded()
    client.set(keys.BACKLOG, 1234)
    client.rpush("tta.drain", "task-1", "task-2")
    registry = CollectorRegistry()
    registry.register(FleetCollector(client, lambda: TOKENS, lease=1e9,
                                     queued_tasks=lambda: int(client.llen("tta.drain"))))
    text = generate_latest(registry).decode()
    assert "tta_backlog_operations 1234.0" in text
    assert "tta_due_targets 4.0" in text  # with a huge lease the far backoff counts too
    assert "tta_paused_destinations 1.0" in text
    assert "tta_drain_queue_tasks 2.0" in text


def with_pending_work() -> fakeredis.FakeRedis:
    client = fakeredis.FakeRedis()
    pending = {"main|1|10": 40, "main|1|11": 2, "main|2|12": 0, "other|7|70": 5}
    client.sadd(keys.TARGETS, *pending)
    for target, count in pending.items():
        client.set(keys.pending_count(target), count)
    client.zadd(keys.lane_due("main"), {"main|1|10": NOW, "main|1|11": NOW + 60})
    client.zadd(keys.lane_due("other"), {"other|7|70": 0})
    return client


def test_backlog_and_due_audiences_are_read_per_destination() -> None:
    work = read_destination_work(with_pending_work(), ["main", "other", "idle"])
    assert work.backlog == {"main": 42, "other": 5, "idle": 0}
    assert work.due_audiences == {"main": 2, "other": 1, "idle": 0}


def test_a_destination_no_longer_configured_still_shows_its_backlog() -> None:
    work = read_destination_work(with_pending_work(), ["main"])
    assert work.backlog == {"main": 42, "other": 5}
    assert work.due_audiences["other"] == 1


def test_past_the_target_cap_the_per_destination_backlog_is_left_out_not_guessed() -> None:
    work = read_destination_work(with_pending_work(), ["main", "other"], targets_max=3)
    assert work.backlog is None
    assert work.due_audiences == {"main": 2, "other": 1}


def test_the_collector_exports_per_destination_gauges_with_a_destination_label() -> None:
    registry = CollectorRegistry()
    registry.register(FleetCollector(with_pending_work(), lambda: {"main": "tok-main", "other": "tok-other"},
                                     lease=LEASE))
    text = generate_latest(registry).decode()
    assert 'tta_destination_backlog_operations{destination="main"} 42.0' in text
    assert 'tta_destination_backlog_operations{destination="other"} 5.0' in text
    assert 'tta_destination_due_audiences{destination="main"} 2.0' in text


class DownRedis(fakeredis.FakeRedis):
    def get(self, *args: object, **kwargs: object) -> object:
        import redis

        raise redis.ConnectionError("down")


def test_a_scrape_without_redis_leaves_the_fleet_gauges_out_instead_of_failing() -> None:
    registry = CollectorRegistry()
    registry.register(FleetCollector(DownRedis(), lambda: TOKENS, lease=LEASE))
    assert "tta_due_targets" not in generate_latest(registry).decode()


def test_the_probe_server_answers_liveness_readiness_and_metrics() -> None:
    problems: dict[str, str | None] = {"alive": None, "ready": "Redis refuses writes"}
    registry = CollectorRegistry()
    server = ProbeServer("127.0.0.1", 0, alive=lambda: problems["alive"], ready=lambda: problems["ready"],
                         registry=lambda: registry).start()
    base = f"http://127.0.0.1:{server.port}"

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    try:
        assert status("/healthz") == 200
        assert status("/readyz") == 503
        assert status("/metrics") == 200
        assert status("/nope") == 404
        problems["alive"] = "the scheduler is not running"
        assert status("/healthz") == 503
    finally:
        server.stop()


def test_a_ready_index_of_whole_destinations_is_read_the_same_way() -> None:
    # Members named by destination alone (one entry per destination's work) are held back by that destination's
    # pause or throttle exactly as its targets are.
    client = fakeredis.FakeRedis()
    client.zadd(keys.READY, {"main": NOW - 1, "paused": NOW - 1, "slow": NOW - 1})
    client.set(keys.paused("paused"), "{}")
    client.set(keys.cooldown("tok-slow"), "1", px=5000)
    assert read_due_work(client, TOKENS, lease=LEASE, now=NOW).due_targets == 1
