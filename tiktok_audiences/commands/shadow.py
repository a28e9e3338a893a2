"""``shadow report``: what shadow destinations would have sent, per audience and time range."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

import redis

from core.settings import Settings
from tiktok_audiences.commands.batches import open_ledger
from tiktok_audiences.commands.handler import WithRedis
from tiktok_audiences.commands.output import fail, print_json, print_table, when
from tiktok_audiences.commands.times import parse_moment

if TYPE_CHECKING:
    from tiktok_audiences.commands.handler import Subparsers


def register(sub: Subparsers) -> None:
    """``shadow report``."""
    shadow = sub.add_parser("shadow", help="shadow destinations").add_subparsers(dest="verb", required=True)
    p = shadow.add_parser("report", help="adds and removes per audience that shadow destinations recorded")
    p.add_argument("--since", default="24h", help="a duration ago (4h) or an ISO 8601 time (default 24h)")
    p.add_argument("--until", help="a duration ago or an ISO 8601 time (default now)")
    p.add_argument("--audience", help="only this audience id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=WithRedis(shadow_report_command))


def shadow_report_command(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    from worker.operator.shadow_report import shadow_report

    now = time.time()
    try:
        since = parse_moment(args.since, now)
        until = parse_moment(args.until, now) if args.until else now
    except ValueError as exc:
        return fail(str(exc))
    if until < since:
        return fail(f"--until ({when(until)}) is before --since ({when(since)})")
    report = shadow_report(client, open_ledger(settings, client), since, until, args.audience)
    if args.json:
        print_json(report.to_json())
        return 0
    sys.stdout.write(f"shadow requests from {when(since)} to {when(until)} UTC: {report.requests} "
                     "(recorded, not sent)\n")
    if not report.audiences:
        sys.stdout.write("no shadow requests in this range (shadow records expire after "
                         f"TTA_DELIVERED_RETENTION, {settings.delivered_retention:.0f} s)\n")
        return 0
    print_table(["destination", "advertiser", "audience id", "adds", "removes", "requests"],
                [[a.destination, a.advertiser_id, a.audience_id + (" (not created)" if a.would_create else ""),
                  a.adds, a.removes, a.requests] for a in report.audiences])
    return 0
