"""``tiktok-audiences audiences list|create``: the TikTok audiences the service knows, and making one."""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp
import redis

from core.destinations import ConfigError, Destination, load_destinations
from core.settings import Settings
from tiktok_audiences.output import fail, print_json, print_table
from worker import keys
from worker.audience_report import known_audiences
from worker.audiences import remember_audience
from worker.stats import TIKTOK_MINIMUM_AUDIENCE
from worker.tiktok.client import TikTokClient
from worker.tiktok.errors import TikTokError
from worker.tiktok.wire import MAX_AUDIENCE_NAME, truncate_audience_name


def audiences_list(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
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
    async with TikTokClient(settings.tiktok_api_base_url, timeout=settings.http_timeout) as client:
        return await client.create_audience(token, advertiser_id, name)


def audiences_create(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
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
