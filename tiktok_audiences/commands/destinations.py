"""``destinations resume|lift-cooldown``: put a paused or throttled destination back to work."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import redis

from core.destinations import ConfigError, load_destinations
from core.settings import Settings
from tiktok_audiences.commands.handler import WithRedis
from tiktok_audiences.commands.output import fail

if TYPE_CHECKING:
    from tiktok_audiences.commands.handler import Subparsers


def register(sub: Subparsers) -> None:
    """``destinations resume`` and ``destinations lift-cooldown``."""
    dest = sub.add_parser("destinations", help="paused and throttled destinations").add_subparsers(
        dest="verb", required=True)
    p = dest.add_parser("resume", help="lift a pause after the token was fixed")
    p.add_argument("destination")
    p.set_defaults(handler=WithRedis(destinations_resume))
    p = dest.add_parser("lift-cooldown", help="end the rest a throttle put on a destination's token now")
    p.add_argument("destination")
    p.set_defaults(handler=WithRedis(destinations_lift_cooldown))


def destinations_lift_cooldown(args: argparse.Namespace, settings: Settings, client: redis.Redis) -> int:
    from worker.operator.cooldowns import lift

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
