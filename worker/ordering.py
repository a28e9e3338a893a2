"""Event time decides (behaviour.md §5): the seam between delivery and the per-user ordering rules.

:func:`latest_per_user` keeps, per user, the operation with the latest event time (``event_ms``, 0 meaning the
acceptance time stands in; ties broken by message id, then by stream order). :func:`fresh` drops operations
not newer than what was already delivered to the target for that user. Both come from worker.event_order and
worker.membership where those provide them; until then the in-batch rule is applied here and nothing is
dropped against delivered state.
"""

from __future__ import annotations

from typing import Any

from worker.operations import PackedOperation

try:  # pragma: no cover - which branch runs depends on the membership work being present
    from worker.event_order import latest_per_user as _latest_per_user
except ImportError:  # pragma: no cover
    _latest_per_user = None


def latest_per_user(ops: list[PackedOperation], accepted_ms: list[int]) -> list[PackedOperation]:
    """Per user (email, phone, advertising id type, advertising id), the latest operation by event time."""
    if _latest_per_user is not None:
        return list(_latest_per_user(ops, accepted_ms))
    if len({(op[1], op[2], op[4], op[3]) for op in ops}) == len(ops):
        return list(ops)  # no user twice: the usual batch, decided without ranking anything
    best: dict[tuple[str, str, str, str], tuple[tuple[int, str, int], PackedOperation]] = {}
    for index, (op, accepted) in enumerate(zip(ops, accepted_ms, strict=True)):
        key = (op.email, op.phone, op.advertising_id_type, op.advertising_id)
        rank = (op.event_ms or accepted, op.message_id, index)
        held = best.get(key)
        if held is None or rank > held[0]:
            best[key] = (rank, op)
    if len(best) == len(ops):
        return list(ops)
    kept = sorted(best.values(), key=lambda item: item[0][2])
    return [op for _, op in kept]


def fresh(membership: Any, target: str, ops: list[PackedOperation]) -> tuple[list[PackedOperation], int]:
    """``ops`` minus those already superseded by what was delivered to ``target``; and how many were."""
    check = getattr(membership, "fresh", None)
    if check is None or not ops:
        return ops, 0
    kept, superseded = check(target, ops)
    return list(kept), int(superseded)
