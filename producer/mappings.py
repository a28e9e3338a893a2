"""Compile a destination's ``mappings`` entries once, at load time, into what routing runs per event.

A mapping entry in the destinations file::

    - action: addUser                    # one of producer.mapping_actions.ACTIONS
      name: VIP adds                     # optional, for people
      enabled: true                      # optional; a disabled mapping is still checked but never runs
      subscribe: 'event = "Audience Entered"'   # optional FQL trigger; default per action
      phone_normalization: e164          # or as_is (may also sit inside fields, as Segment users paste it)
      advertising_id_type: idfa          # or auto (android -> AAID_SHA256 from context.device.type)
      fields:                            # Segment's field names; literal or directive values
        selected_advertiser_id: "7000000000000000001"
        audience_id: "1234345"
        email: {"@path": "$.properties.contact_email"}

Everything that can be checked without an event is checked here and reported as a
:class:`core.destinations.ConfigError` whose message names the destination, the mapping (1-based index and
action) and the problem. ``event_name``, ``enable_batching`` and ``batch_keys`` are accepted so a Segment
mapping can be pasted unchanged, but do not change what this service does (it always batches). ``id_type``
chooses the advertising id column (:mod:`producer.id_type`). The destination's ``hashing`` decides how
identifiers are hashed (:mod:`producer.identifiers`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson

from core.destinations import ConfigError, Destination
from producer.directives import DirectiveError, Resolver, compile_value, is_directive
from producer.fql import Predicate, TriggerError, compile_trigger
from producer.id_type import ID_TYPES
from producer.identifiers import (
    AdvertisingIdMode,
    Hashing,
    PhoneNormalization,
    advertising_id_hasher,
    email_hasher,
    hash_advertising_id,
    hash_email,
    phone_hasher,
)
from producer.mapping_actions import (
    ACTIONS,
    DEFAULT_FIELDS,
    OPTIONS,
    IdentifierReader,
    Kind,
    read_default_identifiers,
)
from worker.keys import Target

_OPTION_VALUES: dict[str, tuple[str, ...]] = {
    "phone_normalization": ("e164", "as_is"),
    "advertising_id_type": ("idfa", "auto"),
}
_MAPPING_KEYS = frozenset({"action", "name", "enabled", "subscribe", "fields", *OPTIONS})

IdentifierHasher = Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class CompiledMapping:
    destination: str
    index: int  # 1-based position in the destination's mappings
    action: str
    kind: Kind
    operation: Literal["add", "delete"] | None
    label: str  # "mapping 2 (removeFromAudience)": how rejections and errors name it
    name: str | None
    enabled: bool
    trigger_text: str
    trigger: Predicate
    # Identifier resolvers; None when the identifier is not sent (send_* false) or the action has none.
    email: Resolver | None = None
    phone: Resolver | None = None
    advertising_id: Resolver | None = None
    # All three at once (read_default_identifiers when the mapping keeps the defaults); None-s where not sent.
    read_identifiers: IdentifierReader | None = None
    phone_hash: IdentifierHasher | None = None
    email_hash: IdentifierHasher = hash_email
    advertising_id_hash: IdentifierHasher = hash_advertising_id
    hashing: Hashing = "normalized"
    # The ID Type (producer.id_type): the mapping's id_type field, and whether the event's audience setting
    # counts (native actions: audience settings belong to Engage audiences).
    id_type: str | None = None
    reads_audience_id_type: bool = False
    phone_normalization: PhoneNormalization = "e164"
    advertising_id_type: AdvertisingIdMode = "idfa"
    # Mappings with equal keys read and hash identifiers identically, so one event hashes them once.
    identity_key: tuple[Any, ...] = ()
    external_audience_id: Resolver | None = None  # native and sync
    # Canonical form of the external_audience_id field: equal keys in one destination resolve equal targets.
    audience_key: bytes = b""
    external_audience_id_is_default: bool = (
        False  # lets routing read it from the personas dict it already has
    )
    selected_advertiser_id: Resolver | None = None  # legacy and create
    audience_id: Resolver | None = None  # legacy
    custom_audience_name: Resolver | None = None  # create


class _Where:
    """Formats config errors for one mapping."""

    def __init__(self, destination: str, index: int, action: str | None, name: str | None) -> None:
        head = f"destination {destination!r}, mapping {index}"
        if name:
            head += f" {name!r}"
        self.prefix = f"{head} ({action})" if action else head

    def error(self, problem: str) -> ConfigError:
        return ConfigError(f"{self.prefix}: {problem}")


def compile_destination(dest: Destination, *, default_phone_country: str = "US") -> list[CompiledMapping]:
    return [
        compile_mapping(dest, i, raw, default_phone_country=default_phone_country)
        for i, raw in enumerate(dest.mappings, start=1)
    ]


def compile_mapping(
    dest: Destination, index: int, raw: Any, *, default_phone_country: str = "US"
) -> CompiledMapping:
    if not isinstance(raw, dict):
        raise _Where(dest.id, index, None, None).error("must be an object with an 'action'")
    action = raw.get("action")
    name = raw.get("name")
    known = (
        action if isinstance(action, str) and action in ACTIONS else None
    )  # never echo an unknown one twice
    where = _Where(dest.id, index, known, name if isinstance(name, str) else None)
    if action is None:
        raise where.error(f"needs 'action' (one of {', '.join(ACTIONS)})")
    if action not in ACTIONS:
        raise where.error(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    spec = ACTIONS[action]

    unknown = sorted(str(k) for k in raw if k not in _MAPPING_KEYS)
    if unknown:
        raise where.error(f"unknown key {unknown[0]!r} (a mapping takes {', '.join(sorted(_MAPPING_KEYS))})")
    if name is not None and not isinstance(name, str):
        raise where.error("'name' must be a string")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise where.error("'enabled' must be true or false")

    trigger_text = raw.get("subscribe", spec.default_trigger)
    if not isinstance(trigger_text, str):
        raise where.error("'subscribe' must be an FQL string such as 'event = \"Audience Entered\"'")
    try:
        trigger = compile_trigger(trigger_text)
    except TriggerError as exc:
        raise where.error(f"subscribe {trigger_text!r} does not parse {exc}") from None

    fields = raw.get("fields") or {}
    if not isinstance(fields, dict):
        raise where.error("'fields' must be an object of field name -> value")
    for key in fields:
        if key not in spec.fields:
            known = ", ".join(sorted(spec.fields))
            raise where.error(f"unknown field {key!r} for {action} (its fields: {known})")

    options = _options(raw, fields, where)
    compiled: dict[str, Any] = {
        "destination": dest.id,
        "index": index,
        "action": action,
        "kind": spec.kind,
        "operation": spec.operation,
        "label": f"mapping {index} ({action})",
        "name": name,
        "enabled": enabled,
        "trigger_text": trigger_text,
        "trigger": trigger,
    }

    def value(field: str, *, required: bool = False) -> Resolver | None:
        spec_value = fields.get(field, DEFAULT_FIELDS.get(field))
        if spec_value is None or spec_value == "":
            if required:
                raise where.error(f"needs field {field!r}")
            return None
        try:
            return compile_value(_ids_as_text(field, spec_value))
        except DirectiveError as exc:
            raise where.error(f"field {field!r}: {exc}") from None

    if spec.kind in ("native", "sync", "legacy"):
        compiled.update(
            _identifier_fields(fields, options, value, where, default_phone_country, dest.hashing)
        )
        compiled["id_type"] = _id_type(fields, where)
        compiled["reads_audience_id_type"] = spec.kind in ("native", "sync")
        compiled["identity_key"] += (compiled["id_type"], compiled["reads_audience_id_type"])
    if spec.kind in ("native", "sync"):
        compiled["external_audience_id"] = value("external_audience_id")
        compiled["audience_key"] = _canonical(
            fields.get("external_audience_id", DEFAULT_FIELDS["external_audience_id"])
        )
        compiled["external_audience_id_is_default"] = "external_audience_id" not in fields
    if spec.kind in ("legacy", "create"):
        compiled["selected_advertiser_id"] = value("selected_advertiser_id", required=True)
        _check_literal_advertiser(dest, fields["selected_advertiser_id"], where)
    if spec.kind == "legacy":
        compiled["audience_id"] = value("audience_id", required=True)
        _check_literal_audience(fields["audience_id"], where)
    if spec.kind == "create":
        compiled["custom_audience_name"] = value("custom_audience_name", required=True)
        _id_type(fields, where)  # checked like the other actions' (TikTok's create call does not carry it here)
    return CompiledMapping(**compiled)


def _options(raw: dict[str, Any], fields: dict[str, Any], where: _Where) -> dict[str, str]:
    out: dict[str, str] = {}
    for option in OPTIONS:
        given = [v for v in (raw.get(option), fields.get(option)) if v is not None]
        if len(given) == 2 and given[0] != given[1]:
            raise where.error(f"{option} is set twice, to {given[0]!r} and {given[1]!r}")
        if given:
            allowed = _OPTION_VALUES[option]
            if given[0] not in allowed:
                raise where.error(f"{option} must be {' or '.join(allowed)}, not {given[0]!r}")
            out[option] = given[0]
    return out


def _identifier_fields(
    fields: dict[str, Any],
    options: dict[str, str],
    value: Callable[[str], Resolver | None],
    where: _Where,
    default_phone_country: str,
    hashing: Hashing,
) -> dict[str, Any]:
    sends = {}
    for flag in ("send_email", "send_phone", "send_advertising_id"):
        sends[flag] = fields.get(flag, True)
        if not isinstance(sends[flag], bool):
            raise where.error(f"{flag} must be true or false")
    if not any(sends.values()):
        raise where.error(
            "send_email, send_phone and send_advertising_id are all false: "
            "at least one identifier must be sent"
        )
    # Segment hashes phones exactly as given; a mapping's own phone_normalization still wins.
    default_normalization = "as_is" if hashing == "segment" else "e164"
    phone_normalization = cast(PhoneNormalization, options.get("phone_normalization", default_normalization))
    adid_mode = cast(AdvertisingIdMode, options.get("advertising_id_type", "idfa"))
    try:
        phone_hash = phone_hasher(phone_normalization, default_phone_country)
    except ValueError as exc:
        raise where.error(str(exc)) from None

    def canonical(field: str, flag: str) -> bytes | None:
        return _canonical(fields.get(field, DEFAULT_FIELDS[field])) if sends[flag] else None

    email = value("email") if sends["send_email"] else None
    phone = value("phone") if sends["send_phone"] else None
    adid = value("advertising_id") if sends["send_advertising_id"] else None
    reader: IdentifierReader
    if not any(f in fields for f in ("email", "phone", "advertising_id")) and all(sends.values()):
        reader = read_default_identifiers
    else:

        def reader(e: dict[str, Any]) -> tuple[Any, Any, Any]:
            return (
                email(e) if email is not None else None,
                phone(e) if phone is not None else None,
                adid(e) if adid is not None else None,
            )

    return {
        "email": email,
        "phone": phone,
        "advertising_id": adid,
        "read_identifiers": reader,
        "phone_hash": phone_hash,
        "email_hash": email_hasher(hashing),
        "advertising_id_hash": advertising_id_hasher(hashing),
        "hashing": hashing,
        "phone_normalization": phone_normalization,
        "advertising_id_type": adid_mode,
        "identity_key": (
            canonical("email", "send_email"),
            canonical("phone", "send_phone"),
            canonical("advertising_id", "send_advertising_id"),
            phone_normalization,
            adid_mode,
            hashing,
        ),
    }


def _id_type(fields: dict[str, Any], where: _Where) -> str | None:
    given = fields.get("id_type")
    if given is None or given == "":
        return None
    if given not in ID_TYPES:
        raise where.error(f"id_type must be one of {', '.join(ID_TYPES)}, not {given!r}")
    return str(given)


def _canonical(spec_value: Any) -> bytes:
    return orjson.dumps(spec_value, option=orjson.OPT_SORT_KEYS, default=str)


def _ids_as_text(field: str, spec_value: Any) -> Any:
    # YAML reads unquoted ids (audience_id: 1234345) as numbers; TikTok ids are strings.
    if (
        field in ("selected_advertiser_id", "audience_id")
        and isinstance(spec_value, int)
        and not isinstance(spec_value, bool)
    ):
        return str(spec_value)
    return spec_value


def _check_literal_advertiser(dest: Destination, spec_value: Any, where: _Where) -> None:
    if is_directive(spec_value):
        return  # checked per event
    advertiser = _ids_as_text("selected_advertiser_id", spec_value)
    if not isinstance(advertiser, str):
        raise where.error("selected_advertiser_id must be a string or a directive")
    if advertiser not in dest.advertiser_ids:
        raise where.error(
            f"selected_advertiser_id {advertiser} is not one of the destination's advertiser_ids "
            f"({', '.join(dest.advertiser_ids)})"
        )


def _check_literal_audience(spec_value: Any, where: _Where) -> None:
    if is_directive(spec_value):
        return
    audience = _ids_as_text("audience_id", spec_value)
    if not isinstance(audience, str):
        raise where.error("audience_id must be a string or a directive")
    try:
        Target("check", "0", audience)
    except ValueError:
        raise where.error(f"audience_id {audience!r} is not a TikTok audience id") from None
