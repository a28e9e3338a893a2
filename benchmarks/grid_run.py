"""Running one cell of the rate-limited grid (``benchmarks.grid`` says what the cells are and how they read).

Each cell gets a fresh stack (redis-server, the sandbox, plain ``serve`` and ``worker --concurrency N``, with
``TTA_RATE_LIMIT_QPS`` at the grid's rate), warmed up with one delivered event. The sandbox then refuses
calls beyond the same rate per second, as TikTok would. For existing audiences, the audiences are
created at the sandbox before the clock starts and every event names its audience's id. The events (one
"Audience Entered" per user, 100 to a request) are posted through the real intake; the cell ends when the
sandbox holds as many identifiers as the events describe (then the members are compared one by one), when a
batch goes dead, or at the cell's time limit.

What is measured is read off the sandbox (calls by endpoint, rows, the time of the last successful mapping
call) and off ``/proc`` (worker and Redis CPU), never off the service's own bookkeeping, so the grid measures
any delivery engine the same way. The bench's own work (seeding, polling the sandbox every 0.2 s) is kept out
of the CPU figures; it looks for dead batches in Redis once a second.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from benchmarks.grid import GridCell, GridResult, calls_needed, time_limit
from benchmarks.measure import sample_tree, usage
from benchmarks.run import BenchStack, StackOptions, post_all, warm_up
from producer.identifiers import hash_email
from sandbox.admin import SandboxAdmin
from tiktok_audiences.local_stack import SANDBOX_ADVERTISER, say

GRID_PREFIX = "grid_"
POLL_INTERVAL = 0.2  # the sandbox's totals: the time itself comes from its call log, not from this poll
LEDGER_INTERVAL = 1.0
SEED_CONNECTIONS = 16
THROTTLE_CODES = {40100}


def grid_key(index: int) -> str:
    return f"{GRID_PREFIX}{index}"


def grid_email(user: int) -> str:
    return f"grid.user.{user}@example.com"


@dataclass(slots=True)
class GridWorkload:
    """A cell's events, in sending order, and the members each audience key must end with."""

    bodies: list[bytes]
    expected: dict[str, set[str]]  # audience key -> "EMAIL_SHA256:digest" members

    @property
    def identifiers(self) -> int:
        return sum(len(m) for m in self.expected.values())


def build_grid_workload(cell: GridCell, audience_ids: dict[str, str] | None = None,
                        per_request: int = 100) -> GridWorkload:
    """One "Audience Entered" per user; user ``u`` enters audience ``u % audiences``, so consecutive events
    spread over every audience (as Engage computing many audiences at once sends them). With
    ``audience_ids`` (key -> TikTok id) each event names its audience's id, as events for audiences that
    already exist at TikTok do."""
    expected: dict[str, set[str]] = {grid_key(a): set() for a in range(cell.audiences)}
    events: list[dict[str, Any]] = []
    for user in range(cell.events):
        key = grid_key(user % cell.audiences)
        email = grid_email(user)
        personas: dict[str, str] = {"computation_key": key, "computation_class": "audience",
                                    "space_id": "spa_bench"}
        if audience_ids is not None:
            personas["external_audience_id"] = audience_ids[key]
        events.append({"type": "track", "event": "Audience Entered", "userId": f"grid-user-{user}",
                       "messageId": f"grid-in-{user}", "properties": {key: True},
                       "context": {"traits": {"email": email}, "personas": personas}})
        expected[key].add(f"EMAIL_SHA256:{hash_email(email)}")
    bodies = [orjson.dumps({"batch": events[i : i + per_request]}) for i in range(0, len(events), per_request)]
    return GridWorkload(bodies, expected)


async def seed_keys(sandbox_url: str, keys: list[str]) -> dict[str, str]:
    """Create each audience at the sandbox (named by its key), concurrently; returns key -> audience id."""
    out: dict[str, str] = {}
    queue = iter(keys)

    async def seeder(session: aiohttp.ClientSession) -> None:
        for key in queue:  # a shared iterator: each key is taken by exactly one seeder
            body = {"advertiser_id": SANDBOX_ADVERTISER, "name": key}
            async with session.post(f"{sandbox_url}/_sandbox/audiences", json=body) as answer:
                answer.raise_for_status()
                out[key] = str((await answer.json())["audience_id"])

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(seeder(session) for _ in range(SEED_CONNECTIONS)))
    return out


def seed_audiences(stack: BenchStack, count: int) -> dict[str, str]:
    return asyncio.run(seed_keys(stack.sandbox_url, [grid_key(a) for a in range(count)]))


def _dead_batches(stack: BenchStack) -> int:
    try:
        return stack.ledger().counts_by_status().get("dead", 0)
    except Exception:  # a ledger this bench does not know how to read is not a reason to stop the cell
        return 0


@dataclass(frozen=True, slots=True)
class MembershipCheck:
    exact: bool
    detail: str
    # Something is at TikTok that the events do not describe (an extra member, a second audience of one
    # name): waiting longer cannot fix it, unlike what is merely missing.
    contradicted: bool = False


