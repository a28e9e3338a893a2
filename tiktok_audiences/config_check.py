"""``tiktok-audiences config check``: validate a destinations file and print what the service understood.

Tokens are never printed: only where each comes from and whether it is there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson

from core.destinations import DEFAULT_INTEGRATION_NAME, ConfigError, Destination, load_destinations
from core.settings import get_settings
from producer.mappings import compile_destination
from tiktok_audiences.output import fail


def token_source(destination: Destination) -> str:
    parts = []
    if destination.access_token_env:
        state = "set" if os.environ.get(destination.access_token_env, "").strip() else "NOT SET"
        parts.append(f"environment variable {destination.access_token_env} ({state})")
    if destination.access_token_file:
        path = Path(destination.access_token_file).expanduser()
        state = "readable" if os.access(path, os.R_OK) else "NOT READABLE"
        parts.append(f"file {path} ({state})")
    return " or ".join(parts)


def config_check(path: str) -> int:
    try:
        config = load_destinations(path)
        compiled = {d.id: compile_destination(d, default_phone_country=get_settings().default_phone_country)
                    for d in config.destinations}
    except ConfigError as exc:
        return fail(f"{exc}", 1)
    out = sys.stdout
    out.write(f"{path}: {len(config.destinations)} destination(s)\n")
    for destination in config.destinations:
        out.write(f"\ndestination {destination.id}" + (f" ({destination.name})" if destination.name else "") + "\n")
        out.write(f"  token: {token_source(destination)}\n")
        out.write(f"  advertisers: {', '.join(destination.advertiser_ids)}\n")
        if destination.hashing == "segment":
            out.write("  hashing: segment (identifiers hashed exactly as Segment's destination hashes them)\n")
        if destination.integration_name != DEFAULT_INTEGRATION_NAME:
            out.write(f"  integrations name: {destination.integration_name!r}\n")
        if destination.native:
            out.write(f"  native: advertiser {destination.native_advertiser_id or '(from each event)'}, "
                      f"auto-create {'on' if destination.auto_create else 'off'}\n")
        out.write(f"  mappings ({len(compiled[destination.id])}):\n")
        for mapping, raw in zip(compiled[destination.id], destination.mappings, strict=True):
            state = "" if mapping.enabled else " [disabled]"
            out.write(f"    {mapping.label}{state}: when {mapping.trigger_text}\n")
            fields = raw.get("fields") or {}
            for name, value in fields.items():
                out.write(f"      {name}: {orjson.dumps(value).decode()}\n")
            for option in ("phone_normalization", "advertising_id_type"):
                if option in raw:
                    out.write(f"      {option}: {raw[option]}\n")
    out.write("\nOK\n")
    return 0
