"""The delivered-membership record: event time decides against what was already delivered, and the net size
moves only when a user's state changes.

Runs against fakeredis (with its Lua support) always, and also against a real Redis server when
``TTA_TEST_REDIS_URL`` points at one, e.g. ``redis://127.0.0.1:6379/15``. Every test uses its own random
target, so a real server's other data is left alone.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from worker import keys
from worker import membership as membership_module
from worker.event_order import latest_per_user, order_key, tie_break
from worker.membership import (
    Membership,
    _script_calls,
    identifiers_key,
    member_key,
    member_keys,
    unpack_identifiers,
)
from worker.operations import PackedOperation

ACCEPTED = 1_765_000_000_000  # epoch ms
POSITION = f"{ACCEPTED}-0"  # a stream position accepted at ACCEPTED


@pytest.fixture(params=["fakeredis", "real-redis"])
def client(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis()
        return
    url = os.environ.get("TTA_TEST_REDIS_URL")
    if not url:
        pytest.skip("set TTA_TEST_REDIS_URL to run against a real Redis")
    real = redis.Redis.from_url(url)
    yield real
    real.close()


@pytest.fixture
def target(client: redis.Redis) -> Iterator[str]:
    name = f"dest|7000000000000000001|test-{uuid.uuid4().hex}"
    yield name
    client.delete(keys.membership(name), keys.membership_size(name), identifiers_key(name),
                  membership_module.newest_key(name))


@pytest.fixture
def membership(client: redis.Redis) -> Membership:
    return Membership(client)


def user(i: int, action: str = "add", event_ms: int = ACCEPTED, message_id: str = "") -> PackedOperation:
    return PackedOperation(action, f"{i:064x}", "", "", "", event_ms, message_id or f"m{i}-{event_ms}")  # type: ignore[arg-type]


def members(client: redis.Redis, target: str) -> set[str]:
    """Digests of the users the record holds as added."""
    return {k.decode() for k, v in client.hgetall(keys.membership(target)).items() if v.endswith(b"a")}


# -- the net size ----------------------------------------------------------------------------------------


def test_adds_and_deletes_keep_the_net_size(membership: Membership, target: str) -> None:
    assert membership.record(target, "add", POSITION, [user(1), user(2), user(3)]) == 3
    assert membership.record(target, "delete", POSITION,
                             [user(2, "delete", ACCEPTED + 1), user(9, "delete", ACCEPTED + 1)]) == 2
    assert membership.size(target) == 2


def test_only_a_change_of_state_moves_the_size(membership: Membership, target: str) -> None:
    assert membership.record(target, None, POSITION, [user(1, "delete", 10)]) == 0  # absent -> removed
    assert membership.record(target, None, POSITION, [user(1, "add", 20)]) == 1  # removed -> added
    assert membership.record(target, None, POSITION, [user(1, "add", 30)]) == 1  # added -> added
    assert membership.record(target, None, POSITION, [user(1, "delete", 40)]) == 0  # added -> removed
    assert membership.record(target, None, POSITION, [user(1, "delete", 50)]) == 0  # removed -> removed


def test_without_a_request_action_each_operation_records_its_own(membership: Membership, target: str,
                                                                 client: redis.Redis) -> None:
    assert membership.record(target, None, POSITION, [user(1), user(2, "delete"), user(3)]) == 2
    assert members(client, target) == {member_key(user(1)), member_key(user(3))}


def test_a_user_twice_in_one_call_counts_once(membership: Membership, target: str) -> None:
    assert membership.record(target, "add", POSITION, [user(1), user(1)]) == 1


# -- event time decides ----------------------------------------------------------------------------------


def test_an_older_event_changes_nothing_and_is_counted_superseded(membership: Membership,
                                                                  target: str) -> None:
    membership.record(target, None, POSITION, [user(1, "delete", 2_000)])
    late_entry = user(1, "add", 1_000)  # happened before the exit, arrived after it

    assert membership.fresh(target, [late_entry, user(2, "add", 1_000)]) == ([user(2, "add", 1_000)], 1)
    assert membership.record(target, None, POSITION, [late_entry]) == 0  # recorded anyway: still no effect


def test_a_newer_event_is_news(membership: Membership, target: str) -> None:
    membership.record(target, None, POSITION, [user(1, "add", 1_000)])
    exit_ = user(1, "delete", 1_001)

    assert membership.fresh(target, [exit_]) == ([exit_], 0)
    assert membership.record(target, None, POSITION, [exit_]) == 0


def test_a_resend_of_an_applied_event_is_a_no_op(membership: Membership, target: str) -> None:
    entry = user(1, "add", 1_000, "msg-1")
    membership.record(target, None, POSITION, [entry])

    assert membership.fresh(target, [entry]) == ([], 1)


def test_events_of_the_same_millisecond_are_ordered_by_message_id(membership: Membership, target: str) -> None:
    first, second = sorted(["msg-a", "msg-b"], key=tie_break)
    membership.record(target, None, POSITION, [user(1, "add", 1_000, second)])

    assert membership.fresh(target, [user(1, "delete", 1_000, first)]) == ([], 1)
    assert membership.fresh(target, [user(1, "delete", 1_001, first)])[1] == 0


def test_a_missing_event_time_is_the_acceptance_time(membership: Membership, target: str) -> None:
    membership.record(target, None, POSITION, [user(1, "add", ACCEPTED + 5)])
    untimed = user(1, "delete", 0, "untimed")

    assert membership.fresh(target, [untimed], ACCEPTED) == ([], 1)  # accepted before the recorded event
    assert membership.fresh(target, [untimed], [ACCEPTED + 9]) == ([untimed], 0)
    # Recorded without acceptance times, an untimed operation is ordered by its batch's stream position.
    assert membership.record(target, None, f"{ACCEPTED + 9}-3", [untimed]) == 0
    assert membership.fresh(target, [user(1, "add", ACCEPTED + 8)]) == ([], 1)


def test_without_acceptance_times_an_operation_without_event_time_is_news(membership: Membership,
                                                                         target: str) -> None:
    # It was accepted no later than it is checked, so after everything delivered before it (as it was before
    # operations carried event times).
    membership.record(target, None, POSITION, [user(1, "add", 0, "")])
    untimed = user(1, "delete", 0, "")

    assert membership.fresh(target, [untimed]) == ([untimed], 0)
    assert membership.news(target, [untimed])[1] == 0


def test_recording_twice_changes_nothing(membership: Membership, target: str, client: redis.Redis) -> None:
    batch = [user(1, "add", 10), user(2, "add", 10), user(3, "delete", 10)]
    assert membership.record(target, None, POSITION, batch) == 2
    before = client.hgetall(keys.membership(target))

    assert membership.record(target, None, POSITION, batch) == 2
    assert client.hgetall(keys.membership(target)) == before


def test_a_replay_of_an_old_batch_is_refused_for_superseded_users(membership: Membership,
                                                                  target: str) -> None:
    old_batch = [user(1, "add", 1_000), user(2, "add", 1_000)]
    membership.record(target, None, POSITION, [user(1, "delete", 2_000)])

    assert membership.superseded(target, POSITION, old_batch) == [True, False]
    assert membership.record(target, "add", POSITION, old_batch) == 1  # only user 2 joins
    assert membership.fresh(target, [user(1, "add", 1_500)]) == ([], 1)  # user 1's exit still stands


def test_a_replay_is_judged_by_its_positions_time_when_events_carry_none(membership: Membership,
                                                                          target: str) -> None:
    membership.record(target, None, POSITION, [user(1, "delete", ACCEPTED + 100)])
    untimed = [user(1, "add", 0, "x"), user(2, "add", 0, "y")]

    assert membership.superseded(target, f"{ACCEPTED + 50}-0", untimed) == [True, False]
    assert membership.superseded(target, f"{ACCEPTED + 150}-0", untimed) == [False, False]


def test_state_written_before_event_times_still_reads(membership: Membership, target: str,
                                                      client: redis.Redis) -> None:
    # The earlier record: a 23-character stream position tag (15-digit ms, 8-digit sequence), then the action.
    legacy = {member_key(user(1)): f"{ACCEPTED:015d}{7:08d}a", member_key(user(2)): f"{ACCEPTED:015d}{7:08d}d"}
    client.hset(keys.membership(target), mapping=legacy)
    client.set(keys.membership_size(target), 1)

    assert membership.fresh(target, [user(1, "delete", ACCEPTED - 1), user(2, "add", ACCEPTED + 1)]) == (
        [user(2, "add", ACCEPTED + 1)], 1)
    assert membership.record(target, None, POSITION, [user(1, "delete", ACCEPTED + 1),
                                                      user(2, "add", ACCEPTED + 1)]) == 1
    assert members(client, target) == {member_key(user(2))}
    rewritten = user(1, "delete", ACCEPTED + 1)
    assert client.hget(keys.membership(target), member_key(rewritten)) == (
        order_key(rewritten.event_ms, rewritten.message_id) + "d").encode()


def test_large_batches_are_checked_and_recorded_in_chunks(membership: Membership, target: str) -> None:
    batch = [user(i, "add", 1_000) for i in range(12_001)]
    assert membership.record(target, None, POSITION, batch) == 12_001

    newer = [user(i, "delete", 2_000) if i % 2 else user(i, "add", 500) for i in range(12_001)]
    kept, superseded = membership.fresh(target, newer)
    assert (len(kept), superseded) == (6_000, 6_001)
    assert membership.record(target, None, POSITION, newer) == 6_001


def test_nothing_to_check_or_record(membership: Membership, target: str) -> None:
    assert membership.fresh(target, []) == ([], 0)
    assert membership.superseded(target, POSITION, []) == []
    assert membership.record(target, "add", POSITION, []) == 0


def test_state_written_before_event_times_is_always_looked_up(membership: Membership, target: str,
                                                             client: redis.Redis) -> None:
    client.hset(keys.membership(target), member_key(user(2)), f"{ACCEPTED:015d}{7:08d}a")
    membership.record(target, None, POSITION, [user(1, "add", ACCEPTED - 100)])

    # The record now holds a newer entry than the one just written: an operation between them is no news.
    assert membership.fresh(target, [user(2, "delete", ACCEPTED - 50)]) == ([], 1)


def test_operations_newer_than_everything_recorded_need_no_lookup(
        membership: Membership, target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up: list[int] = []
    real_calls = membership_module._script_calls

    def counting(work: list[tuple[str, list[str]]]) -> Any:
        looked_up.append(sum(len(arguments) for _, arguments in work))
        return real_calls(work)

    monkeypatch.setattr(membership_module, "_script_calls", counting)
    first = [user(i, "add", 1_000) for i in range(10)]
    assert membership.fresh(target, first) == (first, 0)  # nothing recorded yet
    membership.record(target, None, POSITION, first)
    later = [user(i, "delete", 1_001) for i in range(10)]
    assert membership.fresh(target, later) == (later, 0)  # all newer than the newest recorded
    mixed = [user(1, "delete", 999), user(2, "add", 1_000), user(3, "delete", 2_000)]  # older, resent, newer
    assert membership.fresh(target, mixed) == ([user(3, "delete", 2_000)], 2)

    # Checks looked up nothing, then nothing, then only the two no newer than the newest recorded (the 10 are
    # the record's own writes).
    assert looked_up == [0, 10, 0, 2]


def test_news_is_what_a_drain_sends_of_what_it_cut(membership: Membership, target: str) -> None:
    membership.record(target, None, POSITION, [user(1, "add", ACCEPTED + 10)])
    cut = [
        user(1, "delete", ACCEPTED + 5),  # older than what was delivered
        user(2, "add", ACCEPTED + 30), user(2, "delete", ACCEPTED + 20),  # the add is the latest
        user(3, "delete", 0, "untimed"),  # accepted at ACCEPTED + 40: its acceptance is its time
    ]
    kept, dropped = membership.news(target, cut, [ACCEPTED] * 3 + [ACCEPTED + 40])

    assert kept == [user(2, "add", ACCEPTED + 30), user(3, "delete", ACCEPTED + 40, "untimed")]
    assert dropped == 2


# -- many audiences at once (a request carrying rows of many) -------------------------------------------


def test_many_audiences_are_checked_at_once_each_against_its_own_record(
        membership: Membership, target: str, client: redis.Redis) -> None:
    other = target + "-other"
    membership.record(target, None, POSITION, [user(1, "delete", 2_000)])
    membership.record(other, None, POSITION, [user(1, "add", 500)])
    ops = [user(1, "add", 1_000)]

    assert membership.fresh_many([(target, ops, 0), (other, ops, 0), (target + "-empty", [], 0)]) == [
        ([], 1), (ops, 0), ([], 0)]
    client.delete(keys.membership(other), keys.membership_size(other))


def test_many_audiences_are_recorded_each_with_its_own_size(membership: Membership, target: str,
                                                           client: redis.Redis) -> None:
    other = target + "-other"
    pipe = client.pipeline(transaction=True)
    membership.stage_record_many(pipe, [
        (target, "add", POSITION, [user(1), user(2)]),
        (other, None, POSITION, [user(1, "delete"), user(3)]),
        (target, "delete", POSITION, [user(2, "delete", ACCEPTED + 1)]),
    ])
    pipe.execute()

    assert (membership.size(target), membership.size(other)) == (1, 1)
    assert members(client, target) == {member_key(user(1))}
    client.delete(keys.membership(other), keys.membership_size(other))


@pytest.fixture
def rekeyed() -> Iterator[None]:
    """For tests that lay the keys out otherwise: each target's keys are built anew, before and after."""
    keys.target_keys.cache_clear()
    yield
    keys.target_keys.cache_clear()


