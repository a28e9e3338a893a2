"""Operator commands over the ledger: ``batches list|show``, ``replay`` and ``stats``."""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

import redis
from tqdm import tqdm

from core.redis_memory import MemoryState, memory_state
from core.settings import Settings
from tiktok_audiences.output import fail, print_json, print_table, when
from worker.ledger import STATUSES, Ledger
from worker.replay import preview, request_replay
from worker.stats import collect

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"cannot read duration {text!r}: use e.g. 90s, 30m, 4h, 2d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _ledger(settings: Settings, client: redis.Redis) -> Ledger:
    return Ledger(client, delivered_retention=settings.delivered_retention,
                  dead_retention=settings.dead_retention)


def batches_list(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    if args.status and args.status not in STATUSES:
        return fail(f"unknown status {args.status!r}; one of: {', '.join(STATUSES)}")
    records = _ledger(settings, client).list(status=args.status, audience_id=args.audience, limit=args.limit)
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
    record = _ledger(settings, client).get(args.batch_id)
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
    ledger = _ledger(settings, client)
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


def _cooldowns(settings: Settings, client: redis.Redis) -> list[dict[str, Any]]:
    """Each configured destination's throttle cooldown and when its lane is due ([] without a readable
    destinations file: stats still works without one)."""
    from dataclasses import asdict

    from core.destinations import ConfigError, load_destinations
    from worker.cooldowns import cooldowns

    try:
        destinations = load_destinations(settings.config_path)
    except ConfigError:
        return []
    return [asdict(c) for c in cooldowns(client, destinations)]


def _memory(client: redis.Redis) -> MemoryState | None:
    """Redis's memory against its maxmemory; None where INFO is not offered (a proxy, say)."""
    try:
        return memory_state(client.info("memory"))
    except redis.ResponseError:
        return None


def stats(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    if getattr(args, "watch", False):
        if args.json:
            return fail("--json prints one document and --watch keeps redrawing a view: give one of them")
        from tiktok_audiences.watch import watch_stats

        return watch_stats(settings, client, interval=args.interval)
    doc = collect(client, _ledger(settings, client))
    doc["cooldowns"] = _cooldowns(settings, client)
    memory = _memory(client)
    if memory is not None:
        doc["redis_memory"] = {"used": memory.used, "maxmemory": memory.limit, "policy": memory.policy,
                               "full": memory.full}
    if args.json:
        print_json(doc)
        return 0
    if memory is not None and memory.full:
        sys.stdout.write(f"WARNING: {memory.describe()}; intake answers 503 meanwhile\n")
    sys.stdout.write(f"backlog: {doc['backlog']} operations\n")
    sys.stdout.write("batches: " + ", ".join(f"{k} {v}" for k, v in doc["batches"].items()) + "\n")
    for destination, info in doc["paused_destinations"].items():
        sys.stdout.write(f"PAUSED destination {destination} since {when(info['since'])}: "
                         f"{info['reason']} (code {info['code']}); fix the token, then run "
                         f"`tiktok-audiences destinations resume {destination}`\n")
    for cooling in doc.get("cooldowns", []):
        if cooling["seconds_left"] > 0:
            sys.stdout.write(f"THROTTLED destination {cooling['destination']}: TikTok's throttle rests its token "
                             f"for {cooling['seconds_left']:.1f} s more; its audiences are due "
                             f"{when(cooling['lane_due_at'])}; `tiktok-audiences destinations lift-cooldown "
                             f"{cooling['destination']}` ends it now\n")
    sys.stdout.write(f"superseded operations (a newer event on the same user was delivered; never sent): "
                     f"{doc['superseded']}\n")
    sys.stdout.write(f"rejected events: {doc['rejected_total']}\n")
    for reason, count in sorted(doc["rejected"].items(), key=lambda kv: -kv[1]):
        sys.stdout.write(f"  {reason}: {count}\n")
    if doc["counters"]:
        sys.stdout.write("counters: " + ", ".join(f"{k} {v}" for k, v in sorted(doc["counters"].items())) + "\n")
    sys.stdout.write("audiences:\n")
    print_table(
        ["destination", "advertiser", "audience", "backlog", "oldest pending", "delivered members",
         "targetable"],
        [[a["destination"], a["advertiser_id"],
          a["audience_id"] if a["audience_id"] and not a["audience_id"].startswith("@")
          else f"(to create: {a['audience_key']})",
          a["backlog"], when(a["oldest_pending_at"]), a["delivered_members"],
          "yes" if a["targetable"] else "no (<1000)"] for a in doc["audiences"]],
    )
    return 0


def destinations_lift_cooldown(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    from core.destinations import ConfigError, load_destinations
    from worker.cooldowns import lift

    try:
        destination = load_destinations(settings.config_path).get(args.destination)
        token = destination.token_id()
    except (ConfigError, KeyError) as exc:
        return fail(f"destination {args.destination}: {exc}")
    left = lift(client, destination.id, token)
    sys.stdout.write(f"destination {destination.id}: "
                     + (f"cooldown lifted ({left:.1f} s were left); its lane is due now\n" if left
                        else "was not cooling down; its lane is due now\n"))
    return 0


def destinations_resume(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    from worker.pause import resume

    was = resume(client, args.destination)
    sys.stdout.write(f"destination {args.destination}: {'resumed' if was else 'was not paused'}\n")
    return 0


def redis_ready(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


