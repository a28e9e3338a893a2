"""``audiences list|create|resync``: the TikTok audiences the service knows, making one, and re-sending an
audience's recorded membership through the normal delivery path (with progress on stderr and a summary)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import redis

from core.destinations import ConfigError, Destination, load_destinations
from core.settings import Settings
from tiktok_audiences.commands.handler import WithRedis
from tiktok_audiences.commands.output import fail, print_json, print_table

if TYPE_CHECKING:
    from tiktok_audiences.commands.handler import Subparsers

# How long a resync waits for room when the backlog is at TTA_BACKLOG_LIMIT before it looks again.
CEILING_RECHECK = 1.0
SAMPLE_ROWS = 3  # rows resync --dry-run shows per target (digests, shortened)


def register(sub: Subparsers) -> None:
    """``audiences list``, ``audiences create`` and ``audiences resync``."""
    aud = sub.add_parser("audiences", help="TikTok audiences").add_subparsers(dest="verb", required=True)
    p = aud.add_parser("list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=WithRedis(audiences_list))
    p = aud.add_parser("create")
    p.add_argument("--destination", help="destination id (default: the only one)")
    p.add_argument("--advertiser-id", help="default: the destination's first advertiser")
    p.add_argument("name")
    p.set_defaults(handler=WithRedis(audiences_create))
    p = aud.add_parser("resync", help="re-send an audience's recorded members through the normal delivery path")
    p.add_argument("audience", help="TikTok audience id, Engage audience key (@key) or target name")
    p.add_argument("--dry-run", action="store_true", help="count and show what would be sent; send nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=WithRedis(audiences_resync))


def audiences_list(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    from worker.operator.audience_report import known_audiences
    from worker.operator.stats import TIKTOK_MINIMUM_AUDIENCE

    rows = known_audiences(client)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        sys.stdout.write("no audiences yet: none created, checked or sent to by this service\n")
        return 0
    print_table(
        ["destination", "advertiser", "audience id", "name", "origin", "delivered members", "targetable",
         "status"],
        [[r["destination"], r["advertiser_id"], r["audience_id"] or "-", r["name"] or "-", r["origin"],
          r["delivered_members"],
          "yes" if r["targetable"] else f"no (<{TIKTOK_MINIMUM_AUDIENCE})",
          r["status"] + (f": {r['message']}" if r["message"] else "")] for r in rows],
    )
    return 0


def _pick_destination(args: argparse.Namespace, settings: Settings) -> Destination | str:
    """The destination to create in, or an error message."""
    try:
        config = load_destinations(settings.config_path)
    except ConfigError as exc:
        return str(exc)
    if args.destination:
        try:
            return config.get(args.destination)
        except KeyError:
            known = ", ".join(d.id for d in config.destinations) or "none"
            return f"no destination {args.destination!r} in {settings.config_path} (known: {known})"
    if len(config.destinations) != 1:
        known = ", ".join(d.id for d in config.destinations) or "none"
        return f"{settings.config_path} has {len(config.destinations)} destinations; pick one with " \
               f"--destination (known: {known})"
    return config.destinations[0]


async def _create(settings: Settings, token: str, advertiser_id: str, name: str) -> str:
    from worker.tiktok.client import TikTokClient

    async with TikTokClient(settings.tiktok_api_base_url, timeout=settings.http_timeout) as client:
        return await client.create_audience(token, advertiser_id, name)


def audiences_create(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    from worker import keys
    from worker.audiences import remember_audience
    from worker.tiktok.errors import TikTokError
    from worker.tiktok.wire import MAX_AUDIENCE_NAME, truncate_audience_name

    destination = _pick_destination(args, settings)
    if isinstance(destination, str):
        return fail(destination)
    advertiser_id = args.advertiser_id or destination.advertiser_ids[0]
    if advertiser_id not in destination.advertiser_ids:
        return fail(f"advertiser {advertiser_id} is not one of destination {destination.id!r}'s "
                    f"advertiser_ids ({', '.join(destination.advertiser_ids)})")
    name = args.name.strip()
    if not name:
        return fail("the audience name is empty")
    tiktok_name = truncate_audience_name(name)
    try:
        token = destination.access_token()
    except ConfigError as exc:
        return fail(str(exc))
    try:
        audience_id = asyncio.run(_create(settings, token, advertiser_id, tiktok_name))
    except TikTokError as exc:
        return fail(f"TikTok did not create the audience: {exc}", 1)
    except aiohttp.InvalidURL:
        return fail(f"TIKTOK_API_BASE_URL is not a valid URL: {settings.tiktok_api_base_url!r}")
    # Recorded like the service's own creates, so `audiences list` shows it and events may name it unchecked.
    remember_audience(client, destination.id, advertiser_id, audience_id, name=tiktok_name, origin="cli")
    client.set(keys.ownership(destination.id, advertiser_id, audience_id), 1)
    if tiktok_name != name:
        sys.stdout.write(f"note: the name has {len(name)} characters and TikTok takes {MAX_AUDIENCE_NAME}; "
                         f"it was cut to {tiktok_name!r}\n")
    sys.stdout.write(f"created audience {audience_id} {tiktok_name!r} under advertiser {advertiser_id} "
                     f"(destination {destination.id})\n")
    return 0


def audiences_resync(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    from worker.operator.resync import targets_of

    targets = targets_of(client, args.audience)
    if not targets:
        return fail(f"no audience {args.audience!r} has recorded deliveries: give a TikTok audience id, an Engage "
                    "audience key (@key) or a target name (destination|advertiser|audience) as `stats` shows them")
    summary: list[dict[str, Any]] = []
    for target in targets:
        summary.append(_resync_target(client, settings, target, dry_run=args.dry_run, quiet=args.json))
    if args.json:
        print_json({"dry_run": args.dry_run, "targets": summary})
        return 0
    verb = "would enqueue" if args.dry_run else "enqueued"
    for entry in summary:
        sys.stdout.write(f"{entry['target']}: {entry['members']} current members recorded, {verb} "
                         f"{entry['adds']} adds\n")
        if entry["without_identifiers"]:
            sys.stdout.write(f"  {entry['without_identifiers']} members were recorded before this service kept "
                             "members' hashed identifiers and cannot be re-sent: send their events again\n")
        for row in entry.get("sample", []):
            sys.stdout.write(f"  add {row}\n")
    if not args.dry_run:
        sys.stdout.write("lanes deliver them like any operation: follow with `tiktok-audiences stats` and "
                         "`tiktok-audiences batches list --audience ID`\n")
    return 0


def _resync_target(client: redis.Redis, settings: Settings, target: str, *, dry_run: bool,
                   quiet: bool) -> dict[str, Any]:
    from worker.operator.resync import member_chunks

    adds = missing = 0
    sample: list[str] = []
    for chunk in member_chunks(client, target):
        missing += chunk.without_identifiers
        if dry_run:
            sample += [_describe(row) for row in chunk.adds[: SAMPLE_ROWS - len(sample)]]
        elif chunk.adds:
            _enqueue_with_room(client, settings, target, chunk.adds)
        adds += len(chunk.adds)
        if not quiet:
            sys.stderr.write(f"\r{target}: {adds} adds {'found' if dry_run else 'enqueued'}")
            sys.stderr.flush()
    if not quiet and (adds or missing):
        sys.stderr.write("\n")
    entry: dict[str, Any] = {"target": target, "members": adds + missing, "adds": adds,
                             "without_identifiers": missing}
    if dry_run:
        entry["sample"] = sample
    return entry


def _enqueue_with_room(client: redis.Redis, settings: Settings, target: str, adds: list[list[Any]]) -> None:
    """Enqueue, waiting while the backlog has no room (a resync never takes it past TTA_BACKLOG_LIMIT)."""
    from worker.operator.resync import enqueue_adds
    from worker.queue import BacklogCeiling

    while True:
        try:
            enqueue_adds(client, target, adds, flush_interval=settings.flush_interval,
                         batch_size=settings.batch_size, ceiling=settings.backlog_limit)
            return
        except BacklogCeiling:
            time.sleep(CEILING_RECHECK)


def _describe(row: list[Any]) -> str:
    """A would-be add: its identifiers' digests (shortened) and event time; never more than digests."""
    _, email, phone, adid, _, event_ms, _ = row
    parts = [f"{name}={value[:12]}…" for name, value in (("email", email), ("phone", phone), ("adid", adid))
             if value]
    return " ".join(parts) + f" event_ms={event_ms}"
