"""``stats``: backlog, batches, rejections, throttles and audiences, once (text or JSON) or as a live view."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import redis

from core.destinations import ConfigError, load_destinations
from core.redis_memory import MemoryState, memory_state
from core.settings import Settings
from tiktok_audiences.commands.batches import open_ledger
from tiktok_audiences.commands.handler import WithRedis
from tiktok_audiences.commands.output import fail, print_json, print_table, when
from tiktok_audiences.commands.times import positive_seconds

if TYPE_CHECKING:
    from tiktok_audiences.commands.handler import Subparsers


def register(sub: Subparsers) -> None:
    """``stats`` and ``stats --watch``."""
    p = sub.add_parser("stats", help="backlog, batches, rejections and audiences")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true",
                   help="a live view: backlog per audience, calls/s against the rate limit, cooldowns, pauses, "
                        "dead batches (Ctrl-C to stop)")
    p.add_argument("--interval", type=positive_seconds, default=2.0, metavar="SECONDS",
                   help="how often --watch redraws (default 2)")
    p.set_defaults(handler=WithRedis(stats))


def _cooldowns(settings: Settings, client: redis.Redis) -> list[dict[str, Any]]:
    """Each configured destination's throttle cooldown and when its lane is due ([] without a readable
    destinations file: stats still works without one)."""
    from worker.operator.cooldowns import cooldowns

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
    from worker.operator.stats import collect

    doc = collect(client, open_ledger(settings, client))
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
