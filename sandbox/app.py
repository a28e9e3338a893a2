"""The TikTok Business API routes (under ``/open_api/v1.3``) and :func:`build_app`.

Every answer is HTTP 200 with TikTok's envelope ``{"code", "message", "request_id", "data"}`` unless a fault
knob asks for an HTTP-level failure. Handlers authenticate, check the body with :mod:`sandbox.validation`,
then act on :mod:`sandbox.state`; an :class:`ApiError` anywhere becomes the envelope's code and message.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from sandbox.admin_routes import add_admin_routes
from sandbox.config import SandboxConfig
from sandbox.context import SANDBOX, Sandbox, sandbox_of
from sandbox.errors import (
    INVALID_APP,
    INVALID_AUTH_CODE,
    MESSAGES,
    NO_PERMISSION,
    OK,
    RATE_LIMITED,
    TOKEN_INVALID,
    TOKEN_MISSING,
    ApiError,
)
from sandbox.faults import Fault
from sandbox.state import Audience, format_time, token_id
from sandbox.validation import (
    MAX_PAGE_SIZE,
    MappingHeader,
    MappingRequest,
    check_batch_data,
    check_create_audience,
    check_mapping_header,
    check_oauth,
    gc_paused,
    parse_id_list,
    parse_int_param,
    parse_json_object,
    required_param,
)

API_PREFIX = "/open_api/v1.3"
# TikTok needs this many matched users before an audience can be targeted; ``is_valid`` reflects it.
MIN_TARGETABLE = 1000
# TikTok answers OAuth scope as opaque permission ids; the sandbox grants one, and nothing checks it.
OAUTH_SCOPE = [4]
# TikTok keeps an unused custom audience for a year.
_RETENTION_SECONDS = 365 * 86400

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def envelope(code: int, message: str, request_id: str, data: dict[str, Any] | None = None) -> web.Response:
    body = {"code": code, "message": message, "request_id": request_id, "data": {} if data is None else data}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _media_type(request: web.Request) -> str:
    """The request's media type, or '' when the header is absent (aiohttp would say octet-stream)."""
    return request.content_type if "Content-Type" in request.headers else ""


def authenticate(request: web.Request, sandbox: Sandbox) -> tuple[str, tuple[str, ...]]:
    """The ``Access-Token`` header's token and its advertisers, or the auth error TikTok answers."""
    token = request.headers.get("Access-Token", "")
    if not token:
        if "Authorization" in request.headers:
            # A common client mistake: TikTok ignores Authorization entirely, so the token is simply wrong.
            raise ApiError(
                TOKEN_INVALID,
                "Access token is incorrect or has been revoked. Send it in the Access-Token header; "
                "Authorization: Bearer is not accepted.",
            )
        raise ApiError(TOKEN_MISSING)
    advertisers = sandbox.state.advertisers_of(token)
    if advertisers is None or sandbox.faults.is_revoked(token):
        raise ApiError(TOKEN_INVALID)
    return token, advertisers


def check_permission(advertisers: tuple[str, ...], advertiser_id: str) -> None:
    if advertiser_id not in advertisers:
        raise ApiError(
            NO_PERMISSION, f"No permission to operate advertiser {advertiser_id} with this access token."
        )


def tiktok_endpoint(
    handler: Callable[[web.Request, Sandbox], Awaitable[dict[str, Any]]],
) -> RouteHandler:
    """Wrap a handler returning ``data`` into latency, request id and envelope, errors included."""

    @functools.wraps(handler)
    async def route(request: web.Request) -> web.StreamResponse:
        sandbox = sandbox_of(request)
        await sandbox.faults.delay()
        request_id = sandbox.state.next_request_id()
        token = request.headers.get("Access-Token", "")
        if token and sandbox.state.advertisers_of(token) is not None and sandbox.faults.over_qps(token):
            # TikTok's rate limit counts every call of the token, not only mapping calls.
            sandbox.state.counters["throttled_calls"] += 1
            return envelope(RATE_LIMITED, MESSAGES[RATE_LIMITED], request_id)
        try:
            data = await handler(request, sandbox)
        except ApiError as exc:
            return envelope(exc.code, exc.message, request_id)
        return envelope(OK, "OK", request_id, data)

    return route


# -- /segment/mapping/ -----------------------------------------------------------------------------------


async def _answer_fault(request: web.Request, fault: Fault, request_id: str) -> web.StreamResponse:
    if fault.delay > 0:
        await asyncio.sleep(fault.delay)
    if fault.drops_connection:
        if request.transport is not None:
            request.transport.close()
        # Never written: the transport is closed, so the client sees the connection end without an answer.
        return web.Response(status=500)
    if fault.code is None:
        headers = {"Retry-After": "1"} if fault.http_status == 429 else None
        return web.Response(status=fault.http_status, text=fault.message, headers=headers)
    return envelope(fault.code, fault.message, request_id)


