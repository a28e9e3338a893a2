"""The demo of ``tiktok-audiences run --demo``: a generated Engage audience fed through the real intake.

Users enter an Engage audience that has no TikTok audience yet (so the worker creates it, once), a tenth of
them leave again, a fifth carry a phone as well as an email and a few only a phone. With the sandbox, the
final membership TikTok holds is checked against what the events describe.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from tqdm import tqdm

from core.redis_client import LOCAL, redis_from_url
from core.settings import Settings
from producer.identifiers import hash_email, phone_hasher
from worker import keys
from worker.ledger import OPEN_STATUSES, Ledger
from worker.operator.stats import collect

AUDIENCE_KEY = "demo_engaged_shoppers"
EVENTS_PER_REQUEST = 100
CONNECTIONS = 16


def demo_events(users: int) -> tuple[list[dict[str, Any]], set[str]]:
    """The events, and the members TikTok must end with (as ``TYPE:digest`` strings)."""
    hash_phone = phone_hasher("e164", "US")
    events: list[dict[str, Any]] = []
    members: set[str] = set()
    personas = {"computation_key": AUDIENCE_KEY, "computation_class": "audience", "space_id": "spa_demo"}

    def user(i: int) -> tuple[dict[str, Any], list[str]]:
        traits: dict[str, Any] = {}
        ids = []
        if i % 50 != 7:  # a few phone-only users, which Segment would drop
            traits["email"] = f"shopper{i}@demo.example"
            ids.append(f"EMAIL_SHA256:{hash_email(traits['email'])}")
        if i % 5 == 0 or i % 50 == 7:
            traits["phone"] = f"(415) 555-{i % 10000:04d}" if i < 10000 else f"+1 212 {i // 10000:03d} {i % 10000:04d}"
            ids.append(f"PHONE_SHA256:{hash_phone(traits['phone'])}")
        return traits, ids

    # Every event carries the time Engage computed it, as Segment's do: entries one millisecond apart, each exit
    # after every entry. The demo's concurrent senders deliver them in no particular order; the times, not the
    # arrival order, decide the membership.
    start_ms = int(time.time() * 1000) - 2 * users - 60_000
    for i in range(users):
        traits, ids = user(i)
        events.append({"type": "track", "event": "Audience Entered", "userId": f"user-{i}",
                       "messageId": f"demo-enter-{i}", "timestamp": _iso(start_ms + i),
                       "properties": {AUDIENCE_KEY: True},
                       "context": {"traits": traits, "personas": personas}})
        members.update(ids)
    for i in range(0, users, 10):
        traits, ids = user(i)
        events.append({"type": "track", "event": "Audience Exited", "userId": f"user-{i}",
                       "messageId": f"demo-exit-{i}", "timestamp": _iso(start_ms + users + i),
                       "properties": {AUDIENCE_KEY: False},
                       "context": {"traits": traits, "personas": personas}})
        members.difference_update(ids)
    return events, members


def _iso(ms: int) -> str:
    """Epoch milliseconds as Segment writes times: ISO-8601, UTC, millisecond precision."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class DemoRun:
    intake_url: str
    write_key: str
    redis_url: str
    sandbox_url: str
    users: int
    settings: Settings
    expected: set[str] = field(default_factory=set)
    fed: int = 0
    started: float = 0.0
    _last_report: str = ""

    def __post_init__(self) -> None:
        self.redis = redis_from_url(self.redis_url, LOCAL)
        self.ledger = Ledger(self.redis, delivered_retention=self.settings.delivered_retention,
                             dead_retention=self.settings.dead_retention)

    def feed(self) -> None:
        events, self.expected = demo_events(self.users)
        self.started = time.time()
        accepted = asyncio.run(self._post_all(events))
        self.fed = accepted
        elapsed = time.time() - self.started
        sys.stderr.write(f"fed {accepted} of {len(events)} events in {elapsed:.1f}s "
                         f"({accepted / max(elapsed, 1e-9):,.0f}/s)\n")

    async def _post_all(self, events: list[dict[str, Any]]) -> int:
        auth = "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()
        chunks = [events[i : i + EVENTS_PER_REQUEST] for i in range(0, len(events), EVENTS_PER_REQUEST)]
        queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        for chunk in chunks:
            queue.put_nowait(chunk)
        accepted = 0
        progress = tqdm(total=len(events), desc="feeding", unit="ev", file=sys.stderr)

        async def sender(session: aiohttp.ClientSession) -> None:
            nonlocal accepted
            while not queue.empty():
                chunk = queue.get_nowait()
                while True:
                    async with session.post(self.intake_url + "/v1/batch", data=orjson.dumps({"batch": chunk}),
                                            headers={"Authorization": auth,
                                                     "Content-Type": "application/json"}) as response:
                        body = await response.read()
                        if response.status == 503:  # back-pressure: wait and send the same chunk again
                            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                            continue
                        if response.status != 200:
                            raise RuntimeError(f"intake answered {response.status}: {body[:300]!r}")
                        accepted += int(orjson.loads(body).get("accepted", len(chunk)))
                        break
                progress.update(len(chunk))

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(sender(session) for _ in range(CONNECTIONS)))
        progress.close()
        return accepted

    def _settled(self) -> bool:
        counts = self.ledger.counts_by_status()
        backlog = collect(self.redis, self.ledger)["backlog"]
        return backlog == 0 and not any(counts[s] for s in OPEN_STATUSES) and counts["delivered"] > 0

    def report(self, *, only_changes: bool = False) -> None:
        """One status line; with ``only_changes``, nothing when it would repeat the last one."""
        doc = collect(self.redis, self.ledger)
        batches = ", ".join(f"{k} {v}" for k, v in doc["batches"].items() if v)
        members = sum(a["delivered_members"] for a in doc["audiences"])
        line = (f"backlog {doc['backlog']:>8,}  batches: {batches or 'none yet'}  "
                f"delivered members: {members:,}\n")
        if only_changes and line == self._last_report:
            return
        self._last_report = line
        sys.stderr.write(line)

    def wait_until_delivered(self, check_children: Any, timeout: float = 600) -> int:
        deadline = time.monotonic() + timeout
        last_report = 0.0
        while not self._settled():
            check_children()
            if time.monotonic() > deadline:
                sys.stderr.write("gave up waiting for delivery\n")
                return 1
            if time.monotonic() - last_report > 2:
                self.report()
                last_report = time.monotonic()
            time.sleep(0.2)
        return self.summary()

    def summary(self) -> int:
        doc = collect(self.redis, self.ledger)
        elapsed = time.time() - self.started if self.started else 0.0
        delivered = self.ledger.list(status="delivered", limit=100_000)
        rows = sum(r.rows for r in delivered)
        dead = doc["batches"]["dead"]
        sys.stdout.write(f"events accepted: {self.fed:,}; rejected: {doc['rejected_total']:,}\n")
        sys.stdout.write(f"batches delivered: {len(delivered):,} ({rows:,} rows); dead: {dead}\n")
        if elapsed:
            sys.stdout.write(f"end to end: {elapsed:.1f}s ({self.fed / elapsed:,.0f} events/s)\n")
        ok = dead == 0
        if self.sandbox_url and self.expected:
            from sandbox.admin import SandboxAdmin
            from tiktok_audiences.local_stack import SANDBOX_ADVERTISER, SANDBOX_DESTINATION

            admin = SandboxAdmin(self.sandbox_url)
            raw_id = self.redis.get(keys.created_audience(SANDBOX_DESTINATION, SANDBOX_ADVERTISER, AUDIENCE_KEY))
            audience_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            actual = set(admin.members(audience_id)) if audience_id else set()
            match = actual == self.expected
            ok = ok and match
            sys.stdout.write(f"TikTok (sandbox) audience {audience_id or '?'}: "
                             f"{len(actual):,} identifiers, expected {len(self.expected):,}: "
                             f"{'exact match' if match else 'MISMATCH'}\n")
        sys.stdout.write("OK: nothing lost\n" if ok else "FAILED: see above\n")
        return 0 if ok else 1
