"""``batches list|show`` and ``replay``: the delivery ledger, and re-delivering dead batches."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

import redis
from tqdm import tqdm

from core.settings import Settings
from tiktok_audiences.commands.handler import WithRedis
from tiktok_audiences.commands.output import fail, print_json, print_table, when
from tiktok_audiences.commands.times import parse_duration

if TYPE_CHECKING:
    from tiktok_audiences.commands.handler import Subparsers
    from worker.ledger import Ledger


def register(sub: Subparsers) -> None:
    """``batches list``, ``batches show`` and ``replay``."""
    batches = sub.add_parser("batches", help="the delivery ledger").add_subparsers(dest="verb", required=True)
    p = batches.add_parser("list")
    p.add_argument("--status")
    p.add_argument("--audience")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=WithRedis(batches_list))
    p = batches.add_parser("show")
    p.add_argument("batch_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=WithRedis(batches_show))

    p = sub.add_parser("replay", help="re-deliver dead batches")
    p.add_argument("batch_ids", nargs="*")
    p.add_argument("--status")
    p.add_argument("--since", help="only batches that died within this duration (e.g. 4h)")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=WithRedis(replay))


def open_ledger(settings: Settings, client: redis.Redis) -> Ledger:
    """The ledger in ``client``, kept for the retentions ``settings`` give."""
    from worker.ledger import Ledger

    return Ledger(client, delivered_retention=settings.delivered_retention,
                  dead_retention=settings.dead_retention)


def batches_list(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    from worker.ledger import STATUSES

    if args.status and args.status not in STATUSES:
        return fail(f"unknown status {args.status!r}; one of: {', '.join(STATUSES)}")
    records = open_ledger(settings, client).list(status=args.status, audience_id=args.audience, limit=args.limit)
    if args.json:
        print_json([r.to_json() for r in records])
        return 0
    print_table(
        ["id", "status", "destination", "advertiser", "audience", "action", "rows", "attempts", "code",
         "updated", "message"],
        [[r.id, r.status, r.destination, r.advertiser_id, r.audience_id, r.action, r.rows, r.attempts,
          r.last_code, when(r.updated_at), (r.last_message or "")[:60]] for r in records],
    )
    return 0


def batches_show(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    record = open_ledger(settings, client).get(args.batch_id)
    if record is None:
        return fail(f"no batch {args.batch_id!r} in the ledger (unknown, or its record has expired)", 1)
    if args.json:
        print_json(record.to_json())
        return 0
    doc = record.to_json()
    for name in ("created_at", "updated_at", "first_attempt_at", "next_attempt_at", "finished_at",
                 "accepted_first", "accepted_last"):
        doc[name] = when(doc[name])
    width = max(len(k) for k in doc)
    for name, value in doc.items():
        sys.stdout.write(f"{name.ljust(width)}  {'-' if value in (None, '') else value}\n")
    return 0


def replay(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    from worker.replay import preview, request_replay

    ledger = open_ledger(settings, client)
    if args.batch_ids and args.status:
        return fail("give batch ids or --status, not both")
    if args.batch_ids:
        batch_ids = list(args.batch_ids)
    elif args.status:
        if args.status != "dead":
            return fail("only dead batches are replayed: use --status dead")
        since = time.time() - parse_duration(args.since) if args.since else None
        batch_ids = ledger.ids(status="dead", since=since, limit=1_000_000)
    else:
        return fail("name batch ids, or --status dead")
    as_json = bool(getattr(args, "json", False))

    def say(line: str) -> None:
        if not as_json:
            sys.stdout.write(line + "\n")

    replayed: list[dict[str, object]] = []
    refused: list[dict[str, object]] = []
    for batch_id in tqdm(batch_ids, desc="replay", unit="batch", disable=not sys.stderr.isatty()):
        check = preview(client, ledger, batch_id)
        if not check.replayable:
            refused.append({"id": batch_id, "status": check.status, "reason": check.problem})
            say(f"{batch_id}: not replayed: {check.problem}")
            continue
        note = f" ({check.superseded} of {check.rows} rows superseded; they will be dropped)" \
            if check.superseded else ""
        if args.dry_run:
            say(f"{batch_id}: would replay {check.rows - check.superseded} rows{note}")
        else:
            record = ledger.get(batch_id)
            assert record is not None
            request_replay(client, ledger, record)
            say(f"{batch_id}: queued for replay, {check.rows - check.superseded} rows{note}")
        replayed.append({"id": batch_id, "rows": check.rows - check.superseded,
                         "superseded_rows": check.superseded})
    if as_json:
        print_json({"dry_run": bool(args.dry_run), "replayed": replayed, "refused": refused})
    else:
        verb = "would replay" if args.dry_run else "replaying"
        say(f"{verb} {len(replayed)} batch(es); {len(refused)} refused")
    return 0 if not refused else 1
