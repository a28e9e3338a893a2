"""Control and inspection routes under ``/_sandbox/``: JSON in and out, no auth (local use only).

Errors are plain HTTP (400 bad input, 404 unknown audience, 409 duplicate) with ``{"error": message}``;
these routes are for tests and operators, not a TikTok imitation.

| route | body / query | answer |
|---|---|---|
| ``GET /_sandbox/health`` | | ``{"ok": true}`` |
| ``GET /_sandbox/knobs`` | | the knobs |
| ``POST /_sandbox/knobs`` | knobs to merge | the knobs after the merge |
| ``POST /_sandbox/audiences`` | ``{advertiser_id, name, audience_id?, id_type?}`` | ``{audience_id, ...}`` |
| ``POST /_sandbox/tokens`` | ``{token, advertiser_ids}`` | ``{token_id, advertiser_ids}`` |
| ``GET /_sandbox/state`` | | audiences, counters, tokens (as ids) |
| ``GET /_sandbox/audiences/{id}/members`` | | ``{audience_id, size, members: ["TYPE:digest", ...]}`` |
| ``GET /_sandbox/calls?since=N`` | | array of mapping calls with ``seq > N`` |
| ``POST /_sandbox/reset`` | | ``{"ok": true}`` |

Cheap totals and every audience's members in one answer: :mod:`sandbox.admin_totals`.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from sandbox.admin_totals import add_totals_routes
from sandbox.context import sandbox_of
from sandbox.faults import KnobError
from sandbox.state import token_id
from sandbox.validation import ID_TYPES

ADMIN_PREFIX = "/_sandbox"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


class _BadInput(Exception):
    pass


async def _object_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _BadInput(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BadInput("body must be a JSON object")
    return body


def _string(body: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # ids are numeric strings; accept a bare number from a hand-written curl
    if not isinstance(value, str) or not value:
        raise _BadInput(f"{key}: expected a non-empty string, got {value!r}")
    return value


async def health(request: web.Request) -> web.Response:
    return _json({"ok": True})


async def get_knobs(request: web.Request) -> web.Response:
    return _json(sandbox_of(request).faults.describe())


async def set_knobs(request: web.Request) -> web.Response:
    faults = sandbox_of(request).faults
    try:
        faults.update(await _object_body(request))
    except (_BadInput, KnobError) as exc:
        return _error(400, str(exc))
    return _json(faults.describe())


async def seed_audience(request: web.Request) -> web.Response:
    """Create an audience directly, optionally with a chosen id (a legacy id that "already exists")."""
    state = sandbox_of(request).state
    try:
        body = await _object_body(request)
        advertiser_id = _string(body, "advertiser_id")
        name = _string(body, "name", required=False) or "sandbox audience"
        audience_id = _string(body, "audience_id", required=False)
        id_type = _string(body, "id_type", required=False)
        if id_type is not None and id_type not in ID_TYPES:
            raise _BadInput(f"id_type: expected one of {', '.join(ID_TYPES)}")
    except _BadInput as exc:
        return _error(400, str(exc))
    assert advertiser_id is not None
    try:
        audience = state.create_audience(advertiser_id, name, id_type, audience_id)
    except ValueError as exc:
        return _error(409, str(exc))
    return _json({"audience_id": audience.audience_id, "advertiser_id": advertiser_id, "name": name})


async def add_token(request: web.Request) -> web.Response:
    """Make ``token`` valid with exactly ``advertiser_ids`` (replacing any earlier grant)."""
    state = sandbox_of(request).state
    try:
        body = await _object_body(request)
        token = _string(body, "token")
        advertisers = body.get("advertiser_ids", list(state.config.default_advertisers))
        if not isinstance(advertisers, list) or not all(isinstance(a, str) and a for a in advertisers):
            raise _BadInput("advertiser_ids: expected an array of advertiser id strings")
    except _BadInput as exc:
        return _error(400, str(exc))
    assert token is not None
    state.grant(token, tuple(advertisers))
    return _json({"token_id": token_id(token), "advertiser_ids": advertisers})


async def get_state(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    return _json(sandbox.state.snapshot(revoked=sandbox.faults.knobs.revoked_tokens))


async def get_members(request: web.Request) -> web.Response:
    state = sandbox_of(request).state
    audience_id = request.match_info["audience_id"]
    audience = state.audiences.get(audience_id)
    if audience is None:
        return _error(404, f"audience {audience_id} does not exist")
    return _json({"audience_id": audience_id, "size": audience.size, "members": audience.member_list()})


async def get_calls(request: web.Request) -> web.Response:
    raw = request.query.get("since", "0")
    try:
        since = int(raw)
    except ValueError:
        return _error(400, f"since: expected an integer, got {raw!r}")
    return _json(sandbox_of(request).state.calls_since(since))


async def reset(request: web.Request) -> web.Response:
    sandbox_of(request).reset()
    return _json({"ok": True})


def add_admin_routes(router: web.UrlDispatcher) -> None:
    router.add_get(f"{ADMIN_PREFIX}/health", health)
    router.add_get(f"{ADMIN_PREFIX}/knobs", get_knobs)
    router.add_post(f"{ADMIN_PREFIX}/knobs", set_knobs)
    router.add_post(f"{ADMIN_PREFIX}/audiences", seed_audience)
    router.add_post(f"{ADMIN_PREFIX}/tokens", add_token)
    router.add_get(f"{ADMIN_PREFIX}/state", get_state)
    router.add_get(f"{ADMIN_PREFIX}/audiences/{{audience_id}}/members", get_members)
    router.add_get(f"{ADMIN_PREFIX}/calls", get_calls)
    router.add_post(f"{ADMIN_PREFIX}/reset", reset)
    add_totals_routes(router)
