"""Builders for routing tests: a destinations file around mappings, Engage events, expected operations."""

from __future__ import annotations

import hashlib
from typing import Any

from core.destinations import parse_destinations
from producer.routing import Router, RouteResult
from worker.keys import Target
from worker.operations import Operation

ADVERTISER = "7000000000000000001"
OTHER_ADVERTISER = "7000000000000000002"
NATIVE_ADVERTISER = "7000000000000000003"
AUDIENCE = "1234345"
EMAIL = "Test.User+tag@Testing.com"
EMAIL_SHA = "2458778dc6906a947a016ee3bef93b57099bb130945b8f717f7d8794beb69bca"
PHONE = "(415) 555-0123"
PHONE_SHA = hashlib.sha256(b"+14155550123").hexdigest()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def router(*mappings: Any, native: dict[str, Any] | None = None, dest_id: str = "tiktok-main") -> Router:
    return Router.from_destinations(
        parse_destinations({"destinations": [dest(*mappings, native=native, dest_id=dest_id)]})
    )


def dest(
    *mappings: Any, native: dict[str, Any] | None = None, dest_id: str = "tiktok-main"
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": dest_id,
        "access_token_env": "TIKTOK_ACCESS_TOKEN",
        "advertiser_ids": [ADVERTISER, OTHER_ADVERTISER, NATIVE_ADVERTISER],
        "mappings": [m if isinstance(m, dict) else {"action": m} for m in mappings],
    }
    if native is not None:
        data["native"] = native
    return data


def engage(
    event: str = "Audience Entered",
    *,
    member: Any = True,
    traits: dict[str, Any] | None = None,
    personas: dict[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """An Engage audience track call, as Segment sends it to an audience destination."""
    return {
        "type": "track",
        "event": event,
        "userId": "user-1",
        "messageId": "msg-1",
        "properties": {"audience_key": "vip", "vip": member},
        "context": {
            "traits": {"email": EMAIL} if traits is None else traits,
            "personas": {
                "computation_key": "vip",
                "computation_class": "audience",
                "external_audience_id": AUDIENCE,
                "audience_settings": {"advertiserId": ADVERTISER},
            }
            if personas is None
            else personas,
        },
        **top,
    }


TARGET = Target("tiktok-main", ADVERTISER, AUDIENCE)


def op(
    action: str = "add",
    email: str = EMAIL_SHA,
    phone: str = "",
    adid: str = "",
    adid_type: str = "",
    target: Target = TARGET,
) -> Operation:
    return Operation(target, action, email, phone, adid, adid_type)  # type: ignore[arg-type]


def accepted(result: RouteResult) -> list[Operation]:
    assert result.rejection is None, result.rejection
    assert result.rejection_code is None
    return result.operations