def check_grid_membership(admin: SandboxAdmin, workload: GridWorkload,
                          audience_ids: dict[str, str] | None) -> MembershipCheck:
    """Whether each audience holds exactly its members. Auto-created audiences are found by name (the
    Engage audience key), so a duplicate create shows up here too."""
    audiences = admin.memberships(SANDBOX_ADVERTISER)
    by_name: dict[str, list[str]] = {}
    for audience_id, audience in audiences.items():
        by_name.setdefault(str(audience["name"]), []).append(audience_id)
    wrong = missing = extra = duplicated = absent = 0
    for key, members in workload.expected.items():
        if audience_ids is not None:
            ids = [audience_ids[key]]
        else:
            ids = by_name.get(key, [])
            duplicated += len(ids) > 1
        if not ids:
            absent += 1
            missing += len(members)
            continue
        actual = {m for audience_id in ids for m in audiences[audience_id]["members"]}
        if actual != members:
            wrong += 1
            missing += len(members - actual)
            extra += len(actual - members)
    problems = []
    if absent:
        problems.append(f"{absent:,} audiences never created")
    if duplicated:
        problems.append(f"{duplicated:,} audiences created more than once")
    if wrong:
        problems.append(f"{wrong:,} audiences differ")
    if missing or extra:
        problems.append(f"{missing:,} identifiers missing, {extra:,} extra")
    if problems:
        return MembershipCheck(False, "; ".join(problems), contradicted=bool(extra or duplicated))
    return MembershipCheck(True, f"{len(workload.expected):,} audiences, {workload.identifiers:,} identifiers")


def _calls_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    b, a = before["calls_by_endpoint"], after["calls_by_endpoint"]
    return {endpoint: int(a[endpoint]) - int(b.get(endpoint, 0)) for endpoint in a}


def run_cell(cell: GridCell, options: StackOptions, timeout: float | None = None) -> GridResult:
    """One cell on a fresh stack; ``timeout`` overrides the cell's time limit."""
    rate = options.rate_limit_qps
    result = GridResult(cell, rate, time_limit(calls_needed(cell).floor_seconds(rate), timeout))
    with BenchStack(options) as stack:
        warm_up(stack)
        audience_ids = seed_audiences(stack, cell.audiences) if cell.existing else None
        workload = build_grid_workload(cell, audience_ids)
        stack.admin.knobs(qps_limit=max(1, int(rate)))  # TikTok refuses calls over its rate, so does the sandbox
        totals_before = stack.admin.totals()
        roots = stack.roots()
        watched = {"worker": roots["worker"], "redis-server": roots["redis-server"]}
        cpu_before = {stage: sample_tree(pid) for stage, pid in watched.items()}
        target = int(totals_before["identifiers"]) + workload.identifiers

        started = time.time()
        accepted, _ = asyncio.run(post_all(stack.intake_url, workload.bodies))
        if accepted < cell.events:
            result.error = f"intake accepted {accepted:,} of {cell.events:,} events"
            result.wrong = True
        deadline = started + result.limit
        next_ledger_look = started
        while not result.error:
            stack.local.check()
            if int(stack.admin.totals()["identifiers"]) >= target:
                break
            if time.time() >= next_ledger_look:  # the ledger lives in the Redis being measured: look rarely
                next_ledger_look = time.time() + LEDGER_INTERVAL
                dead = _dead_batches(stack)
                if dead:
                    result.error = f"{dead:,} batches dead"
                    result.wrong = True
                    break
            if time.time() > deadline:
                result.error = f"not delivered within {result.limit:.0f} s"
                break
            time.sleep(POLL_INTERVAL)
        cpu = {stage: usage(stage, cpu_before[stage], sample_tree(pid)).cpu_seconds
               for stage, pid in watched.items()}
        result.worker_cpu, result.redis_cpu = cpu["worker"], cpu["redis-server"]

        totals_after = stack.admin.totals()
        result.calls_by_endpoint = _calls_delta(totals_before, totals_after)
        calls = stack.admin.calls(since=int(totals_before["last_call_seq"]))
        ok = [c for c in calls if c["code"] == 0 and c["http_status"] == 200]
        result.mapping_ok, result.rows_ok = len(ok), sum(int(c["rows"]) for c in ok)
        # A sandbox that throttles every endpoint answers non-mapping calls over the limit before their handler
        # counts them; it counts them as throttled_calls instead.
        result.throttled_unrouted = (int(totals_after["counters"].get("throttled_calls", 0))
                                     - int(totals_before["counters"].get("throttled_calls", 0)))
        result.throttled = result.throttled_unrouted + sum(
            1 for c in calls if c["code"] in THROTTLE_CODES or c["http_status"] == 429)
        check = check_grid_membership(stack.admin, workload, audience_ids)
        result.exact, result.detail = check.exact, check.detail
        result.wrong = check.contradicted or result.wrong
        if result.exact and ok:
            result.seconds = max(float(c["time"]) for c in ok) - started
    return result


# Intake's guard against a flood of made-up audience keys (new audiences per destination per minute) is off in
# the grid: its cells introduce hundreds of audiences at once on purpose, and the grid measures delivery.
GRID_SETTINGS = {"TTA_NEW_AUDIENCES_PER_MINUTE": "0"}


def grid_options(workers: int, intake_processes: int | None, flush_interval: float, rate: float) -> StackOptions:
    return StackOptions(workers=workers, intake_processes=intake_processes, flush_interval=flush_interval,
                        rate_limit_qps=rate, settings=dict(GRID_SETTINGS))


def run_grid(cells: list[GridCell], options: StackOptions, timeout: float | None = None) -> list[GridResult]:
    results = []
    for cell in cells:
        needed = calls_needed(cell)
        say(f"grid: {cell.label} ({cell.events:,} events; floor {needed.floor_seconds(options.rate_limit_qps):.1f} s"
            f" = {needed.describe()} calls at {options.rate_limit_qps:g}/s)")
        results.append(run_cell(cell, options, timeout))
        r = results[-1]
        say(f"grid: {cell.label}: " + (f"{r.seconds:.1f} s" if r.seconds is not None else
                                        f"not exact ({r.error or r.detail})"))
    return results
