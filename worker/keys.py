"""Every Redis key the service uses, in one place.

A *target* is one (destination, advertiser, audience) triple, written ``dest|advertiser|audience``. Its audience
part is either a TikTok audience id or ``@<audience key>`` for an Engage audience that the worker must create
first.

A *lane* is one destination: one access token, whose rate limit every call of the lane shares. Delivery is
scheduled per lane (worker.lane), and a TikTok request carries rows of many of the lane's targets. Every key of
a lane and of its targets carries the hash tag ``{<destination>}``, so on Redis Cluster they share one slot
and one Lua script may touch a lane's due set, its targets' streams and counters together. The fleet-wide
keys (the ready index of lanes, the backlog counter, the set of targets) are touched by the same scripts
only on a single Redis; see the README's design section for what Cluster needs of them.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

PREFIX = "tta"

READY = f"{PREFIX}:lanes"  # sorted set: lane -> time (epoch seconds) its next drain is due
TARGETS = f"{PREFIX}:targets"  # set of every target ever written
BACKLOG = f"{PREFIX}:backlog"  # integer: operations accepted and not yet settled, across all targets
# Exists while an operation was enqueued within the quiet-flush period (it expires by itself): its absence
# means the intake has gone quiet, so partial batches need not wait out the flush interval.
INTAKE_RECENT = f"{PREFIX}:intake:recent"
# Set once the scheduler has swept the ready index for a quiet intake; every enqueue deletes it.
QUIET_SWEPT = f"{PREFIX}:intake:quiet-swept"
REJECTED = f"{PREFIX}:rejected"  # hash: reason -> count
REJECTED_LOG = f"{PREFIX}:rejected:log"  # capped list of recent rejections (JSON)
BATCHES = f"{PREFIX}:batches"  # sorted set: batch id -> created time
AUDIENCES = f"{PREFIX}:audiences"  # hash: "dest|advertiser|audience id" -> JSON description
METRICS = f"{PREFIX}:metrics"  # hash of fleet-wide counters
CREATES = f"{PREFIX}:creates"  # stream of legacy createAudience requests made by events
CREATE_FAILURES = f"{PREFIX}:create-failures"  # hash: "dest|advertiser|name" -> JSON of a failed create
CREATE_ATTEMPTS = f"{PREFIX}:creates:attempts"  # hash: creates stream entry id -> attempts so far
CREATES_RETRY_AT = f"{PREFIX}:creates:retry-at"  # epoch seconds before which the creates consumer waits
CREATES_LOCK = f"{PREFIX}:creates:lock"  # held by the one legacy-create consumer running
CREATES_DISPATCH = f"{PREFIX}:creates:dispatch"  # short lease: one scheduler at a time starts the consumer

_TARGET_PART = re.compile(r"^[A-Za-z0-9_.\-@]+$")


@dataclass(frozen=True, slots=True)
class Target:
    destination: str
    advertiser_id: str
    audience: str  # a TikTok audience id, or "@<audience key>" when it is still to be created

    def __post_init__(self) -> None:
        for part in (self.destination, self.advertiser_id, self.audience):
            if not _TARGET_PART.match(part):
                raise ValueError(f"invalid target part {part!r}")

    @property
    def name(self) -> str:
        return f"{self.destination}|{self.advertiser_id}|{self.audience}"

    @property
    def needs_audience(self) -> bool:
        return self.audience.startswith("@")

    @property
    def audience_key(self) -> str:
        """The Engage audience key of a target still to be created."""
        return self.audience[1:]

    @property
    def lane(self) -> str:
        return self.destination

    @classmethod
    def parse(cls, name: str) -> Target:
        parts = name.split("|")
        if len(parts) != 3:
            raise ValueError(f"invalid target {name!r}")
        return cls(*parts)


def lane_of(target: str) -> str:
    """The lane (destination id) of a target name."""
    return target.split("|", 1)[0]


@functools.lru_cache(maxsize=1 << 16)  # a drain builds several keys per audience each round: build them once
def _tagged(kind: str, target: str) -> str:
    """A per-target key under its lane's hash tag: ``tta:<kind>:{<destination>}|<advertiser>|<audience>``."""
    lane, _, rest = target.partition("|")
    return f"{PREFIX}:{kind}:{{{lane}}}|{rest}"


def stream(target: str) -> str:
    return _tagged("q", target)


def pending_count(target: str) -> str:
    return _tagged("n", target)


def membership(target: str) -> str:
    return _tagged("members", target)


def membership_size(target: str) -> str:
    return _tagged("size", target)


def membership_newest(target: str) -> str:
    """The greatest order key ``target``'s membership record holds (worker.membership), in the record's slot."""
    return f"{membership(target)}:newest"


