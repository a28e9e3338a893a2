"""What the service has delivered to each audience: per user, the last applied action and its event's order.

It serves three needs: deciding whether an operation is still news (an operation older than what was already
applied to that user and audience changes nothing, and a resend of an applied event is a no-op; see
:mod:`worker.event_order`), the audience's net size as delivered (operators watch for TikTok's 1,000-user
minimum), and replay's supersede check (a dead batch must not undo a newer delivered operation on the same
user). Users are stored under a short digest of their row key, never a raw identifier.

Per user the record holds one hash field: a 20-character digest of the user's identifiers, and a 26-character
value, the order key of the last applied event (:func:`worker.event_order.order_key`: its event ms and its
message id's tie-break) followed by ``a`` (added) or ``d`` (removed). It has no expiry: the net size needs every
added user, and a removed user's entry is what refuses an older add that arrives late.

For its current members (added, not removed since) the audience also keeps their hashed identifiers
(:func:`identifiers_key`: member key -> the SHA-256 digests as sent), written by the same script call as the
record and dropped when the user is removed: what ``audiences resync`` re-sends. Members recorded before it
existed have no entry there and cannot be re-sent.

Beside it, the audience keeps the greatest order key it ever recorded (:func:`newest_key`): an operation newer
than that is news without looking its user up, which is nearly every operation when events arrive roughly in
order (and every one for an audience not recorded yet), so checking costs a lookup only where arrival order and
event order disagree. Records written before event times existed have no such key and are checked in full.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Sequence
from typing import Any, TypeAlias

import redis

from worker import keys, lua
from worker.event_order import (
    EVENT_MS_OFFSET,
    METRIC_SUPERSEDED,
    TIE_OFFSET,
    AcceptedMs,
    event_times,
    latest_per_user,
    stamp,
)
from worker.operations import ADID_TYPE_CODE, ADID_TYPE_FROM_CODE, PackedOperation

# Sent as EVAL with every call (a registered script in a pipeline costs a SCRIPT EXISTS round trip of its own,
# and EVALSHA inside a delivery transaction could fail alone after a Redis restart).
_SCRIPT = lua.source("membership")
_CHUNK = 5000  # operations per script call, so one call never blocks Redis for long
_PEEK_CHUNK = 2000  # audiences per look at their newest order keys

# One audience's share of the work: (target, operations, acceptance ms standing in for unknown event times;
# None: now) to check, and (target, action or None for each operation's own, stream position, operations) to record.
FreshWork: TypeAlias = tuple[str, list[PackedOperation], AcceptedMs | None]
RecordWork: TypeAlias = tuple[str, str | None, str, list[PackedOperation]]
_ACTION_CODE = {"add": "a", "delete": "d"}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def position_ms(entry_id: str) -> int:
    """The acceptance time (epoch ms) of a stream entry id."""
    return int(entry_id.partition("-")[0])


def member_key(op: PackedOperation) -> str:
    return hashlib.blake2b(op.row_key.encode(), digest_size=10).hexdigest()


def member_keys(operations: list[PackedOperation]) -> list[str]:
    """:func:`member_key` of each operation, without two Python calls per operation (a drain does 10,000)."""
    blake2b = hashlib.blake2b
    # The same text as PackedOperation.row_key, spelled out so it is built in the comprehension.
    return [blake2b(f"{email}|{phone}|{adid_type}:{adid}".encode(), digest_size=10).hexdigest()
            for _, email, phone, adid, adid_type, *_ in operations]


def newest_key(target: str) -> str:
    """The key of the greatest order key ``target``'s record holds (in its record's hash slot, as the record's key
    carries a hash tag)."""
    return keys.membership_newest(target)


def identifiers_key(target: str) -> str:
    """The hash of ``target``'s current members' hashed identifiers (member key -> :func:`pack_identifiers`),
    what ``audiences resync`` re-sends; in its record's hash slot."""
    return keys.membership_identifiers(target)


def pack_identifiers(email: str, phone: str, advertising_id_type: str, advertising_id: str) -> str:
    """A member's hashed identifiers as the record keeps them: ``email|phone|type code|advertising id``
    (SHA-256 digests, never raw values; the type is its one-letter code)."""
    return f"{email}|{phone}|{ADID_TYPE_CODE[advertising_id_type]}|{advertising_id}"


