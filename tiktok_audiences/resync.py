"""``tiktok-audiences audiences resync AUDIENCE [--dry-run]``: re-send an audience's recorded membership through
the normal delivery path (worker.resync), with progress on stderr and a summary."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import redis

from core.settings import Settings
from tiktok_audiences.output import fail, print_json
from worker.queue import BacklogCeiling
from worker.resync import enqueue_adds, member_chunks, targets_of

# How long a resync waits for room when the backlog is at TTA_BACKLOG_LIMIT before it looks again.
CEILING_RECHECK = 1.0
SAMPLE_ROWS = 3  # rows --dry-run shows per target (digests, shortened)


def audiences_resync(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
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
