"""``tiktok-audiences worker``: a Celery worker plus the scheduler that feeds it.

The scheduler runs in a child process of its own rather than a thread of the Celery parent: the prefork pool
forks new children whenever one dies, and forking a process that has a busy Redis thread can copy a held lock
into the child.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

import redis
import structlog

from worker.settings import Settings

log = structlog.get_logger(__name__)


def run_scheduler(settings: Settings, processes: int | None = None) -> None:
    from worker.celery_app import CREATE_TASK, DRAIN_TASK, make_celery
    from worker.scheduler import Scheduler

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=_stop_when_orphaned, args=(stop, os.getppid()), name="tta-parent-watch",
                     daemon=True).start()
    app = make_celery(settings)
    # Timeouts: a Redis that vanishes without closing the connection must not hang the scheduler forever.
    client = redis.Redis.from_url(settings.redis_url, health_check_interval=10, socket_keepalive=True,
                                  socket_timeout=15, socket_connect_timeout=5)

    def dispatch(target: str) -> None:
        app.send_task(DRAIN_TASK, args=[target])

    def dispatch_many(targets: list[str]) -> None:
        app.send_task(DRAIN_TASK, args=[targets])

    Scheduler(client, settings, dispatch, dispatch_creates=lambda: app.send_task(CREATE_TASK),
              dispatch_many=dispatch_many, spread=processes or os.cpu_count() or 2).run(stop)


def _stop_when_orphaned(stop: threading.Event, parent: int) -> None:
    """A worker killed outright (SIGKILL, the OOM killer) cannot stop its scheduler: the scheduler notices it
    has been re-parented and stops, instead of feeding a queue its own worker no longer consumes."""
    while not stop.wait(1.0):
        if os.getppid() != parent:
            log.warning("scheduler_orphaned", parent=parent)
            stop.set()


def _scheduler_process(settings: Settings, processes: int | None = None) -> None:
    from tiktok_audiences.logging import configure_logging

    configure_logging(settings)
    run_scheduler(settings, processes)


def lower_priority(increment: int) -> None:
    """Give up CPU priority to processes of other sessions too (intake, say), not only to this one's.

    With the kernel's autogroup scheduling (on in most desktop and many server kernels) every session is a
    group of its own and niceness only orders processes inside a group: a worker started in its own session
    (as ``run``, the benchmark and service managers start it) would compete with intake as an equal. So the
    session leader also lowers its group's share; a worker that shares a session (started from a shell beside
    ``serve``) leaves the group alone, and its niceness alone orders it after its neighbours."""
    os.nice(increment)
    if os.getsid(0) != os.getpid():
        return
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(increment))
    except OSError:  # no autogroup support, or not allowed: niceness is all there is
        pass


def run_worker(settings: Settings, *, concurrency: int | None = None, loglevel: str = "WARNING") -> None:
    if settings.worker_nice:
        # Before anything forks: the scheduler and the pool's children inherit it.
        lower_priority(settings.worker_nice)
    scheduler = multiprocessing.get_context("fork").Process(
        target=_scheduler_process, args=(settings, concurrency), name="tta-scheduler", daemon=True
    )
    scheduler.start()
    os.environ.setdefault("REDIS_URL", settings.redis_url)
    from tiktok_audiences.logging import keep_celery_logging
    from worker.celery_app import app

    # Every line JSON: Celery logs through our set-up, and its text banner is replaced by one log line.
    keep_celery_logging()
    log.info("worker starting", concurrency=concurrency or os.cpu_count(), nice=settings.worker_nice)
    argv = ["--quiet", "worker", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-O", "fair"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    try:
        app.worker_main(argv)
    finally:
        if scheduler.is_alive():
            scheduler.terminate()
            scheduler.join(5)
