"""A destinations file from a Segment TikTok Audiences destination, as Segment's Public API describes it (the
conversion behind ``tiktok-audiences config import-segment FILE...``).

The input is what ``GET /destinations/{id}`` and ``GET /destinations/{id}/subscriptions`` answer (their
``data`` envelopes, or the inner ``destination`` / ``subscriptions`` objects), in one file or several, JSON or
YAML. Each subscription (action slug, name, trigger, mapping, enabled) becomes a mapping; every mapping is
compiled exactly as ``serve`` will compile it, so what is written loads. Disabled subscriptions are kept as
comments. Whatever cannot be carried over (an action this service does not have, a field an action does not
take, a trigger or directive that does not compile, the OAuth token Segment keeps to itself) is listed, and a
subscription that cannot load is kept as a comment with the reason.

The destination gets ``hashing: segment``: identifiers are hashed exactly as Segment's destination hashes
them, so removes reach the users Segment added.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.destinations import ConfigError, Destination
from producer.mappings import ACTIONS, compile_mapping

SEGMENT_SLUG = "actions-tiktok-audiences"
TOKEN_ENV = "TIKTOK_ACCESS_TOKEN"
_ADVERTISER = re.compile(r"^[0-9]{1,32}$")
# Subscription keys Segment's Public API returns that describe the subscription, not what it does.
_BOOKKEEPING = frozenset({"id", "actionId", "destinationId", "modelId", "createdAt", "updatedAt", "reverseETLSchedule"})


@dataclass
class Imported:
    """The result of an import: the destinations file's text and what did not carry over."""

    text: str
    mappings: int = 0
    disabled: int = 0
    not_carried: list[str] = field(default_factory=list)


class SegmentImportError(ValueError):
    """An input that is not a Segment destination or its subscriptions."""


# ------------------------------------------------------------------------------------------------ input


