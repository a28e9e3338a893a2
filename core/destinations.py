"""The destinations file: TikTok connections and, for the producer, their raw mappings.

The worker needs only the connection half (token, advertisers, native defaults); the producer compiles the
``mappings`` entries (see :mod:`producer.mappings`). Access tokens are read from the environment or a file and
never stored in these objects' reprs, in Redis, or in error messages.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_MAPPINGS = 50
# The name an event's ``integrations`` object uses for a destination, as in Segment.
DEFAULT_INTEGRATION_NAME = "TikTok Audiences"
_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")
_ADVERTISER = re.compile(r"^[0-9]{1,32}$")


class ConfigError(Exception):
    """A destinations file that cannot be used; the message names the destination, mapping and problem."""


class NativeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advertiser_id: str | None = None
    auto_create: bool = False

    @field_validator("advertiser_id", mode="before")
    @classmethod
    def _advertiser_as_string(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str = ""
    access_token_env: str | None = None
    access_token_file: str | None = None
    advertiser_ids: list[str] = Field(min_length=1)
    native: NativeSettings | None = None
    # How identifiers are normalised before hashing: ours, or exactly as Segment's destination does (so
    # digests match audiences Segment built); see producer.identifiers.
    hashing: Literal["normalized", "segment"] = "normalized"
    # live: requests go to TikTok. shadow: everything up to the TikTok call runs and each would-be request is
    # recorded in the ledger (status ``shadow``) instead, to compare with another delivery (worker.shadow).
    mode: Literal["live", "shadow"] = "live"
    mappings: list[dict[str, Any]] = Field(default_factory=list)
    # Events whose ``integrations`` turn this name off skip the destination (Segment's rule).
    integration_name: str = Field(DEFAULT_INTEGRATION_NAME, min_length=1)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("may contain only letters, digits, '.', '_' and '-'")
        return value

    @field_validator("advertiser_ids", mode="before")
    @classmethod
    def _advertisers_as_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) else v for v in value]
        return value

    @field_validator("advertiser_ids")
    @classmethod
    def _advertiser_shape(cls, value: list[str]) -> list[str]:
        for adv in value:
            if not _ADVERTISER.match(adv):
                raise ValueError(f"advertiser id {adv!r} must be digits")
        return value

    @field_validator("mappings")
    @classmethod
    def _at_most_fifty(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(value) > MAX_MAPPINGS:
            raise ValueError(f"has {len(value)} mappings; at most {MAX_MAPPINGS} are allowed")
        return value

    @model_validator(mode="after")
    def _token_source(self) -> Destination:
        if not self.access_token_env and not self.access_token_file:
            raise ValueError("needs access_token_env or access_token_file")
        if self.native and self.native.advertiser_id and self.native.advertiser_id not in self.advertiser_ids:
            raise ValueError(f"native.advertiser_id {self.native.advertiser_id} is not in advertiser_ids")
        return self

    @property
    def native_advertiser_id(self) -> str | None:
        return self.native.advertiser_id if self.native else None

    @property
    def auto_create(self) -> bool:
        return bool(self.native and self.native.auto_create)

    def access_token(self) -> str:
        """The token, from the environment variable or file named in the file. Errors name the source only."""
        if self.access_token_env:
            token = os.environ.get(self.access_token_env, "").strip()
            if token:
                return token
            if not self.access_token_file:
                raise ConfigError(
                    f"destination {self.id!r}: environment variable {self.access_token_env} is not set"
                )
        assert self.access_token_file
        path = Path(self.access_token_file).expanduser()
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"destination {self.id!r}: cannot read access_token_file {path}: {exc.strerror}"
            ) from None
        if not token:
            raise ConfigError(f"destination {self.id!r}: access_token_file {path} is empty")
        return token

    def token_id(self) -> str:
        """A stable, non-reversible name for this destination's token (limiter and cooldown keys)."""
        return token_id(self.access_token())


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class DestinationsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destinations: list[Destination] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> DestinationsFile:
        seen: set[str] = set()
        for dest in self.destinations:
            if dest.id in seen:
                raise ValueError(f"destination id {dest.id!r} is used twice")
            seen.add(dest.id)
        return self

    def get(self, destination_id: str) -> Destination:
        for dest in self.destinations:
            if dest.id == destination_id:
                return dest
        raise KeyError(destination_id)


def _describe(error: ValidationError, data: Any) -> str:
    lines = []
    for err in error.errors():
        loc = list(err["loc"])
        where = "file"
        if len(loc) >= 2 and loc[0] == "destinations" and isinstance(loc[1], int):
            index = loc[1]
            try:
                name = repr(data["destinations"][index].get("id", f"#{index + 1}"))
            except (KeyError, IndexError, TypeError, AttributeError):
                name = f"#{index + 1}"
            rest = ".".join(str(p) for p in loc[2:])
            where = f"destination {name}" + (f", field {rest}" if rest else "")
        elif loc:
            where = "field " + ".".join(str(p) for p in loc)
        lines.append(f"{where}: {err['msg']}")
    return "; ".join(lines)


def parse_destinations(data: Any, source: str = "destinations file") -> DestinationsFile:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with a 'destinations' list")
    try:
        return DestinationsFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc, data)}") from None


def load_destinations(path: str | Path) -> DestinationsFile:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read destinations file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_destinations(data, str(path))


log = structlog.get_logger(__name__)

# How often a long-running process looks at the file's modification time.
_RELOAD_EVERY = 5.0


@dataclass
class DestinationsProvider:
    """The destinations file, re-read when it changes so operators can fix a token without a restart."""

    path: str
    _loaded: DestinationsFile = field(default_factory=DestinationsFile)
    _mtime: float = -1.0
    _checked: float = 0.0

    def current(self) -> DestinationsFile:
        now = time.monotonic()
        if now - self._checked >= _RELOAD_EVERY or self._mtime < 0:
            self._checked = now
            try:
                mtime = Path(self.path).stat().st_mtime
            except OSError:
                mtime = -2.0
            if mtime != self._mtime:
                self._mtime = mtime
                try:
                    self._loaded = load_destinations(self.path)
                except ConfigError as exc:
                    log.error("destinations_unreadable", error=str(exc))
        return self._loaded

    def get(self, destination_id: str) -> Destination | None:
        try:
            return self.current().get(destination_id)
        except KeyError:
            return None
