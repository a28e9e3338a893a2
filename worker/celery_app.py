"""The Celery application: one task, ``tta.drain``, that drains one target.

Configured for delivery work: late acks and prefetch 1 (a task lost with its worker is not lost work: the
target stays in the ready index and its lease runs out), JSON only, no result backend (the ledger is the record),
a visibility timeout above the hard time limit so the broker never hands a running task to a second worker.
"""

from __future__ import annotations

from celery import Celery

from worker.settings import Settings, get_settings

DRAIN_TASK = "tta.drain"
CREATE_TASK = "tta.create_audiences"  # legacy createAudience requests (worker.creates)
DRAIN_QUEUE = "tta.drain"


def make_celery(settings: Settings) -> Celery:
    app = Celery("tiktok_audiences", broker=settings.redis_url, include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_time_limit=settings.task_time_limit,
        task_default_queue=DRAIN_QUEUE,
        broker_transport_options={"visibility_timeout": int(settings.task_time_limit * 2 + 60)},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


app = make_celery(get_settings())
