"""The delivered-membership record: net size per audience, newest operation per user wins."""

from __future__ import annotations

import fakeredis

from worker.membership import Membership, member_key, member_keys
from worker.operations import PackedOperation

TARGET = "dest|7000000000000000001|123"


def user(i: int, action: str = "add") -> PackedOperation:
    return PackedOperation(action, f"{i:064x}", "", "", "")  # type: ignore[arg-type]


def test_adds_and_deletes_keep_the_net_size() -> None:
    membership = Membership(fakeredis.FakeRedis())

    assert membership.record(TARGET, "add", "1-0", [user(1), user(2), user(3)]) == 3
    assert membership.record(TARGET, "delete", "2-0", [user(2, "delete"), user(9, "delete")]) == 2
    assert membership.size(TARGET) == 2


def test_an_older_position_never_overwrites_a_newer_one() -> None:
    membership = Membership(fakeredis.FakeRedis())
    membership.record(TARGET, "delete", "5-0", [user(1, "delete")])

    assert membership.record(TARGET, "add", "4-0", [user(1)]) == 0  # a replay of an older add
    assert membership.superseded(TARGET, "4-0", [user(1), user(2)]) == [True, False]


def test_a_user_twice_in_one_call_counts_once() -> None:
    assert Membership(fakeredis.FakeRedis()).record(TARGET, "add", "1-0", [user(1), user(1)]) == 1


def test_bulk_keys_match_single_keys() -> None:
    ops = [user(1), PackedOperation("delete", "", f"{2:064x}", f"{3:064x}", "AAID_SHA256")]
    assert member_keys(ops) == [member_key(op) for op in ops]
