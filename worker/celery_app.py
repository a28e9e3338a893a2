"""The Celery application, made by :func:`make_celery` from a :class:`~core.settings.Settings`: two tasks,
``tta.drain`` (drains lanes) and ``tta.create_audiences`` (the legacy createAudience stream), registered on
each app the factory makes (worker.tasks).

No app exists until a command makes one: the worker, its scheduler and the scheduler role each build theirs
from the Settings of the command that started them, and the worker's pool processes (forked from it) run their
tasks with those same Settings, whatever the environment says.

The broker is ``TTA_BROKER_URL`` (default: ``REDIS_URL``), in any form core.redis_client takes, Sentinel
included. Configured for delivery work: late acks and prefetch 1 (a task lost with its worker is not lost work: the
target stays in the ready index and its lease runs out), JSON only, no result backend (the ledger is the
record), a visibility timeout above the hard time limit so the broker never hands a running task to a second
worker.
"""

from __future__ import annotations

from celery import Celery

from core.redis_client import broker_options
from core.settings import Settings
from worker.tasks import TaskRuntime, register_tasks

DRAIN_QUEUE = "tta.drain"


class DeliveryCelery(Celery):
    """A Celery app that keeps the Settings it was made from, for whoever sends tasks through it (the
    scheduler), and the runtime its tasks run with (built from those same Settings)."""

    settings: Settings
    runtime: TaskRuntime


def make_celery(settings: Settings) -> DeliveryCelery:
    """The one way to get the app: configured from ``settings``, its tasks registered, nothing read from the
    environment."""
    broker, sentinel_options = broker_options(settings.broker_url)
    app = DeliveryCelery("tiktok_audiences", broker=broker)
    app.settings = settings
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_time_limit=settings.task_time_limit,
        task_default_queue=DRAIN_QUEUE,
        broker_transport_options={
            "visibility_timeout": int(settings.task_time_limit * 2 + 60),
            # A broker that vanishes without closing the connection (failover, NAT, a paused VM) must not
            # leave a publish or the consumer's BRPOP waiting forever: time out, keep alive, and let kombu
            # drop a BRPOP connection whose answer is overdue (brpop_timeout + health_check_interval).
            "socket_timeout": 30,
            "socket_connect_timeout": 5,
            "socket_keepalive": True,
            "health_check_interval": 10,
            **sentinel_options,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # On a lost broker connection, running drains finish (they hold their target's lock and are fenced by
        # it); cancelling them would only waste the calls in flight.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # A Redis at maxmemory refuses the late ack's MULTI (an error of the channel, not the connection): retry
        # it like a lost connection instead of exiting the worker ("Unrecoverable error"), until memory frees.
        broker_channel_error_retry=True,
        # ...and waits between those retries, logging the episode once (worker.oom_consumer).
        worker_consumer="worker.oom_consumer:Consumer",
        worker_hijack_root_logger=False,
        # Task events (and the worker heartbeats Flower needs to see a worker online) cost a publish per task:
        # off unless TTA_TASK_EVENTS asks for them.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
    )
    app.runtime = register_tasks(app, settings)
    return app
