"""Planning a lane's requests: rows of many audiences per request, one row per user, order per audience."""

from __future__ import annotations

import orjson

from worker.lane_plan import decode_payload, encode_payload, plan_lane, split_targets, wire_rows
from worker.operations import EMAIL_SHA256, PHONE_SHA256, PackedOperation
from worker.tiktok.wire import AudienceRow, audiences_body


def op(action: str, user: int, phone: int | None = None) -> PackedOperation:
    return PackedOperation(action, f"{user:064x}", f"{phone:064x}" if phone is not None else "", "", "")  # type: ignore[arg-type]


def test_every_audience_shares_one_request_per_action() -> None:
    plan = plan_lane({"d|1|a": [op("add", 1), op("delete", 2)], "d|1|b": [op("add", 3)]}, batch_size=100)
    assert [(r.action, {t: len(o) for t, o in r.by_target.items()}) for r in plan] == [
        ("add", {"d|1|a": 1, "d|1|b": 1}), ("delete", {"d|1|a": 1})]


def test_a_user_in_several_audiences_is_one_row_naming_them_all() -> None:
    (request,) = plan_lane({t: [op("add", 7)] for t in ("d|1|a", "d|1|b", "d|1|c")}, batch_size=100)
    assert request.rows == 1
    rows = wire_rows(request.by_target, {"d|1|a": "1", "d|1|b": "2", "d|1|c": "3"})
    assert [(row.cells, row.audience_ids) for row in rows] == [({EMAIL_SHA256: f"{7:064x}"}, ["1", "2", "3"])]


def test_requests_hold_at_most_batch_size_rows_counting_users_once() -> None:
    by_target = {f"d|1|{n}": [op("add", u) for u in range(30)] for n in range(4)}  # the same 30 users each
    plan = plan_lane(by_target, batch_size=20)
    assert [r.rows for r in plan] == [20, 10]


def test_audiences_without_shared_users_fill_requests_to_batch_size_in_order() -> None:
    by_target = {f"d|1|{n}": [op("add", 100 * n + u) for u in range(30)] for n in range(4)}  # 120 users
    plan = plan_lane(by_target, batch_size=50)
    assert [r.rows for r in plan] == [50, 50, 20]
    assert [{t: len(o) for t, o in r.by_target.items()} for r in plan] == [
        {"d|1|0": 30, "d|1|1": 20}, {"d|1|1": 10, "d|1|2": 30, "d|1|3": 10}, {"d|1|3": 20}]
    # Every operation once, in its audience's order.
    for target, ops in by_target.items():
        assert [o for r in plan for o in r.by_target.get(target, [])] == ops


def test_a_shared_user_joins_its_row_in_an_earlier_request_of_the_phase() -> None:
    by_target = {"d|1|a": [op("add", u) for u in range(3)], "d|1|b": [op("add", 9), op("add", 0)]}
    plan = plan_lane(by_target, batch_size=3)
    assert [r.rows for r in plan] == [3, 1]
    assert [{t: len(o) for t, o in r.by_target.items()} for r in plan] == [{"d|1|a": 3, "d|1|b": 1}, {"d|1|b": 1}]
    assert plan[0].by_target["d|1|b"] == [op("add", 0)]


def test_phases_of_one_audience_go_in_order_across_requests() -> None:
    # The same email added with a phone, then deleted alone: two rows sharing an identifier, so two phases.
    by_target = {"d|1|a": [op("add", 1, phone=9), op("delete", 1)], "d|1|b": [op("add", 5)]}
    plan = plan_lane(by_target, batch_size=100)
    assert [(r.action, sorted(r.by_target)) for r in plan] == [("add", ["d|1|a", "d|1|b"]), ("delete", ["d|1|a"])]
    assert plan[0].by_target["d|1|a"][0].phone == f"{9:064x}"


def test_halves_split_by_audience() -> None:
    by_target = {f"d|1|{n}": [op("add", n)] for n in range(5)}
    first, second = split_targets(by_target)
    assert list(first) == ["d|1|0", "d|1|1"] and list(second) == ["d|1|2", "d|1|3", "d|1|4"]


def test_payloads_read_back_per_audience_and_old_payloads_as_their_target() -> None:
    by_target = {"d|1|a": [op("add", 1)], "d|1|b": [op("delete", 2)]}
    assert decode_payload(encode_payload(by_target), "unused") == by_target
    old = orjson.dumps([["a", f"{1:064x}", "", "", ""]])
    assert decode_payload(old, "d|1|a") == {"d|1|a": [op("add", 1)]}


def test_the_body_names_every_audience_in_each_cell_and_every_advertiser() -> None:
    rows = [AudienceRow(PackedOperation("add", "a" * 64, "b" * 64, "", ""), ["1", "2"]),
            AudienceRow(PackedOperation("add", "c" * 64, "", "", ""), ["2"])]
    body = orjson.loads(audiences_body(["7001", "7002"], "add", rows))
    assert body == {
        "advertiser_ids": ["7001", "7002"], "action": "add", "id_schema": [EMAIL_SHA256, PHONE_SHA256],
        "batch_data": [[{"id": "a" * 64, "audience_ids": ["1", "2"]}, {"id": "b" * 64, "audience_ids": ["1", "2"]}],
                       [{"id": "c" * 64, "audience_ids": ["2"]}, {}]],
    }
