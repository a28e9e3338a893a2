"""The identifiers one mapping reads from an event, normalised and hashed (:mod:`producer.identifiers`).

An unusable identifier (an unreadable phone, a non-string email) is dropped while the others carry the event,
and reported so the intake can count it; with none left the mapping refuses the event.
"""

from __future__ import annotations

from typing import Any

from producer.id_type import advertising_id_column, audience_id_type
from producer.identifiers import InvalidIdentifier, advertising_id_type
from producer.mappings import CompiledMapping
from producer.routing_result import Rejected
from worker.operations import IDFA_SHA256

NO_IDENTIFIER = "At least one enabled identifier (Email, Phone, or Advertising ID) must have a value."

# (email digest, phone digest, advertising id digest, advertising id type — "" where absent, and the reasons
# of the identifiers dropped as unusable, e.g. ("invalid_phone",): () in the usual case)
Identifiers = tuple[str, str, str, str, tuple[str, ...]]


def event_identifiers(m: CompiledMapping, event: dict[str, Any]) -> Identifiers:
    """``m``'s identifiers of ``event``; raises :class:`Rejected` when none is usable."""
    assert m.read_identifiers is not None and m.phone_hash is not None
    raw_email, raw_phone, raw_adid = m.read_identifiers(event)
    email = phone = adid = adid_type = ""
    unusable: list[InvalidIdentifier] = []
    if raw_email is not None:
        try:
            email = m.email_hash(raw_email) or ""
        except InvalidIdentifier as exc:
            unusable.append(exc)
    if raw_phone is not None:
        try:
            phone = m.phone_hash(raw_phone) or ""
        except InvalidIdentifier as exc:
            unusable.append(exc)
    if raw_adid is not None:
        try:
            adid = m.advertising_id_hash(raw_adid) or ""
        except InvalidIdentifier as exc:
            unusable.append(exc)
        if adid:
            try:
                adid_type = _advertising_id_column(m, event)
            except InvalidIdentifier as exc:
                unusable.append(exc)
                adid = ""
    if unusable:
        if not (email or phone or adid):
            details = "; ".join(str(problem) for problem in unusable)
            raise Rejected("invalid_identifier", f"{NO_IDENTIFIER} ({details})")
        return email, phone, adid, adid_type, tuple(f"invalid_{problem.kind}" for problem in unusable)
    if not (email or phone or adid):
        raise Rejected("no_identifier", NO_IDENTIFIER)
    return email, phone, adid, adid_type, ()


def _advertising_id_column(m: CompiledMapping, event: dict[str, Any]) -> str:
    """IDFA_SHA256 or AAID_SHA256: the ID Type's choice, else the mapping's advertising_id_type option."""
    if m.hashing != "segment" and (m.id_type is not None or m.reads_audience_id_type):
        column = advertising_id_column(audience_id_type(event) if m.reads_audience_id_type else None, m.id_type)
        if column is not None:
            return column
    if m.advertising_id_type == "auto":
        return advertising_id_type("auto", _device_type(event))
    return IDFA_SHA256


def _device_type(event: dict[str, Any]) -> Any:
    context = event.get("context")
    device = context.get("device") if isinstance(context, dict) else None
    return device.get("type") if isinstance(device, dict) else None
