"""Planning a lane's requests: from each target's operations to TikTok requests that mix audiences.

Pure functions, apart from Redis and TikTok: worker.lane_cut reads the streams and records what this module
plans; worker.lane sends it.

Per target, the operations have already been reduced to the latest per user (worker.ordering) and cut into
*phases* (worker.batching: inside a phase no identifier is both added and deleted, so a phase's adds and
deletes commute). The lane's requests go phase by phase: every target's first phase (its adds in one request
list, its deletes in another), then every target's second phase, and so on, so each audience sees its
operations in order while one request carries rows of every audience of the lane. A user in several audiences
with the same action in the same phase is one row whose cells name all of them. A request holds at most
``batch_size`` rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson

from worker.batching import split_phases
from worker.operations import Action, PackedOperation, encode_operations, unpack_all
from worker.tiktok.wire import AudienceRow

_ACTIONS: tuple[Action, Action] = ("add", "delete")
# A batch's operations by target, in stream order: what a batch's payload holds.
Work = dict[str, list[PackedOperation]]
Identity = tuple[str, str, str, str]  # email, phone, advertising id type, advertising id
_IDENTITY = itemgetter(1, 2, 4, 3)  # :func:`identity`, sliced out in C


def identity(op: PackedOperation) -> Identity:
    return (op.email, op.phone, op.advertising_id_type, op.advertising_id)


@dataclass(slots=True)
class LaneRequest:
    """One planned TikTok call: an action and, per target, the operations (one row each) it carries."""

    action: Action
    by_target: dict[str, list[PackedOperation]] = field(default_factory=dict)
    phase: int = 0  # requests of one phase commute (no identifier both added and deleted in it)
    _identities: set[Identity] = field(default_factory=set)

    @property
    def rows(self) -> int:
        """Rows on the wire: users, each counted once however many audiences it goes to."""
        return len(self._identities)

    def add(self, target: str, op: PackedOperation, key: Identity) -> None:
        self.by_target.setdefault(target, []).append(op)
        self._identities.add(key)


def plan_lane(by_target: dict[str, list[PackedOperation]], batch_size: int) -> list[LaneRequest]:
    """The ordered requests that deliver every target's operations (already one per user) in order."""
    phases = {target: split_phases(ops) for target, ops in by_target.items() if ops}
    depth = max((len(p) for p in phases.values()), default=0)
    requests: list[LaneRequest] = []
    for index in range(depth):
        adds: dict[str, list[PackedOperation]] = {}
        deletes: dict[str, list[PackedOperation]] = {}
        for target, target_phases in phases.items():
            if index >= len(target_phases):
                continue
            ops = target_phases[index]
            added = [op for op in ops if op[0] == "add"]
            if len(added) == len(ops):  # one action, the usual phase: its list as it is
                adds[target] = ops
            elif not added:
                deletes[target] = ops
            else:
                adds[target] = added
                deletes[target] = [op for op in ops if op[0] != "add"]
        for action, group in zip(_ACTIONS, (adds, deletes), strict=True):
            if group:
                requests.extend(_pack(group, action, index, batch_size))
    return requests


def _pack(group: dict[str, list[PackedOperation]], action: Action, phase: int,
          batch_size: int) -> list[LaneRequest]:
    """The requests of one phase and action: ``group``'s operations (per target, one per user) in requests of
    at most ``batch_size`` rows, a user in several targets one row."""
    keys_of = {target: list(map(_IDENTITY, ops)) for target, ops in group.items()}
    distinct: set[Identity] = set().union(*keys_of.values())
    total = sum(map(len, group.values()))
    if total <= batch_size:  # the usual group: one request, no placing
        single = LaneRequest(action, group, phase)
        single._identities = distinct
        return [single]
    requests: list[LaneRequest] = []
    if len(distinct) == total:
        # No user in two targets (a round of one busy audience, or of audiences without shared users): the
        # targets' lists are cut into requests in slices, in C, instead of placing operation by operation.
        current = LaneRequest(action, phase=phase)
        requests.append(current)
        for target, ops in group.items():
            start = 0
            while start < len(ops):
                room = batch_size - len(current._identities)
                if room <= 0:
                    current = LaneRequest(action, phase=phase)
                    requests.append(current)
                    room = batch_size
                current.by_target[target] = ops[start : start + room]
                current._identities.update(keys_of[target][start : start + room])
                start += room
        return requests
    # A user already in one of this group's requests joins its row there (the group's operations commute, so
    # any of its requests will do); a new user goes to the request with room.
    placed: dict[Identity, LaneRequest] = {}
    current_or_none: LaneRequest | None = None
    for target, ops in group.items():
        for op, key in zip(ops, keys_of[target], strict=True):
            request = placed.get(key)
            if request is None:
                if current_or_none is None or current_or_none.rows >= batch_size:
                    current_or_none = LaneRequest(action, phase=phase)
                    requests.append(current_or_none)
                request = placed[key] = current_or_none
            request.add(target, op, key)
    return requests


def wire_rows(by_target: dict[str, list[PackedOperation]], audience_of: dict[str, str]) -> list[AudienceRow]:
    """The request's rows: one per user, its cells naming every audience (in target order) it goes to. Rows
    of one audience share one ``audience_ids`` list until a second audience joins them."""
    if len(by_target) == 1:
        ((target, ops),) = by_target.items()
        shared = [audience_of[target]]
        return [AudienceRow(op, shared) for op in ops]
    distinct = {(op[1], op[2], op[4], op[3]) for ops in by_target.values() for op in ops}
    if len(distinct) == sum(map(len, by_target.values())):  # no user in two audiences: nothing to merge
        return [AudienceRow(op, shared) for target, ops in by_target.items()
                for shared in ([audience_of[target]],) for op in ops]
    rows: dict[Identity, AudienceRow] = {}
    for target, ops in by_target.items():
        audience_id = audience_of[target]
        shared = [audience_id]
        for op in ops:
            key = (op[1], op[2], op[4], op[3])
            row = rows.get(key)
            if row is None:
                rows[key] = AudienceRow(op, shared)
            elif audience_id not in row.audience_ids:
                rows[key] = AudienceRow(row.op, [*row.audience_ids, audience_id])
    return list(rows.values())


def split_targets(by_target: dict[str, list[PackedOperation]]) -> list[dict[str, list[PackedOperation]]]:
    """Two halves of a request by audience (bisection after a permanent refusal)."""
    targets = list(by_target)
    middle = len(targets) // 2
    return [{t: by_target[t] for t in targets[:middle]}, {t: by_target[t] for t in targets[middle:]}]


def encode_payload(by_target: dict[str, list[PackedOperation]]) -> bytes:
    """A batch's hashed payload, per target (kept for replay while the batch is open or dead)."""
    return b'{"targets":{' + b",".join(
        orjson.dumps(target) + b":" + encode_operations(ops) for target, ops in by_target.items()) + b"}}"


def decode_payload(raw: bytes, default_target: str) -> dict[str, list[PackedOperation]]:
    """:func:`encode_payload` read back; a payload of one target's packed list (older batches) is that of
    ``default_target``."""
    doc: Any = orjson.loads(raw)
    if isinstance(doc, list):
        return {default_target: unpack_all(doc)}
    return {target: unpack_all(packed) for target, packed in doc["targets"].items()}


def count_rows(by_target: dict[str, list[PackedOperation]]) -> dict[str, int]:
    return {target: len(ops) for target, ops in by_target.items()}


def all_operations(by_target: dict[str, list[PackedOperation]]) -> Iterable[PackedOperation]:
    for ops in by_target.values():
        yield from ops