@dataclass
class _MappingCall:
    """What one /segment/mapping/ call turned out to be, filled in as it is handled, logged at the end."""

    token: str | None
    request_id: str
    header: MappingHeader | None = None
    mapping: MappingRequest | None = None
    fault: Fault | None = None
    code: int | None = None
    status: int = 200
    message: str = ""


def _check_and_apply(
    sandbox: Sandbox, advertisers: tuple[str, ...], content_type: str, raw: bytes, call: _MappingCall
) -> None:
    """Parse, check, then apply unless a fault knob fails the call. Synchronous on purpose: with no await
    between the checks and the set update, nothing else can touch the audience in between."""
    body = parse_json_object(content_type, raw)
    call.header = header = check_mapping_header(body)
    for advertiser_id in header.advertiser_ids:
        check_permission(advertisers, advertiser_id)
    call.mapping = mapping = check_batch_data(body["batch_data"], header, sandbox.config.max_rows)
    # Every audience must belong to one of the request's advertisers; one that does not fails the whole call.
    audiences = [sandbox.state.owned_by_any(header.advertiser_ids, audience_id)
                 for audience_id in mapping.audience_ids]
    call.fault = sandbox.faults.after_validation(mapping.audience_ids)
    if call.fault is None:
        for audience in audiences:
            audience.apply(mapping)


async def _handle_mapping(request: web.Request, sandbox: Sandbox, call: _MappingCall) -> web.StreamResponse:
    try:
        token, advertisers = authenticate(request, sandbox)
        call.fault = sandbox.faults.before_validation(token)
        if call.fault is None:
            raw = await request.read()
            with gc_paused():
                _check_and_apply(sandbox, advertisers, _media_type(request), raw, call)
    except ApiError as exc:
        call.code, call.message = exc.code, exc.message
        return envelope(exc.code, exc.message, call.request_id)
    if call.fault is None:
        call.code, call.message = OK, "OK"
        return envelope(OK, "OK", call.request_id)
    call.code, call.status, call.message = call.fault.code, call.fault.http_status, call.fault.message
    return await _answer_fault(request, call.fault, call.request_id)


async def segment_mapping(request: web.Request) -> web.StreamResponse:
    """Add or delete identifiers of one audience; every call, faulted or not, goes to the call log."""
    sandbox = sandbox_of(request)
    await sandbox.faults.delay()
    # The presented token is logged (hashed) even when invalid, so a test can tell which client sent what.
    call = _MappingCall(request.headers.get("Access-Token") or None, sandbox.state.next_request_id())
    try:
        return await _handle_mapping(request, sandbox, call)
    except web.HTTPException as exc:  # aiohttp's own refusal, e.g. 413 for a body over the size limit
        call.status, call.message = exc.status, exc.reason
        raise
    except Exception:
        # A sandbox bug: aiohttp answers 500; the log says so instead of pretending a code was sent.
        call.status, call.message = 500, "sandbox error"
        raise
    finally:
        header, mapping = call.header, call.mapping
        sandbox.state.record_mapping_call(
            token=call.token,
            advertiser_id=header.advertiser_id if header else None,
            audience_id=mapping.audience_id if mapping else None,
            audience_ids=mapping.audience_ids if mapping else None,
            advertiser_ids=list(header.advertiser_ids) if header else None,
            action=header.action if header else None,
            rows=mapping.rows if mapping else 0,
            code=call.code,
            http_status=call.status,
            fault=call.fault.kind if call.fault else None,
            request_id=call.request_id,
            message=call.message,
        )


# -- audiences -------------------------------------------------------------------------------------------


@tiktok_endpoint
async def create_audience(request: web.Request, sandbox: Sandbox) -> dict[str, Any]:
    sandbox.state.counters["create_calls"] += 1
    _, advertisers = authenticate(request, sandbox)
    spec = check_create_audience(
        parse_json_object(_media_type(request), await request.read()), sandbox.config.max_audience_name
    )
    check_permission(advertisers, spec.advertiser_id)
    audience = sandbox.state.create_audience(spec.advertiser_id, spec.name, spec.id_type)
    sandbox.state.counters["audiences_created"] += 1
    return {"audience_id": audience.audience_id}


def _audience_summary(audience: Audience) -> dict[str, Any]:
    """The fields TikTok's /dmp/custom_audience/list/ shows per audience."""
    size = audience.size
    return {
        "audience_id": audience.audience_id,
        "name": audience.name,
        "cover_num": size,
        "is_valid": size >= MIN_TARGETABLE,
        "is_creator": True,
        "is_expiring": False,
        "shared": False,
        "audience_type": "Partner Audience",
        "calculate_type": "MULTIPLE_TYPES",
        "create_time": format_time(audience.created_at),
        "expired_time": format_time(audience.created_at + _RETENTION_SECONDS),
    }


