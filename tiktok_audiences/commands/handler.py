"""What a command's ``handler`` is, and the wrapper that gives operator commands a live Redis connection."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from core.redis_client import OPERATOR, display, redis_from_url
from core.settings import Settings
from tiktok_audiences.commands.output import fail

Handler = Callable[[argparse.Namespace, Settings], int]
RedisHandler = Callable[[argparse.Namespace, Settings, redis.Redis], int]

if TYPE_CHECKING:
    # What ``add_subparsers`` returns, which each command group's ``register`` adds its parsers to.
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


@dataclass(frozen=True)
class WithRedis:
    """A handler for a command that reads or writes the service's Redis: it connects, and checks that Redis
    answers before ``command`` runs, so an unreachable Redis is one clear error rather than a traceback."""

    command: RedisHandler

    def __call__(self, args: argparse.Namespace, settings: Settings) -> int:
        client = redis_from_url(settings.redis_url, OPERATOR)
        try:
            client.ping()
        except redis.RedisError as exc:
            return fail(f"cannot reach Redis at {display(settings.redis_url)}: {exc}")
        return self.command(args, settings, client)
