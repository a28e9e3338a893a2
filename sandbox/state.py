"""The sandbox's in-memory model: tokens and their grants, audiences and their members, counters, call log.

Everything runs on one event loop and no method awaits, so a request's check-then-apply is atomic without
locks. Membership is a set of identifiers ``(id_type, digest)`` per audience, stored as one set of digests per
id type, so applying a 10,000-row request is one ``set.update`` per column.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.errors import OK, invalid
from sandbox.validation import MappingRequest

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def token_id(token: str) -> str:
    """A stable, non-reversible name for a token, for logs and admin answers (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def format_time(epoch: float) -> str:
    """TikTok's timestamp format, in UTC."""
    return time.strftime(_TIME_FORMAT, time.gmtime(epoch))


def _outcome(code: int | None, http_status: int) -> str:
    """How a call ended, for the per-outcome counters: TikTok's code, else the HTTP status, else no answer."""
    if code is not None:
        return str(code)
    return f"http{http_status}" if http_status else "no_answer"


@dataclass
class Audience:
    audience_id: str
    advertiser_id: str
    name: str
    created_at: float
    id_type: str | None = None
    members: dict[str, set[str]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Number of identifiers, each ``(id_type, digest)`` counted once."""
        return sum(len(digests) for digests in self.members.values())

    def apply(self, request: MappingRequest) -> None:
        add = request.action == "add"
        for id_type, digests in request.by_type(self.audience_id):
            if not digests:
                continue
            current = self.members.setdefault(id_type, set())
            if add:
                current.update(digests)
            else:
                current.difference_update(digests)

    def member_list(self) -> list[str]:
        return sorted(f"{kind}:{digest}" for kind, digests in self.members.items() for digest in digests)


class SandboxState:
    """All mutable sandbox data; :meth:`reset` returns it to what the config describes."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.tokens: dict[str, tuple[str, ...]] = {t: tuple(a) for t, a in self.config.tokens.items()}
        self.audiences: dict[str, Audience] = {}
        self.counters: Counter[str] = Counter()
        self.mapping_codes: Counter[str] = Counter()
        self.calls: deque[dict[str, Any]] = deque(maxlen=self.config.call_log_limit)
        self._call_seq = 0
        self._request_seq = 0
        self._issued_tokens = 0
        self._next_audience_id = self.config.first_audience_id

    # -- tokens -----------------------------------------------------------------------------------------

    def advertisers_of(self, token: str) -> tuple[str, ...] | None:
        """The advertisers ``token`` may use, or None for an unknown token."""
        return self.tokens.get(token)

    def grant(self, token: str, advertisers: tuple[str, ...]) -> None:
        self.tokens[token] = advertisers

    def issue_token(self) -> str:
        """A new token granted the default advertisers (the OAuth exchange); deterministic per seed."""
        self._issued_tokens += 1
        material = f"{self.config.seed}:{self._issued_tokens}".encode()
        token = "act." + hashlib.sha256(material).hexdigest()[:40]
        self.tokens[token] = tuple(self.config.default_advertisers)
        return token

    # -- audiences --------------------------------------------------------------------------------------

    def create_audience(
        self, advertiser_id: str, name: str, id_type: str | None = None, audience_id: str | None = None
    ) -> Audience:
        """A new audience; ``audience_id`` is chosen for it unless given (seeding legacy ids)."""
        if audience_id is None:
            while str(self._next_audience_id) in self.audiences:
                self._next_audience_id += 1
            audience_id = str(self._next_audience_id)
            self._next_audience_id += 1
        elif audience_id in self.audiences:
            raise ValueError(f"audience {audience_id} already exists")
        audience = Audience(audience_id, advertiser_id, name, time.time(), id_type)
        self.audiences[audience_id] = audience
        return audience

    def owned_audience(self, advertiser_id: str, audience_id: str, field: str = "audience_ids") -> Audience:
        """The audience, if it exists and belongs to ``advertiser_id``; else the 40002 TikTok answers."""
        audience = self.audiences.get(audience_id)
        if audience is None or audience.advertiser_id != advertiser_id:
            raise invalid(f"{field}: audience {audience_id} does not exist or does not belong to advertiser "
                          f"{advertiser_id}")
        return audience

    def owned_by_any(self, advertiser_ids: tuple[str, ...], audience_id: str) -> Audience:
        """The audience, if it exists and belongs to one of ``advertiser_ids``; else TikTok's 40002."""
        audience = self.audiences.get(audience_id)
        if audience is None or audience.advertiser_id not in advertiser_ids:
            raise invalid(f"audience_ids: audience {audience_id} does not exist or does not belong to "
                          f"advertiser{'s' if len(advertiser_ids) > 1 else ''} {', '.join(advertiser_ids)}")
        return audience

    def audiences_of(self, advertiser_id: str) -> list[Audience]:
        """The advertiser's audiences, newest first, as TikTok's list shows them."""
        owned = [a for a in self.audiences.values() if a.advertiser_id == advertiser_id]
        return owned[::-1]

    # -- requests and the call log ----------------------------------------------------------------------

    def next_request_id(self) -> str:
        """A TikTok-shaped request id: UTC timestamp then a hex sequence, unique within this sandbox."""
        self._request_seq += 1
        return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + f"{self._request_seq:010X}"

    def record_mapping_call(
        self,
        *,
        token: str | None,
        advertiser_id: str | None,
        audience_id: str | None,
        action: str | None,
        audience_ids: list[str] | None = None,
        advertiser_ids: list[str] | None = None,
        rows: int,
        code: int | None,
        http_status: int,
        fault: str | None,
        request_id: str,
        message: str,
    ) -> dict[str, Any]:
        """Log one /segment/mapping/ call and count it. ``code`` is None when no envelope was answered."""
        self._call_seq += 1
        entry = {
            "seq": self._call_seq,
            "time": time.time(),
            "token_id": token_id(token) if token else None,
            "advertiser_id": advertiser_id,
            "audience_id": audience_id,
            "audience_ids": audience_ids if audience_ids is not None else ([audience_id] if audience_id else []),
            "advertiser_ids": advertiser_ids if advertiser_ids is not None else (
                [advertiser_id] if advertiser_id else []),
            "action": action,
            "rows": rows,
            "code": code,
            "http_status": http_status,
            "fault": fault,
            "request_id": request_id,
            "message": message,
        }
        self.calls.append(entry)
        counters = self.counters
        counters["mapping_calls"] += 1
        self.mapping_codes[_outcome(code, http_status)] += 1
        if fault is not None:
            counters["mapping_faults"] += 1
        if code == OK and http_status == 200:
            counters["mapping_ok"] += 1
            counters["rows_ok"] += rows
            counters["rows_added" if action == "add" else "rows_deleted"] += rows
        return entry

    def calls_since(self, seq: int) -> list[dict[str, Any]]:
        return [entry for entry in self.calls if entry["seq"] > seq]

    # -- inspection -------------------------------------------------------------------------------------

    def snapshot(self, revoked: frozenset[str] = frozenset()) -> dict[str, Any]:
        return {
            "audiences": {
                audience.audience_id: {
                    "advertiser_id": audience.advertiser_id,
                    "name": audience.name,
                    "size": audience.size,
                    "by_type": {id_type: len(d) for id_type, d in sorted(audience.members.items())},
                }
                for audience in self.audiences.values()
            },
            "counters": {
                "mapping_calls": 0,
                "mapping_ok": 0,
                "rows_ok": 0,
                "create_calls": 0,
                **self.counters,
                "mapping_codes": dict(self.mapping_codes),
            },
            "tokens": [
                {"token_id": token_id(tok), "advertiser_ids": list(advs), "revoked": tok in revoked}
                for tok, advs in self.tokens.items()
            ],
            "last_call_seq": self._call_seq,
        }
