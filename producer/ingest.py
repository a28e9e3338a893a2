"""``tiktok-audiences ingest FILE|-``: enqueue newline-delimited JSON events through the same intake as HTTP.

Lines go through :meth:`SyncIntake.accept` in chunks (one Redis round trip per chunk). A line that is not JSON is
rejected like an invalid event, with its line number; blank lines are skipped. When the backlog is full the
loader waits and retries instead of failing: a bulk load should finish, just slower. When Redis is unavailable
it stops, and the summary says how far it got (every line before that point is stored; none after).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
import redis
from tqdm import tqdm

from core.settings import Settings
from producer.intake import BacklogFull, IntakeResult, StoreUnavailable, SyncIntake

FIRST_LINES_KEPT = 5
INVALID_JSON = "invalid_json"


@dataclass(slots=True)
class ReasonSummary:
    count: int = 0
    example: str = ""  # the first reason given under this code, e.g. naming the mapping
    lines: list[int] = field(default_factory=list)  # the first few line numbers


@dataclass(slots=True)
class IngestSummary:
    accepted: int = 0
    rejected: int = 0
    operations: int = 0
    unmatched: int = 0
    opted_out: int = 0
    clamped: int = 0
    lines: int = 0  # lines read, blank ones included
    rejected_by_code: dict[str, ReasonSummary] = field(default_factory=dict)
    # Accepted events that some (not all) of their matched mappings refused, by the first refusal's code.
    partial_by_code: dict[str, ReasonSummary] = field(default_factory=dict)
    dropped_identifiers: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # set when the load stopped early
    stored_through_line: int = 0  # every event up to this line was handled (stored or rejected)

    def reject(self, code: str, reason: str, line: int, *, partial: bool = False) -> None:
        by_code = self.partial_by_code if partial else self.rejected_by_code
        if not partial:
            self.rejected += 1
        entry = by_code.get(code)
        if entry is None:
            entry = by_code[code] = ReasonSummary(example=reason)
        entry.count += 1
        if len(entry.lines) < FIRST_LINES_KEPT:
            entry.lines.append(line)

    def add(self, result: IntakeResult, line_numbers: list[int]) -> None:
        self.accepted += result.accepted
        self.operations += result.operations
        self.unmatched += result.unmatched
        self.opted_out += result.opted_out
        self.clamped += result.clamped
        for name, n in result.dropped_identifiers.items():
            self.dropped_identifiers[name] = self.dropped_identifiers.get(name, 0) + n
        for r in result.results:
            line = line_numbers[r["index"]]
            self.reject(r.get("code") or "rejected", f"line {line}: {r['reason']}", line,
                        partial=r.get("status") == "partial")

    def render(self) -> str:
        out = [f"accepted: {self.accepted}", f"rejected: {self.rejected}"]
        for code, entry in sorted(self.rejected_by_code.items(), key=lambda kv: -kv[1].count):
            more = ", ..." if entry.count > len(entry.lines) else ""
            out.append(f"  {code}: {entry.count} (lines {', '.join(map(str, entry.lines))}{more})")
            out.append(f"    e.g. {entry.example}")
        if self.partial_by_code:
            out.append(f"accepted, but some of their mappings refused them: "
                       f"{sum(e.count for e in self.partial_by_code.values())}")
            for code, entry in sorted(self.partial_by_code.items(), key=lambda kv: -kv[1].count):
                more = ", ..." if entry.count > len(entry.lines) else ""
                out.append(f"  {code}: {entry.count} (lines {', '.join(map(str, entry.lines))}{more})")
                out.append(f"    e.g. {entry.example}")
        out.append(f"operations enqueued: {self.operations}")
        if self.unmatched:
            out.append(f"accepted but matched no mapping: {self.unmatched}")
        if self.opted_out:
            out.append(f"accepted, opted out of a destination by their integrations: {self.opted_out}")
        if self.clamped:
            out.append(f"event times too far in the future, clamped to the time received: {self.clamped}")
        for name, n in sorted(self.dropped_identifiers.items()):
            out.append(f"identifiers dropped ({name}): {n}")
        if self.error:
            out.append(f"stopped: {self.error}; lines 1-{self.stored_through_line} were handled, "
                       "resume after that line")
        return "\n".join(out)


def ingest_lines(lines: Iterable[str | bytes], intake: SyncIntake, *, chunk: int = 500, progress: bool = True,
                 total_bytes: int | None = None, backlog_wait: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> IngestSummary:
    """Send newline-delimited JSON ``lines`` through ``intake`` in chunks of ``chunk`` events.

    The progress bar goes to stderr, only when it is a terminal and ``progress`` is true; it counts bytes when
    ``total_bytes`` is known (so it can show an ETA), else lines. Redis failures end the load with
    ``summary.error`` set rather than an exception, so the caller can still report what was stored."""
    summary = IngestSummary()
    bar = tqdm(total=total_bytes, unit="B" if total_bytes else " lines", unit_scale=bool(total_bytes),
               file=sys.stderr, disable=not (progress and sys.stderr.isatty()), dynamic_ncols=True)
    events: list[Any] = []
    line_numbers: list[int] = []
    advanced = 0

    def flush() -> bool:
        nonlocal advanced
        while True:
            try:
                result = intake.accept(events)
            except BacklogFull:
                bar.set_postfix_str("backlog full, waiting", refresh=True)
                sleep(backlog_wait)
                continue
            except StoreUnavailable as exc:
                summary.error = str(exc)
                return False
            break
        summary.add(result, line_numbers)
        summary.stored_through_line = summary.lines
        bar.update(advanced)
        bar.set_postfix(accepted=summary.accepted, rejected=summary.rejected, refresh=False)
        advanced = 0
        events.clear()
        line_numbers.clear()
        return True

    try:
        for number, line in enumerate(lines, start=1):
            summary.lines = number
            advanced += len(line) if total_bytes else 1
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                summary.reject(INVALID_JSON, f"line {number}: invalid JSON: {exc}", number)
                continue
            events.append(event)
            line_numbers.append(number)
            if len(events) >= chunk and not flush():
                # The lines of the failed chunk were not stored: point before the first of them.
                summary.stored_through_line = line_numbers[0] - 1
                return summary
        if events and not flush():
            summary.stored_through_line = line_numbers[0] - 1
            return summary
        summary.stored_through_line = summary.lines
        bar.update(advanced)
    finally:
        bar.close()
    return summary


def run_ingest(path_or_dash: str, settings: Settings, *, progress: bool = True,
               out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """The ``ingest`` command: 0 when every event was accepted, 1 when some were rejected, 2 on an error
    (unreadable file or configuration, Redis unavailable)."""
    from core.destinations import ConfigError, load_destinations
    from producer.routing import Router

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        destinations = load_destinations(settings.config_path)
        router = Router.from_destinations(destinations, default_phone_country=settings.default_phone_country)
    except ConfigError as exc:
        print(f"error: {exc}", file=err)
        return 2
    client = _redis_client(settings.redis_url)
    try:
        intake = SyncIntake(router, client, settings)
        if path_or_dash == "-":
            summary = ingest_lines(sys.stdin.buffer, intake, progress=progress)
        else:
            try:
                handle = open(path_or_dash, "rb")  # noqa: SIM115 - closed below, size read first
            except OSError as exc:
                print(f"error: cannot read {path_or_dash}: {exc.strerror}", file=err)
                return 2
            with handle:
                size = os.fstat(handle.fileno()).st_size or None
                summary = ingest_lines(handle, intake, progress=progress, total_bytes=size)
    finally:
        client.close()
    print(summary.render(), file=out)
    if summary.error:
        print(f"error: {summary.error}", file=err)
        return 2
    return 1 if summary.rejected else 0


def _redis_client(url: str) -> redis.Redis:
    from core.redis_client import INTAKE, redis_from_url

    return redis_from_url(url, INTAKE)
