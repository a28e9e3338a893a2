"""For tests that talk to the sandbox: a tiny synchronous TikTok client that returns whatever came back
(status, envelope) instead of raising, and the constants the sandbox starts with."""

from __future__ import annotations

import hashlib
import http.client
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sandbox import SandboxAdmin

TOKEN = "sandbox-token"
ADVERTISER = "7000000000000000001"
OTHER_ADVERTISER = "7000000000000000002"
API = "/open_api/v1.3"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Answer:
    """What the sandbox sent back; ``status`` 0 means no answer came (connection closed, or timed out)."""

    status: int
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def code(self) -> int:
        return int(self.json["code"])

    @property
    def message(self) -> str:
        return str(self.json["message"])

    @property
    def data(self) -> Any:
        return self.json["data"]


class Api:
    """A deliberately dumb TikTok client: sends exactly what a test says, never retries, never raises."""

    token = TOKEN
    advertiser = ADVERTISER
    other_advertiser = OTHER_ADVERTISER

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.admin = SandboxAdmin(base_url)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
        raw: bytes | None = None,
        query: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Answer:
        """Send exactly these headers (http.client adds no Content-Type of its own, unlike urllib)."""
        url = urllib.parse.urlsplit(self.base_url)
        target = API + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        sent = dict(headers or {})
        if token is not None:
            sent["Access-Token"] = token
        if content_type is not None and data is not None:
            sent["Content-Type"] = content_type
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)
        try:
            connection.request(method, target, body=data, headers=sent)
            response = connection.getresponse()
            return Answer(response.status, response.read())
        except (http.client.RemoteDisconnected, ConnectionError, TimeoutError):
            return Answer(0, b"")
        finally:
            connection.close()

    def mapping(self, body: Any, **kwargs: Any) -> Answer:
        return self.request("POST", "/segment/mapping/", body, **kwargs)

    def body(
        self,
        audience: str,
        rows: Sequence[Sequence[str | None]],
        *,
        action: str = "add",
        schema: Sequence[str] = ("EMAIL_SHA256",),
        advertiser: str = ADVERTISER,
    ) -> dict[str, Any]:
        """A /segment/mapping/ body: each row lists one digest or None (an empty cell) per schema entry."""
        return {
            "advertiser_ids": [advertiser],
            "action": action,
            "id_schema": list(schema),
            "batch_data": [
                [{} if digest is None else {"id": digest, "audience_ids": [audience]} for digest in row]
                for row in rows
            ],
        }

    def add(
        self,
        audience: str,
        *emails: str,
        action: str = "add",
        advertiser: str = ADVERTISER,
        **request: Any,
    ) -> Answer:
        """Send the hashed ``emails`` to ``audience``, one row each; ``request`` goes to :meth:`request`."""
        body = self.body(audience, [[sha(e)] for e in emails], action=action, advertiser=advertiser)
        return self.mapping(body, **request)

    def members(self, audience: str) -> list[str]:
        return self.admin.members(audience)
