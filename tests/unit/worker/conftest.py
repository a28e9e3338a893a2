"""Unit-test doubles for the worker: fakeredis, a scripted TikTok client, an always-open limiter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest

from core.destinations import Destination, parse_destinations
from core.settings import Settings
from worker.ledger import Ledger
from worker.membership import Membership
from worker.tiktok.client import Response

TOKEN = "unit-test-token"
ADVERTISER = "7000000000000000001"


@dataclass
class Call:
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
    def __init__(self) -> None:
        self.throttled: list[float] = []

    def acquire(self, token_id: str) -> float:
        return 0.0

    def reserve(self, token_id: str, ahead: float) -> tuple[bool, float]:
        return True, 0.0

    def throttle(self, token_id: str, seconds: float) -> None:
        self.throttled.append(seconds)


class StaticDestinations:
    def __init__(self, destinations: list[Destination]) -> None:
        self._by_id = {d.id: d for d in destinations}

    def get(self, destination_id: str) -> Destination | None:
        return self._by_id.get(destination_id)


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def settings() -> Settings:
    return Settings(TTA_FLUSH_INTERVAL=0.001, TTA_BATCH_SIZE=100, TTA_BACKOFF_BASE=1, TTA_RETRY_WINDOW=60)  # type: ignore[call-arg]


@pytest.fixture
def destination(monkeypatch: pytest.MonkeyPatch) -> Destination:
    monkeypatch.setenv("UNIT_TOKEN", TOKEN)
    config = parse_destinations({"destinations": [{
        "id": "dest", "access_token_env": "UNIT_TOKEN", "advertiser_ids": [ADVERTISER],
        "native": {"advertiser_id": ADVERTISER, "auto_create": True},
    }]})
    return config.destinations[0]


@pytest.fixture
def client() -> ScriptedClient:
    return ScriptedClient()


@pytest.fixture
def ctx(redis_client: fakeredis.FakeRedis, settings: Settings, destination: Destination,
        client: ScriptedClient) -> Any:
    from worker.context import WorkerContext

    return WorkerContext(
        settings=settings, redis=redis_client, destinations=StaticDestinations([destination]),  # type: ignore[arg-type]
        client=client, limiter=OpenLimiter(),  # type: ignore[arg-type]
        ledger=Ledger(redis_client, delivered_retention=3600, dead_retention=3600),
        membership=Membership(redis_client),
    )