def read_documents(paths: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The destination object and the subscriptions found in ``paths`` (``-`` reads stdin)."""
    destination: dict[str, Any] = {}
    subscriptions: list[dict[str, Any]] = []
    for path in paths:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text()
        except OSError as exc:
            raise SegmentImportError(f"cannot read {path}: {exc.strerror}") from None
        try:
            document = yaml.safe_load(text)  # JSON is YAML
        except yaml.YAMLError as exc:
            raise SegmentImportError(f"{path}: neither JSON nor YAML: {exc}") from None
        found_destination, found_subscriptions = _unwrap(document)
        if found_destination is None and found_subscriptions is None:
            raise SegmentImportError(
                f"{path}: no 'destination' or 'subscriptions' (expected what Segment's Public API answers for "
                "GET /destinations/{id} or GET /destinations/{id}/subscriptions)"
            )
        destination.update(found_destination or {})
        subscriptions.extend(found_subscriptions or [])
    return destination, subscriptions


def _unwrap(document: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    if isinstance(document, list):
        destination: dict[str, Any] | None = None
        subscriptions: list[dict[str, Any]] | None = None
        for item in document:
            d, s = _unwrap(item)
            destination = d if d is not None else destination
            subscriptions = (subscriptions or []) + s if s is not None else subscriptions
        return destination, subscriptions
    if not isinstance(document, dict):
        return None, None
    if isinstance(document.get("data"), dict):
        return _unwrap(document["data"])
    destination = document.get("destination")
    subscriptions = document.get("subscriptions")
    if destination is None and "actionSlug" in document:
        subscriptions = [document]  # one subscription (GET /destinations/{id}/subscriptions/{id})
    elif destination is None and "subscription" in document:
        subscriptions = [document["subscription"]]
    elif destination is None and "settings" in document and "metadata" in document:
        destination = document
    if destination is not None and not isinstance(destination, dict):
        raise SegmentImportError("'destination' must be an object")
    if subscriptions is not None and not (
        isinstance(subscriptions, list) and all(isinstance(s, dict) for s in subscriptions)
    ):
        raise SegmentImportError("'subscriptions' must be a list of objects")
    if destination is not None and subscriptions is None and isinstance(destination.get("subscriptions"), list):
        subscriptions = destination["subscriptions"]
    return destination, subscriptions


# ------------------------------------------------------------------------------------------- conversion


def destination_id(destination: dict[str, Any], given: str | None) -> str:
    if given:
        return given
    name = str(destination.get("name") or "tiktok-audiences")
    slug = re.sub(r"[^A-Za-z0-9_.\-]+", "-", name).strip("-").lower()
    return slug or "tiktok-audiences"


def convert(destination: dict[str, Any], subscriptions: list[dict[str, Any]], dest_id: str | None = None) -> Imported:
    """Build the destinations file. Every kept mapping compiles; the rest are comments with their reason."""
    not_carried: list[str] = []
    raw_settings = destination.get("settings")
    settings: dict[str, Any] = raw_settings if isinstance(raw_settings, dict) else {}
    slug = (destination.get("metadata") or {}).get("slug") if isinstance(destination.get("metadata"), dict) else None
    if slug and slug != SEGMENT_SLUG:
        not_carried.append(f"destination: its slug is {slug!r}, not {SEGMENT_SLUG!r}; mappings were still tried")
    advertisers = _advertisers(settings, subscriptions, not_carried)
    for key in sorted(settings):
        if key != "advertiser_ids":
            not_carried.append(f"destination setting {key!r}: this service has no such setting")
    if destination.get("enabled") is False:
        not_carried.append("destination: disabled in Segment (its mappings are imported as they are)")
    not_carried.append(
        f"access token: Segment keeps its OAuth token; authorise TikTok with `tiktok-audiences auth exchange` "
        f"and set {TOKEN_ENV} (or access_token_file)"
    )
    base = {
        "id": destination_id(destination, dest_id),
        "name": str(destination.get("name") or ""),
        "access_token_env": TOKEN_ENV,
        "advertiser_ids": advertisers or ["0"],
        "hashing": "segment",
    }
    check = Destination.model_validate(base)
    entries: list[tuple[dict[str, Any], str | None]] = []  # in Segment's order; a reason makes it a comment
    for number, subscription in enumerate(subscriptions, start=1):
        mapping, problems = _mapping(subscription)
        label = f"subscription {number} {subscription.get('name')!r}" if subscription.get("name") else (
            f"subscription {number}"
        )
        not_carried.extend(f"{label}: {problem}" for problem in problems)
        if mapping is None:
            continue
        try:
            compile_mapping(check, len(entries) + 1, mapping)
        except ConfigError as exc:
            reason = str(exc).split(": ", 1)[-1]
            not_carried.append(f"{label}: kept as a comment, it does not load: {reason}")
            entries.append((mapping, f"does not load: {reason}"))
            continue
        entries.append((mapping, "disabled in Segment" if subscription.get("enabled") is False else None))
    if not advertisers:
        not_carried.append(
            "advertiser_ids: none in the destination's settings or the mappings; replace the placeholder \"0\" "
            "with your TikTok advertiser ids (then `tiktok-audiences config check`)"
        )
    text = _render(base, entries, destination)
    kept = sum(1 for _, why in entries if why is None)
    disabled = sum(1 for _, why in entries if why == "disabled in Segment")
    return Imported(text, kept, disabled, not_carried)


def _advertisers(settings: dict[str, Any], subscriptions: list[dict[str, Any]], notes: list[str]) -> list[str]:
    found: list[str] = []
    given = settings.get("advertiser_ids") or []
    for value in given if isinstance(given, list) else [given]:
        text = str(value).strip()
        if _ADVERTISER.match(text):
            found.append(text)
        else:
            notes.append(f"advertiser id {text[:40]!r}: not a TikTok advertiser id (digits)")
    for subscription in subscriptions:
        value = _mapping_of(subscription).get("selected_advertiser_id")
        if isinstance(value, str | int) and not isinstance(value, bool) and _ADVERTISER.match(str(value)):
            found.append(str(value))
    return list(dict.fromkeys(found))


def _mapping_of(subscription: dict[str, Any]) -> dict[str, Any]:
    fields = subscription.get("settings", subscription.get("mapping"))
    return fields if isinstance(fields, dict) else {}


def _mapping(subscription: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """One subscription as a mapping entry, and what of it did not carry over."""
    problems: list[str] = []
    slug = subscription.get("actionSlug")
    if slug not in ACTIONS:
        return None, [f"action {slug!r} is not one this service has ({', '.join(ACTIONS)}); not imported"]
    spec = ACTIONS[slug]
    mapping: dict[str, Any] = {"action": slug}
    if subscription.get("name"):
        mapping["name"] = str(subscription["name"])
    trigger = subscription.get("trigger")
    if isinstance(trigger, str) and trigger.strip() and trigger.strip() != spec.default_trigger:
        mapping["subscribe"] = trigger.strip()
    fields: dict[str, Any] = {}
    for key, value in _mapping_of(subscription).items():
        if key in spec.fields:
            fields[key] = value
        elif not key.startswith("__segment"):
            problems.append(f"field {key!r}: {slug} has no such field; dropped")
    if fields:
        mapping["fields"] = fields
    for key in sorted(set(subscription) - _BOOKKEEPING - {"actionSlug", "name", "trigger", "settings", "mapping",
                                                          "enabled"}):
        problems.append(f"{key!r}: not part of a mapping here; dropped")
    if subscription.get("modelId"):
        problems.append("a Reverse ETL model feeds it in Segment; send those rows as events instead")
    return mapping, problems


# ------------------------------------------------------------------------------------------------ output


def _render(base: dict[str, Any], entries: list[tuple[dict[str, Any], str | None]], destination: dict[str, Any]) -> str:
    source = f" {destination.get('id')}" if destination.get("id") else ""
    lines = [
        f"# Imported from Segment destination{source} by `tiktok-audiences config import-segment`.",
        "# hashing: segment hashes identifiers exactly as Segment's destination did, so removes reach the users",
        "# Segment added. Check it with `tiktok-audiences config check`.",
        "destinations:",
    ]
    head = yaml.safe_dump([base], sort_keys=False, allow_unicode=True, width=120).rstrip("\n").splitlines()
    lines.extend("  " + line for line in head)
    lines.append("    mappings:" + ("" if any(why is None for _, why in entries) else " []"))
    for mapping, why in entries:
        if why is None:
            lines.extend(_indented(mapping, "      "))
        else:
            lines.append(f"      # {why}:")
            lines.extend("      # " + line[6:] for line in _indented(mapping, "      "))
    return "\n".join(lines) + "\n"


def _indented(mapping: dict[str, Any], indent: str) -> list[str]:
    text = yaml.safe_dump([mapping], sort_keys=False, allow_unicode=True, width=120)
    return [indent + line for line in text.rstrip("\n").splitlines()]


# ----------------------------------------------------------------------------------------------- command