@pytest.mark.usefixtures("rekeyed")
def test_audiences_share_script_calls_only_when_their_keys_share_a_hash_tag(
        monkeypatch: pytest.MonkeyPatch) -> None:
    work = [(f"dest|1|{audience}", ["x" * 46] * 2_000) for audience in range(6)]  # 12,000 operations
    # Keys tagged by their own audience: a Redis Cluster could not run one script over two audiences.
    monkeypatch.setattr(keys, "membership", lambda target: f"tta:members:{{{target}}}")
    monkeypatch.setattr(keys, "membership_size", lambda target: f"tta:size:{{{target}}}")
    assert [len(owners) for *_, owners in _script_calls(work)] == [1] * 6
    # Keys tagged by something the audiences share (the access token's lane, say) pack up to 5,000
    # operations per call, an audience split across calls where it must.
    monkeypatch.setattr(keys, "membership", lambda target: f"tta:members:{{lane}}:{target}")
    monkeypatch.setattr(keys, "membership_size", lambda target: f"tta:size:{{lane}}:{target}")
    keys.target_keys.cache_clear()
    calls = _script_calls(work)
    assert [(counts, owners) for _, counts, _, owners in calls] == [
        ([2_000, 2_000, 1_000], [0, 1, 2]), ([1_000, 2_000, 2_000], [2, 3, 4]), ([2_000], [5])]


