"""What an intake request comes to: an :class:`IntakeResult`, or an :class:`IntakeError` when nothing of it was
stored (the sender is told to retry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What 503 answers tell senders: long enough for workers to drain a bit, short enough not to stall sources.
RETRY_AFTER_SECONDS = 5


@dataclass(slots=True)
class IntakeResult:
    accepted: int = 0
    rejected: int = 0
    # One entry per event a mapping refused (others need no answer): index in the request, messageId, status
    # ("rejected": nothing of it was kept; "partial": other mappings accepted it), reason (human-readable),
    # code (stable reason code) and, when mappings judged it, "mappings": each matched mapping's outcome.
    results: list[dict[str, Any]] = field(default_factory=list)
    operations: int = 0  # operations written to the queue
    creates: int = 0  # audience-create requests written
    unmatched: int = 0  # accepted events no mapping subscribed to
    opted_out: int = 0  # accepted events whose ``integrations`` turned a destination off
    clamped: int = 0  # events whose time was too far in the future, clamped to the time received
    dropped_identifiers: dict[str, int] = field(default_factory=dict)
    # Refusals by code: of rejected events, and of single mappings refusing an otherwise accepted event.
    rejected_by_code: dict[str, int] = field(default_factory=dict)

    def merge(self, other: IntakeResult, offset: int) -> None:
        """Fold in the result of a later chunk whose events start at ``offset`` in the whole sequence."""
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.results.extend({**r, "index": r["index"] + offset} for r in other.results)
        self.operations += other.operations
        self.creates += other.creates
        self.unmatched += other.unmatched
        self.opted_out += other.opted_out
        self.clamped += other.clamped
        for counts, more in ((self.dropped_identifiers, other.dropped_identifiers),
                             (self.rejected_by_code, other.rejected_by_code)):
            for name, n in more.items():
                counts[name] = counts.get(name, 0) + n


class IntakeError(Exception):
    """Base of the failures that make intake accept nothing of a request."""

    retry_after: int = RETRY_AFTER_SECONDS
    # Set by callers that split a long input into several requests: what the earlier requests stored.
    partial: IntakeResult | None = None


class BacklogFull(IntakeError):
    """The backlog in Redis is above the configured ceiling: the sender should retry later."""


class StoreUnavailable(IntakeError):
    """Redis could not be reached or refused the write: nothing of the request was accepted."""
