"""Celery's task consumer, patient with a Redis that is out of memory.

When Redis refuses writes (maxmemory with noeviction), the consumer cannot set itself up again (kombu's
restore of unacknowledged messages writes), and Celery retries at once, logging an error each time: measured,
~5 reconnects and error lines a second for as long as the episode lasts. This consumer waits
:data:`OUT_OF_MEMORY_BACKOFF` seconds between those tries and logs the episode once (``redis_out_of_memory``)
and its end once (``redis_memory_recovered``). Any other connection error is Celery's business as before.

Installed with Celery's ``worker_consumer`` setting (worker.celery_app).
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from celery.worker.consumer import Consumer as CeleryConsumer

from core.redis_memory import OutOfMemoryEpisode

log = structlog.get_logger(__name__)

OUT_OF_MEMORY_BACKOFF = 2.0


class Consumer(CeleryConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._memory = OutOfMemoryEpisode("consumer")

    def on_connection_error_before_connected(self, exc: BaseException) -> None:
        if self._memory.note(exc, log):
            time.sleep(OUT_OF_MEMORY_BACKOFF)  # the restart loop retries at once otherwise
            return
        super().on_connection_error_before_connected(exc)

    def on_ready(self) -> None:
        self._memory.note_success(log)
        super().on_ready()
