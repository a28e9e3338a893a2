"""The one place that talks HTTP to TikTok's Business API v1.3.

Every method either returns what TikTok answered on success (HTTP 2xx and ``code == 0``) or raises a
:class:`~worker.tiktok.errors.TikTokError` subclass; what to do about a failure (back off, retry, pause, give
up) is the caller's business. The client never sleeps, retries or rate-limits on its own.

Sessions: a worker process owns one :class:`aiohttp.ClientSession`, created inside its event loop after the
fork. So the client either takes a session it does not own, or creates its own on the first call (never at
import or construction, which may happen in the parent before the fork) and closes it in
:meth:`TikTokClient.close`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson

from worker import metrics
from worker.tiktok.errors import PermanentError, TransientError, classify, parse_body, redact
from worker.tiktok.wire import create_audience_body, mapping_body

API_PREFIX = "/open_api/v1.3"
MAPPING_PATH = "/segment/mapping/"
CREATE_AUDIENCE_PATH = "/segment/audience/"
GET_AUDIENCES_PATH = "/dmp/custom_audience/get/"
LIST_AUDIENCES_PATH = "/dmp/custom_audience/list/"
USER_INFO_PATH = "/user/info/"
ACCESS_TOKEN_PATH = "/oauth2/access_token/"

_JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Response:
    """A successful answer: TikTok's envelope plus what the ledger records about the exchange."""

    code: int
    message: str
    request_id: str
    data: dict[str, Any] = field(repr=False)
    http_status: int
    elapsed: float  # seconds from sending the request to having read the whole answer


class TikTokClient:
    """Calls TikTok's Business API; one instance per worker process, used from that process's event loop."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._api = base_url.rstrip("/") + API_PREFIX
        self._session = session
        self._owns_session = session is None
        # One deadline for the whole exchange: past it the call is a transient failure, not a stuck worker.
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def close(self) -> None:
        """Close the session if this client created it; a session passed in belongs to whoever passed it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> TikTokClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send_mapping(
        self,
        token: str,
        advertiser_id: str,
        action: Literal["add", "delete"],
        audience_id: str,
        rows: Sequence[Mapping[str, str]],
    ) -> Response:
        """Add users to, or delete them from, one audience (at most 10,000 rows; see :func:`mapping_body`)."""
        body = mapping_body(advertiser_id, action, audience_id, rows)
        return await self._call("POST", MAPPING_PATH, token=token, body=body)

    async def create_audience(self, token: str, advertiser_id: str, name: str) -> str:
        """Create an empty custom audience and return its id."""
        answer = await self._call(
            "POST", CREATE_AUDIENCE_PATH, token=token, body=create_audience_body(advertiser_id, name)
        )
        audience_id = answer.data.get("audience_id")
        if audience_id in (None, ""):
            # Not transient: TikTok may have created the audience, and a blind retry would create a duplicate.
            raise PermanentError(
                "TikTok reported success without data.audience_id",
                code=answer.code,
                request_id=answer.request_id,
                http_status=answer.http_status,
            )
        return str(audience_id)

    async def get_audiences(
        self, token: str, advertiser_id: str, audience_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Details of the given audiences (TikTok's ``data.list``)."""
        params = {
            "advertiser_id": advertiser_id,
            "custom_audience_ids": orjson.dumps(list(audience_ids)).decode(),
        }
        answer = await self._call("GET", GET_AUDIENCES_PATH, token=token, params=params)
        return _list_of(answer.data)

    async def list_audiences(
        self, token: str, advertiser_id: str, page: int = 1, page_size: int = 100
    ) -> dict[str, Any]:
        """One page of the advertiser's audiences: TikTok's ``data`` (``list`` and ``page_info``)."""
        params = {"advertiser_id": advertiser_id, "page": str(page), "page_size": str(page_size)}
        answer = await self._call("GET", LIST_AUDIENCES_PATH, token=token, params=params)
        return answer.data

    async def user_info(self, token: str) -> dict[str, Any]:
        """Who the token belongs to: a cheap call that proves a token works."""
        answer = await self._call("GET", USER_INFO_PATH, token=token)
        return answer.data

    async def exchange_auth_code(self, app_id: str, secret: str, auth_code: str) -> dict[str, Any]:
        """Trade an OAuth ``auth_code`` for a long-lived token: TikTok's ``data`` (``access_token`` ...)."""
        body = orjson.dumps({"app_id": app_id, "secret": secret, "auth_code": auth_code})
        answer = await self._call("POST", ACCESS_TOKEN_PATH, body=body, secrets=(secret, auth_code))
        return answer.data

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        secrets: Sequence[str] = (),
    ) -> Response:
        headers = dict(_JSON_HEADERS) if body is not None else {}
        if token is not None:
            headers["Access-Token"] = token  # TikTok's own header; it takes no "Bearer" scheme
            secrets = (token, *secrets)
        session = self._get_session()
        started = time.monotonic()
        try:
            async with session.request(
                method, self._api + path, params=params, data=body, headers=headers, timeout=self._timeout
            ) as answer:
                raw = await answer.read()
                status = answer.status
                retry_after = _retry_after(answer.headers.get("Retry-After"))
        except aiohttp.InvalidURL:
            raise  # a configuration mistake (the base URL), not something a retry fixes
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Timeouts, refused or reset connections, a server that hangs up mid-answer. The cause is dropped
            # (``from None``) because aiohttp's response errors carry the request headers, token included.
            if isinstance(exc, TimeoutError):
                detail = f"timed out after {self._timeout.total} s"
            else:
                detail = redact(f"{type(exc).__name__}: {exc}".rstrip(": "), secrets)
            metrics.tiktok_call(path, "transport", time.monotonic() - started)
            raise TransientError(f"no complete answer from TikTok: {detail}") from None
        elapsed = time.monotonic() - started

        parsed = parse_body(raw)
        error = classify(
            status, parsed if parsed is not None else raw, retry_after=retry_after, secrets=secrets
        )
        metrics.tiktok_call(path, 0 if error is None else error.code if error.code is not None else f"http_{status}",
                            elapsed)
        if error is not None:
            raise error
        if parsed is None:  # unreachable: classify calls an answer a success only when it parsed with code 0
            raise TransientError("unreadable answer from TikTok", http_status=status)
        data = parsed.get("data")
        return Response(
            code=0,
            message=redact(str(parsed.get("message") or ""), secrets),
            request_id=str(parsed.get("request_id") or ""),
            data=data if isinstance(data, dict) else {},
            http_status=status,
            elapsed=elapsed,
        )


def _list_of(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = data.get("list")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is ignored (the cooldown default applies instead)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
