"""The rate-limited grid: which cells to run, the floor each can reach, and how the results read.

A cell is a number of audiences, each with a few users entering it, delivered at TikTok's Basic-tier rate
(10 calls/s for the whole app). Audiences either already exist at TikTok (events carry
``external_audience_id``, each to be confirmed the advertiser's: the mapping call TikTok accepts confirms
it) or are Engage audiences the service creates on first use (``native.auto_create``). No schedule can beat
the cell's *floor*: the TikTok calls the work needs, divided by the rate, where the calls needed are

- one create per new audience,
- one mapping call per 10,000 rows per action (a ``/segment/mapping/`` request may carry rows of many
  audiences; one row is one user),
- and, only where the lane looks ids up before sending (it does after seeing a foreign audience, which no
  cell names), one ownership look-up per 100 existing audience ids (``/dmp/custom_audience/get/``).

Nothing here runs anything (``benchmarks.grid_run`` does); this module is arithmetic and text, unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

GRID_RATE = 10.0  # TikTok calls per second: the Basic tier
USERS_PER_AUDIENCE = 5
MAPPING_ROWS_PER_CALL = 10_000
OWNERSHIP_IDS_PER_CALL = 100
GRID_AUDIENCES = (10, 100, 1_000, 10_000)
AUTO_EXTRA_AUDIENCES = (200,)  # the create-bound cell the targets name
# A cell whose floor is longer than this is skipped unless asked for: it would take most of `make bench`'s
# ten minutes waiting on the rate limit alone (10,000 auto-created audiences need 10,005 calls: 1,000 s).
LONG_FLOOR = 300.0
# A stalled engine must end a cell, not the bench: it gets this long, or 1.5 times its floor if that is longer
# (room for the 1.3x the targets ask, while a whole grid of stalled cells still ends within ten minutes).
MIN_TIME_LIMIT = 60.0
TIME_LIMIT_FLOORS = 1.5

EXISTING = "existing"
AUTO = "auto-created"
MODES = (EXISTING, AUTO)


@dataclass(frozen=True, slots=True)
class GridCell:
    audiences: int
    mode: str  # EXISTING or AUTO
    users_per_audience: int = USERS_PER_AUDIENCE

    @property
    def existing(self) -> bool:
        return self.mode == EXISTING

    @property
    def events(self) -> int:
        return self.audiences * self.users_per_audience

    @property
    def label(self) -> str:
        return f"{self.audiences:,} {self.mode} x {self.users_per_audience}"


@dataclass(frozen=True, slots=True)
class CallsNeeded:
    """The fewest TikTok calls that deliver a cell, by kind."""

    creates: int
    lookups: int
    mapping: int

    @property
    def total(self) -> int:
        return self.creates + self.lookups + self.mapping

    def floor_seconds(self, rate: float) -> float:
        return self.total / rate

    def describe(self) -> str:
        return f"{self.creates:,} creates + {self.lookups:,} look-ups + {self.mapping:,} mapping = {self.total:,}"


def calls_needed(cell: GridCell, checks_first: bool = False) -> CallsNeeded:
    """Every user enters once, so there is one action (add) and one row per user. ``checks_first``: the lane
    looks existing ids up before sending to them (worker.lane_resolve), which the grid's lanes do not."""
    creates = 0 if cell.existing else cell.audiences
    lookups = math.ceil(cell.audiences / OWNERSHIP_IDS_PER_CALL) if cell.existing and checks_first else 0
    mapping = math.ceil(cell.events / MAPPING_ROWS_PER_CALL)
    return CallsNeeded(creates, lookups, mapping)


def time_limit(floor: float, override: float | None = None) -> float:
    """How long a cell may take before it is reported as not delivered."""
    if override is not None:
        return override
    return max(MIN_TIME_LIMIT, TIME_LIMIT_FLOORS * floor)


@dataclass(frozen=True, slots=True)
class SkippedCell:
    cell: GridCell
    reason: str


def plan_grid(audience_counts: Sequence[int] | None = None, modes: Sequence[str] = MODES,
              users: int = USERS_PER_AUDIENCE, rate: float = GRID_RATE,
              include_long: bool = False) -> tuple[list[GridCell], list[SkippedCell]]:
    """The cells to run, in order, and those left out with the reason. Without ``audience_counts`` the grid
    is GRID_AUDIENCES in every mode, plus AUTO_EXTRA_AUDIENCES for auto-created audiences."""
    cells: list[GridCell] = []
    for mode in MODES:
        if mode not in modes:
            continue
        counts = list(audience_counts) if audience_counts else [*GRID_AUDIENCES,
                                                                 *(AUTO_EXTRA_AUDIENCES if mode == AUTO else ())]
        cells.extend(GridCell(n, mode, users) for n in sorted(set(counts)))
    run: list[GridCell] = []
    skipped: list[SkippedCell] = []
    for cell in cells:
        floor = calls_needed(cell).floor_seconds(rate)
        if floor > LONG_FLOOR and not include_long:
            skipped.append(SkippedCell(cell, f"its floor is {floor:,.0f} s at {rate:g} calls/s "
                                             f"(over {LONG_FLOOR:.0f} s); --grid-long runs it"))
        else:
            run.append(cell)
    return run, skipped


