"""``tiktok-audiences shadow report``: what shadow destinations would have sent, per audience and time range."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

import redis

from core.settings import Settings
from tiktok_audiences.operator import parse_duration
from tiktok_audiences.output import fail, print_json, print_table, when
from worker.ledger import Ledger
from worker.shadow_report import shadow_report


def parse_moment(text: str, now: float) -> float:
    """A point in time: a duration ago (``4h``, ``90m``), or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read time {text!r}: use a duration ago (4h, 90m, 2d) or an ISO 8601 time "
                         "(2026-01-31T12:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def shadow_report_command(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    now = time.time()
    try:
        since = parse_moment(args.since, now)
        until = parse_moment(args.until, now) if args.until else now
    except ValueError as exc:
        return fail(str(exc))
    if until < since:
        return fail(f"--until ({when(until)}) is before --since ({when(since)})")
    ledger = Ledger(client, delivered_retention=settings.delivered_retention,
                    dead_retention=settings.dead_retention)
    report = shadow_report(client, ledger, since, until, args.audience)
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