def unpack_identifiers(text: str) -> tuple[str, str, str, str]:
    """(email, phone, advertising id type, advertising id) of :func:`pack_identifiers`' text."""
    email, phone, code, advertising_id = text.split("|", 3)
    return email, phone, ADID_TYPE_FROM_CODE[code], advertising_id


def _arguments(operations: Sequence[PackedOperation], times: Sequence[int], action: str | None,
               identifiers: bool = False) -> list[str]:
    """The script's argument for each operation: its user's field, then the record's value (its order key from
    ``times``, and its action's code, ``action``'s if given), then (``identifiers``: to record) the user's
    hashed identifiers, as one string: an argument costs redis-py more than its bytes."""
    blake2b, crc32, codes, types = hashlib.blake2b, zlib.crc32, _ACTION_CODE, ADID_TYPE_CODE
    ms_offset, tie_offset = EVENT_MS_OFFSET, TIE_OFFSET
    # The same text as member_key, event_order.order_key and pack_identifiers, spelled out so it is built in
    # the comprehension.
    if identifiers:
        return [f"{blake2b(f'{email}|{phone}|{adid_type}:{adid}'.encode(), digest_size=10).hexdigest()}"
                f"{ms + ms_offset}{crc32(message_id.encode()) + tie_offset}{codes[action or op_action]}"
                f"{email}|{phone}|{types[adid_type]}|{adid}"
                for (op_action, email, phone, adid, adid_type, _, message_id), ms
                in zip(operations, times, strict=True)]
    return [f"{blake2b(f'{email}|{phone}|{adid_type}:{adid}'.encode(), digest_size=10).hexdigest()}"
            f"{ms + ms_offset}{crc32(message_id.encode()) + tie_offset}{codes[action or op_action]}"
            for (op_action, email, phone, adid, adid_type, _, message_id), ms
            in zip(operations, times, strict=True)]


def _script_calls(work: list[tuple[str, list[str]]]) -> list[tuple[list[bytes], list[int], list[str], list[int]]]:
    """Pack each audience's script arguments into calls of at most :data:`_CHUNK` operations, many small
    audiences to a call. A Redis Cluster runs a script only on keys of one slot, so only audiences whose keys
    share their hash tags (``TargetKeys.slot_group``; :func:`newest_key` shares its record's) share a call.
    Each call: its keys, its operation count per audience, its arguments, and which entry of ``work`` each of
    its audiences is. The keys are each target's, built once (:func:`worker.keys.target_keys`): a call names
    four per audience."""
    groups: dict[tuple[str, str], list[int]] = {}
    for index, (target, arguments) in enumerate(work):
        if arguments:
            groups.setdefault(keys.target_keys(target).slot_group, []).append(index)
    calls = []
    for indexes in groups.values():
        call_keys: list[bytes] = []
        counts: list[int] = []
        arguments_out: list[str] = []
        owners: list[int] = []
        for index in indexes:
            target, arguments = work[index]
            own = keys.target_keys(target)
            start = 0
            while start < len(arguments):
                piece = arguments[start : start + _CHUNK - len(arguments_out)]
                start += len(piece)
                call_keys += (own.members, own.size, own.newest, own.identifiers)
                counts.append(len(piece))
                arguments_out += piece
                owners.append(index)
                if len(arguments_out) >= _CHUNK:
                    calls.append((call_keys, counts, arguments_out, owners))
                    call_keys, counts, arguments_out, owners = [], [], [], []
        if arguments_out:
            calls.append((call_keys, counts, arguments_out, owners))
    return calls