@dataclass(slots=True)
class GridResult:
    """What one cell did. ``seconds`` is from the first POST to the last successful mapping call, set only
    when the final membership was exact within the time limit."""

    cell: GridCell
    rate: float
    limit: float
    seconds: float | None = None
    calls_by_endpoint: dict[str, int] = field(default_factory=dict)
    throttled: int = 0  # calls TikTok (the sandbox) refused as over the rate limit, whatever the endpoint
    # Throttled before an endpoint's handler saw them, so not in calls_by_endpoint (but in throttled).
    throttled_unrouted: int = 0
    mapping_ok: int = 0
    rows_ok: int = 0
    worker_cpu: float = 0.0
    redis_cpu: float = 0.0
    exact: bool = False
    # Not merely late: batches went dead, or TikTok holds what the events do not describe.
    wrong: bool = False
    detail: str = ""
    error: str = ""

    @property
    def needed(self) -> CallsNeeded:
        return calls_needed(self.cell)

    @property
    def floor(self) -> float:
        return self.needed.floor_seconds(self.rate)

    @property
    def ratio(self) -> float | None:
        return self.seconds / self.floor if self.seconds is not None and self.floor else None

    @property
    def calls_made(self) -> int:
        return sum(self.calls_by_endpoint.values()) + self.throttled_unrouted

    @property
    def rows_per_mapping_call(self) -> float:
        return self.rows_ok / self.mapping_ok if self.mapping_ok else 0.0

    @property
    def cpu_per_event(self) -> float:
        """Worker + Redis CPU seconds per event."""
        return (self.worker_cpu + self.redis_cpu) / self.cell.events if self.cell.events else 0.0


# Endpoints a row names; "list" (looking an audience up by name, to adopt one a crashed create made) only
# when it was called.
_SHOWN_ENDPOINTS = {"/segment/mapping/": "map", "/segment/audience/": "create",
                    "/dmp/custom_audience/get/": "get", "/dmp/custom_audience/list/": "list"}


def _calls_text(r: GridResult) -> str:
    by = r.calls_by_endpoint
    parts = [f"{by.get(endpoint, 0):,} {name}" for endpoint, name in _SHOWN_ENDPOINTS.items()
             if by.get(endpoint, 0) or name in ("map", "create", "get")]
    others = r.calls_made - r.throttled_unrouted - sum(by.get(e, 0) for e in _SHOWN_ENDPOINTS)
    if others:
        parts.append(f"{others:,} other")
    if r.throttled:
        parts.append(f"{r.throttled:,} throttled")
    return f"{r.calls_made:,} ({', '.join(parts)})"


def _time_text(r: GridResult) -> str:
    if r.seconds is None:
        return f"not delivered within {r.limit:.0f} s"
    return f"{r.seconds:.1f} s ({r.ratio:.1f}x)"


def grid_lines(results: Iterable[GridResult], skipped: Iterable[SkippedCell] = ()) -> list[str]:
    """The grid as a table: one line per cell, then the cells left out and why."""
    results = list(results)
    rate = results[0].rate if results else GRID_RATE
    lines = [f"rate-limited grid ({rate:g} TikTok calls/s; floor = calls needed / rate; time = first POST to the "
             "last successful mapping call, membership exact; intake's cap on new audiences per minute off):",
             f"  {'cell':<26}{'floor':>9}{'calls needed':>14}  {'time to exact (x floor)':<28}"
             f"{'calls made':<52}{'rows/map':>9}{'us/event':>10}  membership"]
    for r in results:
        membership = "exact" if r.exact else "NOT exact"
        if r.detail and not r.exact:
            membership += f": {r.detail}"
        if r.error:
            membership += f"; {r.error}"
        lines.append(f"  {r.cell.label:<26}{r.floor:>8.1f}s{r.needed.total:>14,}  {_time_text(r):<28}"
                     f"{_calls_text(r):<52}{r.rows_per_mapping_call:>9,.0f}{r.cpu_per_event * 1e6:>10,.0f}"
                     f"  {membership}")
    for s in skipped:
        lines.append(f"  {s.cell.label:<26} skipped: {s.reason}")
    lines.append("  (us/event: worker + Redis CPU per event while the cell ran; calls made counted at the sandbox)")
    return lines


