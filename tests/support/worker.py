"""Worker test doubles: a scripted TikTok client, a TikTok that keeps audiences, an always-open limiter, fixed
destinations, and the few steps that put operations in a lane and drain it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.destinations import Destination
from worker.context import WorkerContext
from worker.keys import Target
from worker.lane import LaneDrain
from worker.operations import Action, Operation
from worker.queue import enqueue
from worker.tiktok.client import Response
from worker.tiktok.errors import PermanentError, TransientError

TOKEN = "unit-test-token"
ADVERTISER = "7000000000000000001"
TARGET = Target("dest", ADVERTISER, "1234")


@dataclass
class Call:
    """One mapping request a :class:`ScriptedClient` received."""

    action: str
    audience_id: str  # the audiences the request names, comma-separated in order of first appearance
    rows: list[dict[str, str]]
    row_audiences: list[list[str]] = field(default_factory=list)
    advertiser_ids: list[str] = field(default_factory=list)


@dataclass
class ScriptedClient:
    """Answers mapping calls from a script of outcomes (an exception to raise, or None for success)."""

    # Per call, in order: an exception to raise, None for success, or a function of the call returning either.
    script: list[Any] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    async def send_mapping(self, token: str, advertiser_id: str, action: str, audience_id: str,
                           rows: Sequence[dict[str, str]]) -> Response:
        assert token == TOKEN
        self.calls.append(Call(action, audience_id, list(rows)))
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return Response(code=0, message="OK", request_id=f"req-{len(self.calls)}", data={}, http_status=200,
                        elapsed=0.001)

    async def send_rows(self, token: str, advertiser_ids: Sequence[str], action: str,
                        rows: Sequence[Any]) -> Response:
        assert token == TOKEN
        audiences = list(dict.fromkeys(a for row in rows for a in row.audience_ids))
        self.calls.append(Call(action, ",".join(audiences), [dict(row.cells) for row in rows],
                               [list(row.audience_ids) for row in rows], list(advertiser_ids)))
        outcome = self.script.pop(0) if self.script else None
        if callable(outcome) and not isinstance(outcome, BaseException):
            outcome = outcome(self.calls[-1])
        if outcome is not None:
            raise outcome
        return Response(code=0, message="OK", request_id=f"req-{len(self.calls)}", data={}, http_status=200,
                        elapsed=0.001)

    async def create_audience(self, token: str, advertiser_id: str, name: str) -> str:
        self.created.append(name)
        return f"90000000000000000{len(self.created)}"

    async def get_audiences(self, token: str, advertiser_id: str,
                            audience_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Every audience id is the advertiser's (ownership checks pass; see test_audiences for refusals)."""
        self.checked.extend(audience_ids)
        return [{"audience_details": {"audience_id": i, "name": f"audience {i}"}} for i in audience_ids]

    async def list_audiences(self, token: str, advertiser_id: str, page: int = 1,
                             page_size: int = 100) -> dict[str, Any]:
        return {"list": [], "page_info": {"page": page, "total_page": 0}}

    async def close(self) -> None:
        return None


class OpenLimiter:
    """A rate limiter that always grants a call at once, and notes the cooldowns it is asked for."""

    def __init__(self) -> None:
        self.throttled: list[float] = []

    def acquire(self, token_id: str) -> float:
        return 0.0

    def reserve(self, token_id: str, ahead: float) -> tuple[bool, float]:
        return True, 0.0

    def throttle(self, token_id: str, seconds: float) -> None:
        self.throttled.append(seconds)


class StaticDestinations:
    """A fixed set of destinations, instead of a destinations file."""

    def __init__(self, destinations: list[Destination]) -> None:
        self._by_id = {d.id: d for d in destinations}

    def get(self, destination_id: str) -> Destination | None:
        return self._by_id.get(destination_id)


