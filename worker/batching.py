"""Turn a run of operations on one target into TikTok requests.

Two rules of TikTok's mapping endpoint shape this:
- several operations on the same user collapse to the last one (a user added then removed ends removed);
- one request carries one action, and at most ``batch_size`` rows.

Collapsing leaves at most one operation per user, but two *different* rows can still share an identifier
(the same email with and without a phone). Requests are therefore cut into *phases*: inside a phase no
identifier is both added and deleted, so its add request and delete request commute; phases are sent in order.
In the usual stream of Engage events there is a single phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.operations import Action, PackedOperation


@dataclass(slots=True)
class PlannedRequest:
    action: Action
    operations: list[PackedOperation] = field(default_factory=list)

    @property
    def rows(self) -> list[dict[str, str]]:
        return [op.cells for op in self.operations]


def collapse(operations: list[PackedOperation]) -> list[PackedOperation]:
    """Keep only the last operation of each user, in the order of those last operations."""
    # The identity of PackedOperation.row_key as a tuple: no string to build per operation, and each digest's
    # hash, computed here once, is cached for the phase check's sets that follow.
    row_keys = [(email, phone, adid_type, adid) for _, email, phone, adid, adid_type, *_ in operations]
    last = {key: index for index, key in enumerate(row_keys)}  # later indexes overwrite earlier ones
    if len(last) == len(operations):
        return list(operations)  # no user twice: the usual batch
    return [op for index, (op, key) in enumerate(zip(operations, row_keys, strict=True))
            if last[key] == index]


def _identifiers(op: PackedOperation) -> list[str]:
    return [f"{kind}:{digest}" for kind, digest in op.cells.items()]


def _one_phase(operations: list[PackedOperation]) -> bool:
    """Whether no identifier is both added and deleted (true of nearly every batch), checked column by column
    with set operations instead of per-operation identifier lists."""
    adds = [op for op in operations if op[0] == "add"]  # PackedOperation's action
    if not adds or len(adds) == len(operations):
        return True
    deletes = [op for op in operations if op[0] != "add"]
    for column in (1, 2):  # PackedOperation's email and phone
        added = {op[column] for op in adds}
        added.discard("")
        if added and not added.isdisjoint(op[column] for op in deletes):
            return False
    # Advertising ids count with their type (an IDFA and an AAID of the same digest are different ids).
    added_ids = {(op.advertising_id_type, op.advertising_id) for op in adds if op.advertising_id}
    return not added_ids or added_ids.isdisjoint(
        (op.advertising_id_type, op.advertising_id) for op in deletes if op.advertising_id)


def split_phases(operations: list[PackedOperation]) -> list[list[PackedOperation]]:
    """Cut an ordered list into phases in which no identifier is both added and deleted."""
    if _one_phase(operations):
        return [operations] if operations else []
    phases: list[list[PackedOperation]] = []
    current: list[PackedOperation] = []
    seen: dict[str, set[str]] = {"add": set(), "delete": set()}
    for op in operations:
        ids = _identifiers(op)
        opposite = seen["delete" if op.action == "add" else "add"]
        if current and any(i in opposite for i in ids):
            phases.append(current)
            current = []
            seen = {"add": set(), "delete": set()}
        current.append(op)
        seen[op.action].update(ids)
    if current:
        phases.append(current)
    return phases


def plan_requests(operations: list[PackedOperation], batch_size: int) -> list[PlannedRequest]:
    """The ordered requests that deliver ``operations`` with the same final membership."""
    requests: list[PlannedRequest] = []
    for phase in split_phases(collapse(operations)):
        # One request list per action, in the order each action first appears in the phase.
        adds = [op for op in phase if op.action == "add"]
        deletes = [op for op in phase if op.action != "add"]
        by_action = [("add", adds), ("delete", deletes)]
        if phase[0].action != "add":
            by_action.reverse()
        for action, ops in by_action:
            for start in range(0, len(ops), batch_size):
                requests.append(PlannedRequest(action, ops[start : start + batch_size]))  # type: ignore[arg-type]
    return requests