def _audience_details(audience: Audience) -> dict[str, Any]:
    """One entry of /dmp/custom_audience/get/: details and history, shaped like TikTok's."""
    summary = _audience_summary(audience)
    details = {
        **{k: v for k, v in summary.items() if k != "audience_type"},
        "type": "Partner",
        "audience_sub_type": "NORMAL",
        "is_auto_refresh": False,
        "error_msg": None,
        "msg": None,
        "rule": '{"inclusions": null, "exclusions": null}',
    }
    history = [
        {"opt_time": summary["create_time"], "action": "create", "msg": None, "editor": "open_api",
         "action_detail": "0"}
    ]
    return {"audience_details": details, "audience_history": history}


@tiktok_endpoint
async def get_audiences(request: web.Request, sandbox: Sandbox) -> dict[str, Any]:
    sandbox.state.counters["get_calls"] += 1
    _, advertisers = authenticate(request, sandbox)
    advertiser_id = required_param(request.query, "advertiser_id")
    check_permission(advertisers, advertiser_id)
    ids = parse_id_list(required_param(request.query, "custom_audience_ids"), "custom_audience_ids")
    # An id that is not the advertiser's fails the whole call, as TikTok does for audiences it does not own.
    audiences = [sandbox.state.owned_audience(advertiser_id, i, field="custom_audience_ids") for i in ids]
    return {"list": [_audience_details(audience) for audience in audiences]}


@tiktok_endpoint
async def list_audiences(request: web.Request, sandbox: Sandbox) -> dict[str, Any]:
    sandbox.state.counters["list_calls"] += 1
    _, advertisers = authenticate(request, sandbox)
    advertiser_id = required_param(request.query, "advertiser_id")
    check_permission(advertisers, advertiser_id)
    page = parse_int_param(request.query, "page", 1, 1, 1_000_000)
    page_size = parse_int_param(request.query, "page_size", 10, 1, MAX_PAGE_SIZE)
    owned = sandbox.state.audiences_of(advertiser_id)
    start = (page - 1) * page_size
    return {
        "list": [_audience_summary(audience) for audience in owned[start : start + page_size]],
        "page_info": {
            "page": page,
            "page_size": page_size,
            "total_number": len(owned),
            "total_page": math.ceil(len(owned) / page_size),
        },
    }


# -- user and OAuth --------------------------------------------------------------------------------------


@tiktok_endpoint
async def user_info(request: web.Request, sandbox: Sandbox) -> dict[str, Any]:
    sandbox.state.counters["user_info_calls"] += 1
    token, _ = authenticate(request, sandbox)
    tid = token_id(token)
    return {
        "id": str(int(tid, 16)),
        "display_name": f"Sandbox User {tid[:6]}",
        "email": f"user-{tid}@sandbox.invalid",
        "avatar_url": "",
        "create_time": 1_700_000_000,
    }


@tiktok_endpoint
async def oauth_access_token(request: web.Request, sandbox: Sandbox) -> dict[str, Any]:
    """Exchange an auth code for a new token granted the default advertisers. Codes may be reused."""
    sandbox.state.counters["oauth_calls"] += 1
    app_id, secret, auth_code = check_oauth(parse_json_object(_media_type(request), await request.read()))
    config = sandbox.config
    if app_id != config.app_id or secret != config.app_secret:
        raise ApiError(INVALID_APP, "The app_id and secret pair is invalid.")
    if auth_code not in config.auth_codes:
        raise ApiError(INVALID_AUTH_CODE, "Auth code is invalid or has expired.")
    token = sandbox.state.issue_token()
    sandbox.state.counters["oauth_ok"] += 1
    return {"access_token": token, "advertiser_ids": list(sandbox.state.tokens[token]), "scope": OAUTH_SCOPE}


def add_api_routes(router: web.UrlDispatcher) -> None:
    router.add_post(f"{API_PREFIX}/segment/mapping/", segment_mapping)
    router.add_post(f"{API_PREFIX}/segment/audience/", create_audience)
    router.add_get(f"{API_PREFIX}/dmp/custom_audience/get/", get_audiences)
    router.add_get(f"{API_PREFIX}/dmp/custom_audience/list/", list_audiences)
    router.add_get(f"{API_PREFIX}/user/info/", user_info)
    router.add_post(f"{API_PREFIX}/oauth2/access_token/", oauth_access_token)


def build_app(config: SandboxConfig | None = None) -> web.Application:
    """A fresh sandbox application (its own state) for ``config`` (default: :class:`SandboxConfig`)."""
    config = config if config is not None else SandboxConfig()
    app = web.Application(client_max_size=config.max_body_bytes)
    app[SANDBOX] = Sandbox.from_config(config)
    add_api_routes(app.router)
    add_admin_routes(app.router)
    return app
