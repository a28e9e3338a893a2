"""A small synchronous client of the ``/_sandbox/`` routes, for tests and scripts (stdlib urllib only).

Integration tests run the sandbox as a subprocess and drive it with this: set knobs, seed audiences, then
check membership, counters and the call log once the system under test has delivered.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson


class SandboxAdminError(RuntimeError):
    """An admin call the sandbox refused (``status`` is the HTTP status) or could not be reached (0)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        prefix = f"sandbox admin: HTTP {status}" if status else "sandbox admin"
        super().__init__(f"{prefix}: {message}")


class SandboxAdmin:
    """Admin client for the sandbox at ``base_url`` (the same root TikTok requests use, e.g.
    ``http://127.0.0.1:9000``)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/_sandbox/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = str(orjson.loads(raw).get("error", raw.decode(errors="replace")))
            except (orjson.JSONDecodeError, AttributeError):
                message = raw.decode(errors="replace")
            raise SandboxAdminError(exc.code, message) from None
        except (urllib.error.URLError, OSError) as exc:
            raise SandboxAdminError(0, f"cannot reach {self.base_url}: {exc}") from None

    def healthy(self) -> bool:
        try:
            return bool(self._call("GET", "health").get("ok"))
        except SandboxAdminError:
            return False

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the sandbox answers (e.g. after starting it as a subprocess)."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise SandboxAdminError(0, f"sandbox at {self.base_url} not ready after {timeout:g}s")
            time.sleep(0.05)

    def knobs(self, **settings: Any) -> dict[str, Any]:
        """Merge ``settings`` into the fault knobs (none: just read them); returns the knobs afterwards."""
        if not settings:
            return dict(self._call("GET", "knobs"))
        return dict(self._call("POST", "knobs", settings))

    def state(self) -> dict[str, Any]:
        return dict(self._call("GET", "state"))

    def counters(self) -> dict[str, Any]:
        return dict(self.state()["counters"])

    def totals(self) -> dict[str, Any]:
        """Calls by endpoint, the counters, the last call's sequence number, audiences and identifiers in all:
        cheap enough to poll while a run is timed."""
        return dict(self._call("GET", "counters"))

    def memberships(self, advertiser_id: str | None = None) -> dict[str, dict[str, Any]]:
        """Every audience (of ``advertiser_id`` if given) with its name and sorted members, in one call."""
        query = {"advertiser_id": advertiser_id} if advertiser_id is not None else None
        return dict(self._call("GET", "memberships", query=query))

    def members(self, audience_id: str) -> list[str]:
        """Sorted ``"ID_TYPE:digest"`` strings of the audience's members."""
        return list(self._call("GET", f"audiences/{urllib.parse.quote(audience_id)}/members")["members"])

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        """Logged /segment/mapping/ calls with ``seq > since``, oldest first."""
        return list(self._call("GET", "calls", query={"since": since}))

    def seed_audience(
        self,
        advertiser_id: str,
        name: str = "sandbox audience",
        audience_id: str | None = None,
        id_type: str | None = None,
    ) -> str:
        """Create an audience directly (e.g. a legacy id a mapping names); returns its id."""
        body: dict[str, Any] = {"advertiser_id": advertiser_id, "name": name}
        if audience_id is not None:
            body["audience_id"] = audience_id
        if id_type is not None:
            body["id_type"] = id_type
        return str(self._call("POST", "audiences", body)["audience_id"])

    def add_token(self, token: str, advertiser_ids: list[str] | None = None) -> dict[str, Any]:
        """Make ``token`` valid for ``advertiser_ids`` (default: the sandbox's default advertisers)."""
        body: dict[str, Any] = {"token": token}
        if advertiser_ids is not None:
            body["advertiser_ids"] = advertiser_ids
        return dict(self._call("POST", "tokens", body))

    def reset(self) -> None:
        """Forget audiences, calls, knobs and issued tokens: back to the configured start."""
        self._call("POST", "reset", {})