@pytest.mark.usefixtures("rekeyed")
def test_many_audiences_sharing_a_tag_are_checked_and_recorded_together(
        monkeypatch: pytest.MonkeyPatch, client: redis.Redis) -> None:
    monkeypatch.setattr(keys, "membership", lambda target: f"tta:members:{{lane-test}}:{target}")
    monkeypatch.setattr(keys, "membership_size", lambda target: f"tta:size:{{lane-test}}:{target}")
    membership = Membership(client)
    audiences = [f"dest|1|test-{uuid.uuid4().hex}" for _ in range(300)]
    pipe = client.pipeline(transaction=True)
    membership.stage_record_many(pipe, [(a, None, POSITION, [user(i, "add", 1_000) for i in range(20)])
                                        for a in audiences])
    pipe.execute()
    later = [user(i, "delete", 2_000) if i % 2 else user(i, "add", 900) for i in range(20)]

    answers = membership.fresh_many([(a, later, 0) for a in audiences])
    assert {(len(kept), superseded) for kept, superseded in answers} == {(10, 10)}
    assert {membership.size(a) for a in audiences} == {20}
    client.delete(*[keys.membership(a) for a in audiences], *[keys.membership_size(a) for a in audiences])


# -- counters and storage --------------------------------------------------------------------------------


