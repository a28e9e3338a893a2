"""``config check|import-segment``: validate a destinations file and print what the service understood, and
write one from a Segment TikTok Audiences destination and its subscriptions.

Tokens are never printed: only where each comes from and whether it is there.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from core.destinations import DEFAULT_INTEGRATION_NAME, ConfigError, Destination, load_destinations
from core.settings import Settings, get_settings
from tiktok_audiences.commands.output import fail

if TYPE_CHECKING:
    from tiktok_audiences.commands.handler import Subparsers


def register(sub: Subparsers) -> None:
    """``config check`` and ``config import-segment``."""
    cfg = sub.add_parser("config", help="the destinations file").add_subparsers(dest="verb", required=True)
    p = cfg.add_parser("check")
    p.add_argument("file", nargs="?")
    p.set_defaults(handler=check_command)
    p = cfg.add_parser(
        "import-segment",
        help="a destinations file from a Segment TikTok Audiences destination and its subscriptions",
        description="Reads what Segment's Public API answers for GET /destinations/{id} and "
        "GET /destinations/{id}/subscriptions (one file or several; '-' is stdin), writes a destinations file "
        "and lists what could not be carried over.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-o", "--output", help="write the destinations file here (default: standard output)")
    p.add_argument("--id", help="the destination's id (default: from its Segment name)")
    p.set_defaults(handler=import_segment_command)


def check_command(args: argparse.Namespace, settings: Settings) -> int:
    return config_check(args.file or settings.config_path)


def import_segment_command(args: argparse.Namespace, settings: Settings) -> int:
    return import_segment(args.files, args.output, args.id)


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
    from producer.mappings import compile_destination

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


def import_segment(paths: list[str], output: str | None, dest_id: str | None) -> int:
    from tiktok_audiences.segment_import import SegmentImportError, convert, read_documents

    try:
        destination, subscriptions = read_documents(paths)
        result = convert(destination, subscriptions, dest_id)
    except (SegmentImportError, ConfigError, ValueError) as exc:
        return fail(str(exc), 1)
    if output and output != "-":
        target = Path(output)
        if target.exists():
            return fail(f"{output} exists; choose another --output (nothing was written)", 1)
        target.write_text(result.text)
        where = output
    else:
        sys.stdout.write(result.text)
        where = "standard output"
    err = sys.stderr
    err.write(
        f"imported {result.mappings} mapping(s) and {result.disabled} disabled subscription(s) "
        f"(as comments) to {where}\n"
    )
    if result.not_carried:
        err.write("not carried over:\n")
        for line in result.not_carried:
            err.write(f"  - {line}\n")
    return 0
