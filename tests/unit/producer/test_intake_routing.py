"""The intake's route step: a request's events become target groups of packed operations, refusals by index
and counters, with no Redis at all."""

from __future__ import annotations

from producer.intake_routing import route_request
from tests.support.intake import TARGET, create_audience, entered, exploding_router, router, sha

NOW = 1_000.0
A_DAY_MS = 86_400_000


def test_operations_are_grouped_by_target_in_request_order() -> None:
    routed = route_request(router(), [entered("a@example.com", "m1"), entered("b@example.com", "m2", exited=True)],
                           now=NOW, max_skew_ms=A_DAY_MS)

    assert list(routed.grouped) == [TARGET.name]
    assert [(p[0], p[1]) for p in routed.grouped[TARGET.name]] == [("a", sha("a@example.com")),
                                                                   ("d", sha("b@example.com"))]
    assert (routed.count, routed.operations, routed.refusals, routed.creates) == (2, 2, [], [])
    assert routed.only_operations() and routed.counters() == {}


def test_refusals_name_the_event_by_index_and_the_rest_goes_on() -> None:
    events = ["not an event", entered(None, "m-none"), create_audience("VIP"), {"type": "page", "userId": "u"}]
    routed = route_request(router(), events, now=NOW, max_skew_ms=A_DAY_MS)

    assert [(r.position, r.code) for r in routed.refusals] == [(0, "invalid_event"), (1, "no_identifier")]
    assert [c.name for c in routed.creates] == ["VIP"]
    assert routed.counters() == {"unmatched": 1}
    answer = routed.result(operations=0, creates=1)
    assert (answer.accepted, answer.rejected, answer.creates, answer.unmatched) == (2, 2, 1, 1)


def test_times_too_far_ahead_are_clamped_to_the_time_received() -> None:
    ahead = {**entered(), "timestamp": "1970-01-01T00:16:41Z"}  # 1,001 s: 1 s past the allowed skew
    routed = route_request(router(), [ahead], now=NOW, max_skew_ms=0)

    assert routed.clamped == 1 and routed.grouped[TARGET.name][0][5] == 1_000_000


def test_a_routing_bug_refuses_that_event_and_is_kept_for_the_log() -> None:
    routed = route_request(exploding_router(), [{"type": "track", "event": "Explode", "userId": "u"}, entered()],
                           now=NOW, max_skew_ms=A_DAY_MS)

    assert [(r.position, r.code) for r in routed.refusals] == [(0, "internal_error")]
    assert routed.operations == 1
    assert [type(e).__name__ for e in routed.routing_errors] == ["RuntimeError"]
