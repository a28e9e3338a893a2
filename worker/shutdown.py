"""A worker's graceful stop, the same whether SIGTERM reaches its main process only or its whole group.

The moment a stop is asked for, drains stop cutting new batches (a drain finishes the batch it is sending,
then reschedules its audience by what is left). What is still running ``TTA_SHUTDOWN_GRACE`` seconds later is
cancelled and handed back: its targets are made due at once, so any worker resends the interrupted batch with
the same id (the ledger and TikTok's membership make that idempotent), instead of a lock and a lease later.

The request is one word of memory shared by the worker's main process and every pool process (mapped before
the pool forks): the main process sets it when Celery begins its warm shutdown, a pool process sets it when it
receives SIGTERM itself (and no longer dies of it), and every drain reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis
import structlog

from worker import keys

log = structlog.get_logger(__name__)

T = TypeVar("T")

HANDED_BACK = "handed-back"
_POLL = 0.1

# Epoch seconds the stop was asked for; 0.0 while running.
_requested_at = multiprocessing.get_context("fork").RawValue("d", 0.0)


def request() -> None:
    if not _requested_at.value:
        _requested_at.value = time.time()
        log.info("shutdown_requested")


def requested() -> bool:
    return bool(_requested_at.value)


def reset() -> None:
    """For tests: back to running."""
    _requested_at.value = 0.0


def deadline(grace: float) -> float:
    """Epoch seconds after which drains still running are cancelled (inf while no stop is asked for)."""
    return _requested_at.value + grace if _requested_at.value else float("inf")


def stop_on_sigterm() -> None:
    """In a pool process: SIGTERM asks for the stop instead of killing the process mid-batch."""
    signal.signal(signal.SIGTERM, lambda *_: request())


def hand_back(client: redis.Redis, targets: list[str], now: float | None = None) -> None:
    """Make ``targets`` due now (their claim pushed them a lease ahead), so another worker takes them."""
    if targets:
        with contextlib.suppress(redis.RedisError):
            client.zadd(keys.READY, dict.fromkeys(targets, time.time() if now is None else now), lt=True)


async def within_grace(work: Awaitable[T], client: redis.Redis, targets: list[str], grace: float) -> T | str:
    """Await ``work``; if a stop is asked for and ``grace`` runs out first, cancel it, hand ``targets`` back
    and return :data:`HANDED_BACK`."""
    task: asyncio.Future[Any] = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=_POLL)
        if done:
            return task.result()
        if time.time() >= deadline(grace):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            hand_back(client, targets)
            log.warning("drain_handed_back", targets=len(targets), grace=grace)
            return HANDED_BACK