@dataclass
class FakeTikTok:
    """A TikTok that keeps audiences per advertiser and can be told to fail, or to lose a create's answer."""

    audiences: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (advertiser, name)
    create_outcomes: list[BaseException | None] = field(default_factory=list)
    get_outcomes: list[BaseException | None] = field(default_factory=list)
    lose_create_answer: bool = False  # create the audience, then answer with a timeout
    create_delay: float = 0.0
    creates: list[str] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    lists: int = 0
    mapping_calls: int = 0
    mapping_audiences: list[list[str]] = field(default_factory=list)  # per mapping call, the audiences named
    sent: list[tuple[str, str, int]] = field(default_factory=list)  # (action, audience id, rows)

    def seed(self, advertiser_id: str, name: str) -> str:
        audience_id = str(5_000_000_000_000_000_000 + len(self.audiences) + 1)
        self.audiences[audience_id] = (advertiser_id, name)
        return audience_id

    async def create_audience(self, token: str, advertiser_id: str, name: str) -> str:
        assert token == TOKEN
        self.creates.append(name)
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        outcome = self.create_outcomes.pop(0) if self.create_outcomes else None
        if outcome is not None:
            raise outcome
        audience_id = self.seed(advertiser_id, name)
        if self.lose_create_answer:
            raise TransientError("no complete answer from TikTok: timed out after 3 s")
        return audience_id

    async def get_audiences(self, token: str, advertiser_id: str,
                            audience_ids: Sequence[str]) -> list[dict[str, Any]]:
        self.gets.extend(audience_ids)
        outcome = self.get_outcomes.pop(0) if self.get_outcomes else None
        if outcome is not None:
            raise outcome
        out = []
        for audience_id in audience_ids:
            owner, name = self.audiences.get(audience_id, ("", ""))
            if owner != advertiser_id:
                raise PermanentError(f"custom_audience_ids: audience {audience_id} does not exist or does "
                                     f"not belong to advertiser {advertiser_id}", code=40002)
            out.append({"audience_details": {"audience_id": audience_id, "name": name}})
        return out

    async def list_audiences(self, token: str, advertiser_id: str, page: int = 1,
                             page_size: int = 100) -> dict[str, Any]:
        self.lists += 1
        owned = [{"audience_id": i, "name": n, "create_time": "2024-01-01 00:00:00"}
                 for i, (a, n) in self.audiences.items() if a == advertiser_id]
        chunk = owned[(page - 1) * page_size : page * page_size]
        return {"list": chunk, "page_info": {"page": page, "total_page": -(-len(owned) // page_size)}}

    async def send_mapping(self, token: str, advertiser_id: str, action: str, audience_id: str,
                           rows: Sequence[dict[str, str]]) -> Response:
        self.sent.append((action, audience_id, len(rows)))
        return Response(code=0, message="OK", request_id="req", data={}, http_status=200, elapsed=0.0)

    async def send_rows(self, token: str, advertiser_ids: Sequence[str], action: str,
                        rows: Sequence[Any]) -> Response:
        self.mapping_calls += 1
        audiences = list(dict.fromkeys(a for row in rows for a in row.audience_ids))
        self.mapping_audiences.append(audiences)
        for audience_id in audiences:  # TikTok refuses the whole request for one audience none of them owns
            if self.audiences.get(audience_id, ("", ""))[0] not in advertiser_ids:
                raise PermanentError(f"custom_audience_ids: audience {audience_id} does not exist",
                                     code=40002, request_id=f"req-{self.mapping_calls}")
        for audience_id in audiences:
            self.sent.append((action, audience_id, sum(audience_id in row.audience_ids for row in rows)))
        return Response(code=0, message="OK", request_id="req", data={}, http_status=200, elapsed=0.0)

    async def close(self) -> None:
        return None


def email(i: int) -> str:
    """The i-th user's hashed email."""
    return f"{i:064x}"


def accept(ctx: WorkerContext, *ops: tuple[Action, int], target: Target = TARGET, event_ms: int = 0) -> None:
    """Enqueue ``(action, user)`` operations for ``target``, already past their flush interval."""
    operations = [Operation(target, action, email=email(i), event_ms=event_ms) for action, i in ops]
    enqueue(ctx.redis, operations, flush_interval=0.0, batch_size=ctx.settings.batch_size, now=time.time() - 1)
    time.sleep(0.002)  # let the flush interval pass


def drain(ctx: WorkerContext, lane: str = "dest") -> str:
    """Drain one lane to the end, as a task would; returns its outcome."""
    return asyncio.run(LaneDrain(ctx, lane).run())
