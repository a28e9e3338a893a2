"""The benchmark's events: Engage audience entries and exits, and the membership they must leave behind.

Users enter one of ``audiences`` Engage audiences (``bench_0`` ...); every tenth event is instead the exit
of a user who entered a few thousand events earlier, so exits land both in the batch that holds the entry
(collapsing) and in later batches (ordering). Every user has an email; a fifth also a phone, which the
intake must normalise to E.164 before hashing.

Nothing here is timed: bodies are serialised before the clock starts, so the sender's cost is one POST each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from producer.identifiers import hash_email, phone_hasher

EVENTS_PER_REQUEST = 100
EXIT_EVERY = 10  # every tenth event is an exit
EXIT_LAG = 5_000  # ...of the user who entered this many users earlier (>= 5,556 events apart when sent)
# A sender answers for order only between requests it waited for: a request is sent once every request this
# many places before it has been answered, so an exit never overtakes its user's entry (which is >= 55
# requests earlier). With 32 connections the limit only bites when one request is slow.
MAX_AHEAD = 45
AUDIENCE_PREFIX = "bench_"


def audience_key(index: int) -> str:
    return f"{AUDIENCE_PREFIX}{index}"


def _email(user: int) -> str:
    # Mixed case, dots and a +tag, so normalisation does real work (and every user's address stays distinct).
    return f"Bench.User.{user}+tag{user % 7}@Example.com"


def _phone(user: int) -> str | None:
    if user % 5:
        return None
    # NANP numbers written the way people type them: unique per user up to 8 million users.
    exchange = 200 + (user // 10_000) % 800
    return f"+1 (415) {exchange}-{user % 10_000:04d}"


@dataclass(slots=True)
class Workload:
    """Events, in sending order, and the members each audience must end with (``TYPE:digest``)."""

    events: list[dict[str, Any]]
    expected: dict[str, set[str]]  # audience key -> members
    users: int = 0
    exits: int = 0
    bodies: list[bytes] = field(default_factory=list)

    def serialise(self, per_request: int = EVENTS_PER_REQUEST) -> list[bytes]:
        self.bodies = [orjson.dumps({"batch": self.events[i : i + per_request]})
                       for i in range(0, len(self.events), per_request)]
        return self.bodies


def _event(user: int, audience: str, entered: bool, traits: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Audience Entered" if entered else "Audience Exited",
        "userId": f"user-{user}",
        "messageId": f"bench-{'in' if entered else 'out'}-{user}",
        "properties": {audience: entered},
        "context": {
            "traits": traits,
            "personas": {"computation_key": audience, "computation_class": "audience",
                         "space_id": "spa_bench"},
        },
    }


def build_workload(events: int, audiences: int) -> Workload:
    """``events`` events over ``audiences`` audiences (user ``u`` belongs to audience ``u % audiences``)."""
    hash_phone = phone_hasher("e164", "US")
    out: list[dict[str, Any]] = []
    expected: dict[str, set[str]] = {audience_key(a): set() for a in range(audiences)}
    identifiers: dict[int, tuple[dict[str, str], list[str]]] = {}
    next_user = 0
    exits = 0

    def ids_of(user: int) -> tuple[dict[str, str], list[str]]:
        traits = {"email": _email(user)}
        ids = [f"EMAIL_SHA256:{hash_email(traits['email'])}"]
        phone = _phone(user)
        if phone is not None:
            traits["phone"] = phone
            ids.append(f"PHONE_SHA256:{hash_phone(phone)}")
        return traits, ids

    for position in range(events):
        leaving = next_user - EXIT_LAG
        if position % EXIT_EVERY == EXIT_EVERY - 1 and leaving >= 0:
            user, entered = leaving, False
            exits += 1
        else:
            user, entered = next_user, True
            next_user += 1
        audience = audience_key(user % audiences)
        if entered:
            identifiers[user] = ids_of(user)
        traits, ids = identifiers[user]
        out.append(_event(user, audience, entered, traits))
        if entered:
            expected[audience].update(ids)
        else:
            expected[audience].difference_update(ids)
    return Workload(out, expected, users=next_user, exits=exits)