class Membership:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    # -- deciding what is news -------------------------------------------------------------------------

    def fresh(self, target: str, operations: list[PackedOperation],
              accepted_ms: AcceptedMs | None = None) -> tuple[list[PackedOperation], int]:
        """The operations newer than what was already delivered to ``target`` for their user, and how many
        were not (superseded, or a resend of an applied event). Each operation is judged against the record
        alone: collapse several operations on one user first (:func:`worker.event_order.latest_per_user`).

        ``accepted_ms`` stands in for an unknown (0) event time: one acceptance time for all, or one each;
        None stands in the time of this call (an operation is accepted no later than it is checked, so an
        operation without a time is never older than what was delivered before it, as before event times).
        Reads only; the caller counts the superseded with :meth:`stage_count_superseded` where it commits."""
        return self.fresh_many([(target, operations, accepted_ms)])[0]

    def fresh_many(self, work: Sequence[FreshWork]) -> list[tuple[list[PackedOperation], int]]:
        """:meth:`fresh` for several audiences in one round trip (and, where their keys share a hash tag, in
        shared script calls): one answer per entry of ``work``, in its order."""
        flags = self._check(work)
        answers = []
        for (_, operations, _), news in zip(work, flags, strict=True):
            if news is None:  # all news: the usual answer, for an audience without a record
                answers.append((list(operations), 0))
                continue
            kept = [op for op, new in zip(operations, news, strict=True) if new]
            answers.append((kept, len(operations) - len(kept)))
        return answers

    def news(self, target: str, operations: list[PackedOperation],
             accepted_ms: AcceptedMs | None = None) -> tuple[list[PackedOperation], int]:
        """What a drain sends of the operations it cut from ``target``'s stream: each stamped with its event
        time (:func:`worker.event_order.stamp`), only the latest per user, and only if newer than what was
        delivered; and how many of ``operations`` that drops (superseded within the batch or by the record:
        the count :meth:`stage_count_superseded` takes)."""
        return self.news_many([(target, operations, accepted_ms)])[0]

    def news_many(self, work: Sequence[FreshWork]) -> list[tuple[list[PackedOperation], int]]:
        """:meth:`news` for several audiences, in one round trip (two when some must be looked up)."""
        now = _now_ms()
        latest = [(target, latest_per_user(stamp(operations, now if accepted is None else accepted), 0), 0)
                  for target, operations, accepted in work]
        return [(kept, len(operations) - len(kept))
                for (kept, _), (_, operations, _) in zip(self.fresh_many(latest), work, strict=True)]

    def superseded(self, target: str, position: str, operations: list[PackedOperation]) -> list[bool]:
        """For each operation of a batch cut at stream ``position``, whether an event at least as new on the
        same user was already delivered (replay drops those). An operation without its own event time is
        ordered by the batch's position."""
        (news,) = self._check([(target, operations, position_ms(position))])
        return [False] * len(operations) if news is None else [not new for new in news]

    def _check(self, work: Sequence[FreshWork]) -> list[list[bool] | None]:
        """For each entry of ``work``, for each operation, whether it is news, or None where every operation is:
        at once where the audience has no record or its newest recorded event is older, else as the record says
        (one script call per chunk)."""
        if not any(operations for _, operations, _ in work):
            return [None for _ in work]
        looked = self._peek([target for target, _, _ in work])
        now = _now_ms()
        flags: list[list[bool] | None] = []
        unsure: list[tuple[int, list[int]]] = []  # (entry of work, its operations only the record can settle)
        arguments: list[tuple[str, list[str]]] = []
        for index, (target, operations, accepted) in enumerate(work):
            newest = looked[index]
            flags.append(None)
            if not newest:  # no record: every operation is news
                continue
            times = event_times(operations, now if accepted is None else accepted)
            if newest != b"-":  # its first 14 digits are its event ms (offset): a later ms is surely news
                after = int(newest[:14]) - EVENT_MS_OFFSET
                settle = [i for i, ms in enumerate(times) if ms <= after]
            else:  # a record older than the newest key: checked in full
                settle = list(range(len(operations)))
            if settle:
                flags[index] = [True] * len(operations)
                unsure.append((index, settle))
                arguments.append((target, _arguments([operations[i] for i in settle], [times[i] for i in settle],
                                                     None)))
        calls = _script_calls(arguments)
        if not calls:
            return flags
        pipe = self._redis.pipeline(transaction=False)
        for call_keys, counts, call_arguments, _ in calls:
            pipe.eval(_SCRIPT, len(call_keys), *call_keys, "check", " ".join(map(str, counts)),
                      " ".join(call_arguments))
        answered = [0] * len(unsure)  # operations of each unsure entry answered so far (calls split entries)
        for (_, counts, _, owners), answer in zip(calls, pipe.execute(), strict=True):
            text = answer.decode() if isinstance(answer, bytes) else answer
            start = 0
            for owner, count in zip(owners, counts, strict=True):
                index, settle = unsure[owner]
                done = answered[owner]
                row = flags[index]
                assert row is not None  # an unsure entry has its flags
                for i, flag in zip(settle[done : done + count], text[start : start + count], strict=True):
                    row[i] = flag == "1"
                answered[owner] += count
                start += count
        return flags

    def _peek(self, targets: list[str]) -> list[bytes]:
        """Per target, its newest order key, ``b"-"`` (a record without one) or ``b""`` (no record): one script
        call per :data:`_PEEK_CHUNK` audiences of a hash slot, in one round trip (keys as bytes, as
        :func:`_script_calls` sends them)."""
        groups: dict[tuple[str, str], list[int]] = {}
        owns = [keys.target_keys(target) for target in targets]
        for index, own in enumerate(owns):
            groups.setdefault(own.slot_group, []).append(index)
        order: list[int] = []
        pipe = self._redis.pipeline(transaction=False)
        for indexes in groups.values():
            for start in range(0, len(indexes), _PEEK_CHUNK):
                chunk = indexes[start : start + _PEEK_CHUNK]
                call_keys: list[bytes] = []
                for index in chunk:
                    call_keys += (owns[index].members, owns[index].newest)
                pipe.eval(_SCRIPT, len(call_keys), *call_keys, "peek")
                order += chunk
        looked: list[bytes] = [b""] * len(targets)
        answers = [answer for call in pipe.execute() for answer in call]
        for index, answer in zip(order, answers, strict=True):
            looked[index] = answer.encode() if isinstance(answer, str) else answer
        return looked

    # -- recording what was delivered ------------------------------------------------------------------

    def record(self, target: str, action: str | None, position: str, operations: list[PackedOperation],
               accepted_ms: AcceptedMs | None = None) -> int:
        """Record a delivered request; returns the audience's net size afterwards."""
        pipe = self._redis.pipeline(transaction=False)
        self.stage_record(pipe, target, action, position, operations, accepted_ms)
        results = pipe.execute()
        return int(results[-1][-1]) if results else self.size(target)

    def stage_record(self, pipe: Any, target: str, action: str | None, position: str,
                     operations: list[PackedOperation], accepted_ms: AcceptedMs | None = None) -> None:
        """Queue :meth:`record` on ``pipe``, inside the caller's delivery transaction.

        ``action`` is the request's action, or None for each operation's own. Each user's entry takes the
        operation's event time and message id, unless the entry already holds a newer event (a replay of an
        old batch changes nothing); the size moves only when a user's state changes. An operation without an
        event time is ordered by ``accepted_ms`` if given, else by the batch's stream ``position``."""
        times = event_times(operations, position_ms(position) if accepted_ms is None else accepted_ms)
        self._stage(pipe, [(target, _arguments(operations, times, action, identifiers=True))])

    def stage_record_many(self, pipe: Any, work: Sequence[RecordWork]) -> None:
        """:meth:`stage_record` for several audiences (a request that carries rows of many): where their keys
        share a hash tag, in shared script calls. Each queued call answers the sizes of its audiences."""
        self._stage(pipe, [(target, _arguments(operations, event_times(operations, position_ms(position)), action,
                                               identifiers=True))
                           for target, action, position, operations in work])

    @staticmethod
    def _stage(pipe: Any, work: list[tuple[str, list[str]]]) -> None:
        for call_keys, counts, call_arguments, _ in _script_calls(work):
            pipe.eval(_SCRIPT, len(call_keys), *call_keys, "record", " ".join(map(str, counts)),
                      " ".join(call_arguments))

    # -- counters ----------------------------------------------------------------------------------------

    @staticmethod
    def stage_count_superseded(pipe: Any, count: int) -> None:
        """Count ``count`` superseded operations fleet-wide, in the caller's transaction (so a crash before it
        commits counts nothing, and a retry counts once)."""
        if count:
            pipe.hincrby(keys.METRICS, METRIC_SUPERSEDED, count)

    def superseded_total(self) -> int:
        """Operations superseded fleet-wide since the counter began."""
        return int(self._redis.hget(keys.METRICS, METRIC_SUPERSEDED) or 0)

    def size(self, target: str) -> int:
        return int(self._redis.get(keys.membership_size(target)) or 0)