def test_superseded_operations_are_counted_fleet_wide(client: redis.Redis) -> None:
    membership = Membership(client)
    before = membership.superseded_total()
    pipe = client.pipeline(transaction=True)
    membership.stage_count_superseded(pipe, 3)
    membership.stage_count_superseded(pipe, 0)
    pipe.execute()

    assert membership.superseded_total() == before + 3
    client.hincrby(keys.METRICS, "superseded", -3)


def test_current_members_keep_their_hashed_identifiers_and_removed_users_drop_them(
        membership: Membership, target: str, client: redis.Redis) -> None:
    phone_user = PackedOperation("add", "", "ab" * 32, "cd" * 32, "IDFA_SHA256", ACCEPTED, "p")  # type: ignore[arg-type]
    membership.record(target, None, POSITION, [user(1), user(2), phone_user])
    stored = {field.decode(): unpack_identifiers(value.decode())
              for field, value in client.hgetall(identifiers_key(target)).items()}
    assert stored == {member_key(user(1)): (f"{1:064x}", "", "", ""), member_key(user(2)): (f"{2:064x}", "", "", ""),
                      member_key(phone_user): ("", "ab" * 32, "IDFA_SHA256", "cd" * 32)}

    membership.record(target, None, POSITION, [user(2, "delete", ACCEPTED + 1), user(1, "delete", ACCEPTED - 1)])
    assert set(client.hkeys(identifiers_key(target))) == {member_key(user(1)).encode(),
                                                          member_key(phone_user).encode()}