def membership_identifiers(target: str) -> str:
    """Hash: ``target``'s current members' hashed identifiers (worker.membership), in the record's slot."""
    return f"{membership(target)}:ids"


@dataclass(frozen=True, slots=True)
class TargetKeys:
    """A target's own keys, as bytes: what a drain names for each of thousands of audiences in a round, built
    once per target rather than once per use."""

    stream: bytes
    pending: bytes
    members: bytes
    size: bytes
    newest: bytes
    identifiers: bytes
    slot_group: tuple[str, str]  # the hash tags of its record's and its size's keys (worker.membership)


@functools.lru_cache(maxsize=1 << 16)
def target_keys(target: str) -> TargetKeys:
    return TargetKeys(stream(target).encode(), pending_count(target).encode(), membership(target).encode(),
                      membership_size(target).encode(), membership_newest(target).encode(),
                      membership_identifiers(target).encode(),
                      (hash_tag(membership(target)), hash_tag(membership_size(target))))


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes of a key: the text between its first ``{`` and the next ``}`` if not empty,
    else the whole key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def lane_due(lane: str) -> str:
    """Sorted set: the lane's targets with work -> when each is due (0: a full batch waits)."""
    return f"{PREFIX}:due:{{{lane}}}"


def lane_lock(lane: str) -> str:
    return f"{PREFIX}:lock:{{{lane}}}"


def lane_plan(lane: str) -> str:
    """The lane's current plan: the batches cut from its targets' streams, and how far each was consumed."""
    return f"{PREFIX}:plan:{{{lane}}}"


def lane_replay(lane: str) -> str:
    """List of batch ids an operator asked to replay, delivered by the lane before new work."""
    return f"{PREFIX}:replay:{{{lane}}}"


def lane_check_first(lane: str) -> str:
    """Marker (with a TTL): the lane saw an audience refused as not its advertiser's, so for a while it looks its
    unconfirmed audience ids up before sending to them (worker.lane_resolve)."""
    return f"{PREFIX}:check-first:{{{lane}}}"


def resolve_failures(lane: str) -> str:
    """Hash: target -> JSON of its audience's failing create or ownership check (backoff and retry window)."""
    return f"{PREFIX}:resolve-failures:{{{lane}}}"


def batch(batch_id: str) -> str:
    return f"{PREFIX}:batch:{batch_id}"


def batch_rows(batch_id: str) -> str:
    return f"{PREFIX}:batch:{batch_id}:rows"


def batches_by_status(status: str) -> str:
    return f"{PREFIX}:batches:status:{status}"


def batches_by_target(target: str) -> str:
    return f"{PREFIX}:batches:target:{target}"


def batches_by_audience(audience_id: str) -> str:
    return f"{PREFIX}:batches:audience:{audience_id}"


def paused(destination: str) -> str:
    return f"{PREFIX}:paused:{destination}"


def rate_limit(token_id: str) -> str:
    return f"{PREFIX}:rl:{{{token_id}}}"


def rate_calls(token_id: str) -> str:
    """Integer: slots the limiter has granted for this token, ever (``stats --watch`` shows calls per second)."""
    return f"{PREFIX}:rl-calls:{{{token_id}}}"


def cooldown(token_id: str) -> str:
    return f"{PREFIX}:cooldown:{{{token_id}}}"


def created_audience(destination: str, advertiser_id: str, audience_key: str) -> str:
    return f"{PREFIX}:created:{destination}|{advertiser_id}|{audience_key}"


def legacy_created(destination: str, advertiser_id: str, name: str) -> str:
    """Id of the audience a legacy createAudience made, per TikTok name (hashed: names are free text)."""
    digest = hashlib.sha1(name.encode()).hexdigest()[:20]
    return f"{PREFIX}:legacy-created:{destination}|{advertiser_id}|{digest}"


def create_intent(id_key: str) -> str:
    """Marker set while a create whose id will be stored at ``id_key`` may be in flight (worker.audiences)."""
    return f"{id_key}:creating"


def create_lock(destination: str, advertiser_id: str, audience_key: str) -> str:
    return f"{PREFIX}:create-lock:{destination}|{advertiser_id}|{audience_key}"


def ownership(destination: str, advertiser_id: str, audience_id: str) -> str:
    return f"{PREFIX}:owned:{destination}|{advertiser_id}|{audience_id}"


def shadow_creates(lane: str) -> str:
    """Set of ``advertiser|audience key``: audiences a shadow destination would have created (worker.shadow)."""
    return f"{PREFIX}:shadow-creates:{{{lane}}}"
