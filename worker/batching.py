"""Turn a run of operations on one target into TikTok requests.

Two rules from the behaviour spec shape this:
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
    last: dict[str, PackedOperation] = {}
    for op in operations:
        key = op.row_key
        last.pop(key, None)  # re-insert so dict order follows the last occurrence
        last[key] = op
    return list(last.values())


def _identifiers(op: PackedOperation) -> list[str]:
    return [f"{kind}:{digest}" for kind, digest in op.cells.items()]


def split_phases(operations: list[PackedOperation]) -> list[list[PackedOperation]]:
    """Cut an ordered list into phases in which no identifier is both added and deleted."""
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
        by_action: dict[str, list[PackedOperation]] = {}
        for op in phase:
            by_action.setdefault(op.action, []).append(op)
        for action, ops in by_action.items():
            for start in range(0, len(ops), batch_size):
                requests.append(PlannedRequest(action, ops[start : start + batch_size]))  # type: ignore[arg-type]
    return requests