def test_a_user_removed_then_added_in_one_call_keeps_their_identifiers(membership: Membership, target: str,
                                                                        client: redis.Redis) -> None:
    membership.record(target, None, POSITION, [user(1, "delete", ACCEPTED), user(1, "add", ACCEPTED + 1)])
    assert client.hkeys(identifiers_key(target)) == [member_key(user(1)).encode()]
    membership.record(target, None, POSITION, [user(1, "add", ACCEPTED + 2), user(1, "delete", ACCEPTED + 3)])
    assert client.hlen(identifiers_key(target)) == 0


def test_checking_writes_no_identifiers(membership: Membership, target: str, client: redis.Redis) -> None:
    membership.fresh(target, [user(1)], ACCEPTED)
    assert not client.exists(identifiers_key(target))


def test_users_are_stored_under_a_digest_never_a_raw_identifier(membership: Membership, target: str,
                                                                client: redis.Redis) -> None:
    membership.record(target, None, POSITION, [user(1)])
    (field,) = client.hkeys(keys.membership(target))

    assert field.decode() == member_key(user(1)) and len(field) == 20
    assert f"{1:064x}".encode() not in field


def test_bulk_keys_match_single_keys() -> None:
    ops = [user(1), PackedOperation("delete", "", f"{2:064x}", f"{3:064x}", "AAID_SHA256")]
    assert member_keys(ops) == [member_key(op) for op in ops]


# -- the whole rule, for any arrival order -----------------------------------------------------------------

Event = tuple[int, str, int, str]  # user, action, event ms, message id

events = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from(["add", "delete"]), st.integers(1, 8)),
    min_size=1, max_size=30,
).map(lambda drawn: [(u, a, ms, f"msg-{i}") for i, (u, a, ms) in enumerate(drawn)])  # message ids are unique


def connect(server: str) -> redis.Redis:
    if server == "fakeredis":
        return fakeredis.FakeRedis()
    url = os.environ.get("TTA_TEST_REDIS_URL")
    if not url:
        pytest.skip("set TTA_TEST_REDIS_URL to run against a real Redis")
    return redis.Redis.from_url(url)


@pytest.mark.parametrize("server", ["fakeredis", "real-redis"])
@settings(max_examples=150, deadline=None)
@given(events=events, data=st.data())
def test_batches_in_any_order_end_with_the_membership_the_latest_events_describe(
        server: str, events: list[Event], data: st.DataObject) -> None:
    # Arrival: a shuffle of the events, some of them resent, cut into batches of any size.
    resent = data.draw(st.lists(st.sampled_from(events), max_size=10))
    arrivals = data.draw(st.permutations(events + resent))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arrivals)), max_size=6)))
    batches = [arrivals[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrivals)], strict=True)]

    client = connect(server)
    membership, target = Membership(client), f"dest|7000000000000000001|test-{uuid.uuid4().hex}"
    sent: dict[str, str] = {}  # what TikTok was told last, per user
    delivered = 0
    for number, batch in enumerate(batches):
        ops = [user(u, a, ms, mid) for u, a, ms, mid in batch]
        position = f"{ACCEPTED + number}-0"
        kept, _ = membership.fresh(target, latest_per_user(ops, ACCEPTED + number))
        for op in kept:
            sent[member_key(op)] = op.action
        membership.record(target, None, position, kept)
        delivered += len(kept)

    latest: dict[int, Event] = {}
    for event in events:
        u, _, ms, mid = event
        if u not in latest or (ms, tie_break(mid)) > (latest[u][2], tie_break(latest[u][3])):
            latest[u] = event
    expected = {member_key(user(u)) for u, (_, action, _, _) in latest.items() if action == "add"}
    assert {key for key, action in sent.items() if action == "add"} == expected
    assert membership.size(target) == len(expected)
    assert delivered <= len(events)  # a resend of a delivered event is never sent again
    client.delete(keys.membership(target), keys.membership_size(target))
    client.close()
