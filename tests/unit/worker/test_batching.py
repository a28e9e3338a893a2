"""Batching: collapse to the last operation per user, one action per request, at most batch_size rows."""

from worker.batching import collapse, plan_requests, split_phases
from worker.operations import AAID_SHA256, EMAIL_SHA256, IDFA_SHA256, PHONE_SHA256, PackedOperation

E1, E2, E3 = "a" * 64, "b" * 64, "c" * 64
P1 = "d" * 64


def op(action: str, email: str = "", phone: str = "") -> PackedOperation:
    return PackedOperation(action, email, phone, "", "")  # type: ignore[arg-type]


def test_add_then_remove_of_the_same_user_collapses_to_the_remove() -> None:
    assert collapse([op("add", E1), op("delete", E1)]) == [op("delete", E1)]


def test_collapse_keeps_the_order_of_each_users_last_operation() -> None:
    ops = [op("add", E1), op("add", E2), op("delete", E1), op("add", E3)]
    assert collapse(ops) == [op("add", E2), op("delete", E1), op("add", E3)]


def test_one_request_per_action_when_users_do_not_overlap() -> None:
    requests = plan_requests([op("add", E1), op("delete", E2), op("add", E3)], batch_size=10_000)
    assert [(r.action, len(r.operations)) for r in requests] == [("add", 2), ("delete", 1)]


def test_rows_carry_one_cell_per_identifier() -> None:
    (request,) = plan_requests([op("add", E1, P1)], batch_size=10)
    assert request.rows == [{EMAIL_SHA256: E1, PHONE_SHA256: P1}]


def test_requests_never_exceed_the_batch_size() -> None:
    ops = [op("add", f"{i:064x}") for i in range(25_000)]
    requests = plan_requests(ops, batch_size=10_000)
    assert [len(r.operations) for r in requests] == [10_000, 10_000, 5_000]


def test_different_rows_sharing_an_identifier_are_sent_in_order() -> None:
    # The same email is added with a phone, then removed without one: the removal must go after the add.
    ops = [op("add", E1, P1), op("delete", E1)]
    assert [[o.action for o in phase] for phase in split_phases(ops)] == [["add"], ["delete"]]
    assert [r.action for r in plan_requests(ops, batch_size=10)] == ["add", "delete"]


def device(action: str, digest: str, kind: str) -> PackedOperation:
    return PackedOperation(action, "", "", digest, kind)  # type: ignore[arg-type]


def test_an_advertising_id_shared_by_two_rows_orders_them_only_for_the_same_id_type() -> None:
    # The same digest as an IDFA and as an AAID names two different devices: the requests commute.
    assert len(split_phases([device("add", E1, IDFA_SHA256), device("delete", E1, AAID_SHA256)])) == 1
    # The same IDFA added with an email and removed without one: the removal goes after the add.
    with_email = PackedOperation("add", E2, "", E1, IDFA_SHA256)
    phases = split_phases([with_email, device("delete", E1, IDFA_SHA256)])
    assert [[o.action for o in phase] for phase in phases] == [["add"], ["delete"]]
