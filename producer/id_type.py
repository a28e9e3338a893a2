"""The "ID Type" audience setting: which identifier type an audience is populated with.

Segment's TikTok Audiences destination offered it as an audience setting (``idType``, arriving in events as
``context.personas.audience_settings.idType``) and as the ``id_type`` field of its mappings, with the choices
EMAIL_SHA256, GAID_SHA256, AAID_SHA256 and IDFA_SHA256, and sent it to TikTok when it created the audience.
Here it also decides the column advertising ids are sent in: an audience of Android ids (GAID or AAID) gets
them as ``AAID_SHA256``, one of iOS ids as ``IDFA_SHA256``; an email audience leaves the mapping's
``advertising_id_type`` option (``idfa`` or ``auto``) in charge. Emails and phones are sent as always.

Under ``hashing: segment`` the setting does not move advertising ids out of ``IDFA_SHA256``: Segment always
sent them there, and a remove must land where Segment's add did.
"""

from __future__ import annotations

from typing import Any

from producer.identifiers import InvalidIdentifier
from worker.operations import AAID_SHA256, IDFA_SHA256

ID_TYPES = ("EMAIL_SHA256", "GAID_SHA256", "AAID_SHA256", "IDFA_SHA256")
_ADVERTISING_ID_COLUMN = {"GAID_SHA256": AAID_SHA256, "AAID_SHA256": AAID_SHA256, "IDFA_SHA256": IDFA_SHA256}


def audience_id_type(event: dict[str, Any]) -> Any:
    """The raw ``context.personas.audience_settings.idType`` of an event, or ``None``."""
    context = event.get("context")
    personas = context.get("personas") if context.__class__ is dict else None
    settings = personas.get("audience_settings") if personas.__class__ is dict else None
    return settings.get("idType") if settings.__class__ is dict else None


def advertising_id_column(event_id_type: Any, mapping_id_type: str | None) -> str | None:
    """The column an ID Type puts advertising ids in: the event's audience setting first, then the mapping's
    ``id_type``; ``None`` when neither names an advertising id type. Raises :class:`InvalidIdentifier` for an
    event setting that is not one of :data:`ID_TYPES` (the advertising id cannot be typed)."""
    if event_id_type is not None and event_id_type != "":
        column = _ADVERTISING_ID_COLUMN.get(event_id_type) if event_id_type.__class__ is str else None
        if column is None and event_id_type != "EMAIL_SHA256":
            shown = repr(event_id_type)[:40]
            raise InvalidIdentifier(
                "advertising_id",
                f"cannot be typed: context.personas.audience_settings.idType {shown} is not one of "
                + ", ".join(ID_TYPES),
            )
        if column is not None:
            return column
    if mapping_id_type is not None:
        return _ADVERTISING_ID_COLUMN.get(mapping_id_type)
    return None
