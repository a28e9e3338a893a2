"""Event time decides (behaviour.md §5): the seam between delivery and the per-user ordering rules.

:func:`latest_per_user` keeps, per user, the operation with the latest event time (``event_ms``, 0 meaning the
acceptance time stands in; ties broken by message id, then by stream order). :func:`news_many` also drops, per
audience, operations not newer than what was already delivered to it for that user, for many audiences in one
round trip. Both come from worker.event_order and worker.membership where those provide them (``news_many``);
until then the in-batch rule is applied here and nothing is dropped against delivered state.
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


def news_many(membership: Any, work: list[tuple[str, list[PackedOperation], list[int]]],
              ) -> list[tuple[list[PackedOperation], int]]:
    """Per (target, operations, acceptance ms of each): what to send (latest per user, newer than what was
    delivered to that target) and how many operations that drops."""
    many = getattr(membership, "news_many", None)
    if many is not None:
        return [(list(kept), int(dropped)) for kept, dropped in many(work)]
    out = []
    for _, ops, accepted in work:
        kept = latest_per_user(ops, accepted)
        out.append((kept, len(ops) - len(kept)))
    return out


def stage_records(membership: Any, pipe: Any, work: list[tuple[str, str, str, list[PackedOperation]]]) -> None:
    """Queue, in the delivery's transaction, what a delivered request did to each of its audiences: per
    (target, action, stream position, operations); in shared script calls where membership offers them."""
    many = getattr(membership, "stage_record_many", None)
    if many is not None:
        many(pipe, work)
        return
    for target, action, position, ops in work:
        membership.stage_record(pipe, target, action, position, ops)