# -- targets -------------------------------------------------------------------------------------------------

TARGET_EXISTING_1K = 3.0  # seconds, 1,000 existing audiences x 5
TARGET_EXISTING_10K = 10.0  # seconds, 10,000 existing audiences x 5
TARGET_CREATE_RATIO = 1.3  # x the creates' floor, 200 auto-created audiences x 5
TARGET_CPU_RATIO = 3.0  # worker + Redis CPU per event at 10,000 audiences, against the 10-audience run


def _find(results: Iterable[GridResult], audiences: int, mode: str) -> GridResult | None:
    return next((r for r in results if r.cell.audiences == audiences and r.cell.mode == mode), None)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _within(r: GridResult | None, target: float, what: str) -> str:
    if r is None:
        return f"  {what}: not run"
    floor = f"floor {r.floor:.1f} s"
    if target < r.floor:
        floor += ", so the target is below the floor at this rate"
    if r.seconds is None:
        return f"  {what} within {target:g} s ({floor}): not delivered within {r.limit:.0f} s NOT met"
    return f"  {what} within {target:g} s ({floor}): {r.seconds:.1f} s {_met(r.seconds <= target and r.exact)}"


def grid_target_lines(results: Sequence[GridResult], reference_cpu_per_event: float | None,
                      reference: str) -> list[str]:
    """The grid's targets beside its figures. ``reference_cpu_per_event``: worker + Redis CPU per event of the
    10-audience run that the 10,000-audience cell is compared with (``reference`` says which run it was)."""
    lines = [_within(_find(results, 1_000, EXISTING), TARGET_EXISTING_1K, "1,000 existing audiences x 5"),
             _within(_find(results, 10_000, EXISTING), TARGET_EXISTING_10K, "10,000 existing audiences x 5")]
    auto = _find(results, 200, AUTO)
    if auto is None:
        lines.append("  200 auto-created audiences x 5: not run")
    else:
        creates_floor = auto.needed.creates / auto.rate
        bound = TARGET_CREATE_RATIO * creates_floor
        what = (f"  200 auto-created audiences x 5 within {TARGET_CREATE_RATIO:g}x the creates' floor "
                f"({creates_floor:.0f} s, so {bound:.0f} s)")
        if auto.seconds is None:
            lines.append(f"{what}: not delivered within {auto.limit:.0f} s NOT met")
        else:
            lines.append(f"{what}: {auto.seconds:.1f} s ({auto.seconds / creates_floor:.2f}x) "
                         f"{_met(auto.seconds <= bound and auto.exact)}")
    many = _find(results, 10_000, EXISTING)
    if many is None or not reference_cpu_per_event:
        lines.append(f"  worker + Redis CPU per event at 10,000 existing audiences within {TARGET_CPU_RATIO:g}x "
                     f"{reference or 'the 10-audience run'}: not compared"
                     f"{'' if many else ' (the 10,000-audience cell did not run)'}")
    else:
        ratio = many.cpu_per_event / reference_cpu_per_event
        # A cell that did not deliver spent its CPU on part of the work: its figure is not the per-event cost.
        verdict = _met(ratio <= TARGET_CPU_RATIO) if many.exact else "NOT met (the cell did not deliver)"
        lines.append(f"  worker + Redis CPU per event at 10,000 existing audiences within {TARGET_CPU_RATIO:g}x "
                     f"{reference}: {many.cpu_per_event * 1e6:,.1f} against {reference_cpu_per_event * 1e6:,.1f} us "
                     f"= {ratio:.1f}x {verdict}")
    return lines


def grid_to_json(r: GridResult) -> dict[str, object]:
    return {
        "audiences": r.cell.audiences, "mode": r.cell.mode, "users_per_audience": r.cell.users_per_audience,
        "events": r.cell.events, "rate": r.rate, "calls_needed": r.needed.total,
        "floor_seconds": round(r.floor, 2), "time_limit_seconds": round(r.limit, 1),
        "seconds": None if r.seconds is None else round(r.seconds, 3),
        "ratio_to_floor": None if r.ratio is None else round(r.ratio, 2),
        "calls_by_endpoint": r.calls_by_endpoint, "calls_made": r.calls_made, "throttled": r.throttled,
        "throttled_before_an_endpoint": r.throttled_unrouted,
        "rows_per_mapping_call": round(r.rows_per_mapping_call, 1),
        "worker_cpu_seconds": round(r.worker_cpu, 3), "redis_cpu_seconds": round(r.redis_cpu, 3),
        "worker_redis_cpu_us_per_event": round(r.cpu_per_event * 1e6, 1),
        "membership_exact": r.exact, "wrong": r.wrong, "membership": r.detail, "error": r.error,
    }
