"""``tiktok-audiences worker`` (a Celery worker, by default with a scheduler beside it) and ``tiktok-audiences
scheduler`` (the scheduler alone).

The scheduler runs in a child process of the worker rather than a thread of the Celery parent: the prefork
pool forks new children whenever one dies, and forking a process that has a busy Redis thread can copy a held
lock into the child. It is started with ``spawn`` (a fresh interpreter), so it can also be started again from
the running worker, which has threads by then. A watchdog thread notices a dead scheduler within a second and
starts another; a scheduler that keeps dying (5 times in a minute) stops the worker with exit code 1 so its
supervisor restarts the whole thing. Whichever processes run schedulers, one of them schedules at a time
(worker.scheduler_lease).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from core.settings import Settings

if TYPE_CHECKING:
    from worker.celery_app import DeliveryCelery

log = structlog.get_logger(__name__)

WATCH_EVERY = 0.5
RESTARTS_ALLOWED = 5  # within RESTART_WINDOW seconds; one more and the worker exits 1
RESTART_WINDOW = 60.0


def run_scheduler(app: DeliveryCelery, processes: int | None = None,
                  stop: threading.Event | None = None) -> None:
    """Schedule under the fleet's lease until ``stop`` (or SIGTERM/SIGINT when no event is given), sending
    tasks through ``app`` and reading its Settings."""
    from core.redis_client import BROKER_GAUGE, SCHEDULER, redis_from_url
    from worker import metrics
    from worker.celery_app import DRAIN_QUEUE
    from worker.scheduler_guard import GuardedScheduler, QueueGuard
    from worker.scheduler_lease import SchedulerLease, run_under_lease
    from worker.tasks import CREATE_TASK, DRAIN_TASK

    if stop is None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    settings = app.settings
    # Timeouts: a Redis that vanishes without closing the connection must not hang the scheduler forever.
    client = redis_from_url(settings.redis_url, SCHEDULER)

    def dispatch(target: str) -> None:
        app.send_task(DRAIN_TASK, args=[target])

    def dispatch_many(targets: list[str]) -> None:
        app.send_task(DRAIN_TASK, args=[targets])

    broker = client if settings.broker_url == settings.redis_url else redis_from_url(settings.broker_url,
                                                                                     BROKER_GAUGE)
    guard = QueueGuard(lambda: int(broker.llen(DRAIN_QUEUE)))
    scheduler = GuardedScheduler(client, settings, dispatch, dispatch_creates=lambda: app.send_task(CREATE_TASK),
                                 dispatch_many=dispatch_many, spread=processes or os.cpu_count() or 2, guard=guard)
    run_under_lease(SchedulerLease(client, settings.scheduler_lease_ttl), scheduler.run, stop,
                    on_change=lambda active: metrics.SCHEDULER_ACTIVE.set(1 if active else 0))


def _stop_when_orphaned(stop: threading.Event, parent: int) -> None:
    """A worker killed outright (SIGKILL, the OOM killer) cannot stop its scheduler: the scheduler notices it
    has been re-parented and stops, instead of feeding a queue its own worker no longer consumes."""
    while not stop.wait(1.0):
        if os.getppid() != parent:
            log.warning("scheduler_orphaned", parent=parent)
            stop.set()


def _scheduler_process(settings: Settings, processes: int | None, parent: int) -> None:
    """The worker's scheduler child (a fresh interpreter): its own app, made from the worker's Settings."""
    from core.logging import configure_logging
    from worker.celery_app import make_celery

    configure_logging(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=_stop_when_orphaned, args=(stop, parent), name="tta-parent-watch",
                     daemon=True).start()
    run_scheduler(make_celery(settings), processes, stop)


class ChildProcess(Protocol):
    """What the supervisor uses of its scheduler's process."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


class SchedulerSupervisor:
    """The worker's scheduler child: started, watched, started again when it dies. ``spawn`` starts one (by
    default a fresh interpreter running the scheduler with ``settings``)."""

    def __init__(self, settings: Settings, processes: int | None,
                 spawn: Callable[[], ChildProcess] | None = None) -> None:
        self._settings = settings
        self._processes = processes
        self._spawn = spawn or self._spawn_scheduler
        self.process: ChildProcess | None = None
        self._restarts: deque[float] = deque()
        self.gave_up = False

    def _spawn_scheduler(self) -> BaseProcess:
        process = multiprocessing.get_context("spawn").Process(
            target=_scheduler_process, args=(self._settings, self._processes, os.getpid()),
            name="tta-scheduler", daemon=True)
        process.start()
        return process

    def start(self) -> None:
        self.process = self._spawn()

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def check(self) -> bool:
        """Start the scheduler again if it died; False once it died too often (the worker must exit)."""
        if self.alive() or self.gave_up:
            return not self.gave_up
        assert self.process is not None
        dead_pid, code = self.process.pid, self.process.exitcode
        _forget_metrics_of(dead_pid)
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW:
            self._restarts.popleft()
        if len(self._restarts) >= RESTARTS_ALLOWED:
            log.error("scheduler_keeps_dying", pid=dead_pid, exit_code=code, restarts=len(self._restarts))
            self.gave_up = True
            return False
        self._restarts.append(now)
        from worker import metrics

        metrics.SCHEDULER_RESTARTS.inc()
        log.error("scheduler_died_restarting", pid=dead_pid, exit_code=code)
        self.start()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()


def _forget_metrics_of(pid: int | None) -> None:
    if pid and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


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


def share_metrics_between_processes() -> Callable[[], None]:
    """Count metrics in prometheus_client's multiprocess files, so ``/metrics`` sums the pool. The files go
    to a fresh folder (inside ``PROMETHEUS_MULTIPROC_DIR`` when that is set: never the folder itself, which an
    intake on the same host may be using), removed at exit. Must run before any metric is made. Returns the
    cleanup for the end."""
    from prometheus_client import values

    directory = tempfile.mkdtemp(prefix="tta-worker-metrics-", dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.MultiProcessValue()

    def cleanup() -> None:
        shutil.rmtree(directory, ignore_errors=True)

    return cleanup


def node_name(settings: Settings) -> str:
    """Celery's node name: unique per process unless set, so ``inspect`` and Flower tell workers apart."""
    return settings.worker_name or f"tta-{os.getpid()}@{socket.gethostname()}"


class WorkerHealth:
    """What ``/healthz`` and ``/readyz`` of a worker ask."""

    def __init__(self, settings: Settings, supervisor: SchedulerSupervisor | None) -> None:
        self._settings = settings
        self._supervisor = supervisor
        self.controller: Any = None  # Celery's WorkController, once it is up
        self._redis: Any = None

    def alive(self) -> str | None:
        if self._supervisor is not None and not self._supervisor.alive():
            return "the scheduler is not running"
        if self.controller is None:
            return "the Celery consumer has not started"
        from celery import bootsteps

        if self.controller.blueprint.state != bootsteps.RUN:
            return "the Celery consumer has stopped"
        return None

    def ready(self) -> str | None:
        from core.redis_client import PROBE, redis_from_url
        from worker.readiness import check_write_path

        if self._redis is None:
            self._redis = redis_from_url(self._settings.redis_url, PROBE)
        return check_write_path(self._redis)


def start_probes(settings: Settings, port: int, alive: Callable[[], str | None],
                 ready: Callable[[], str | None]) -> Any:
    from core.destinations import DestinationsProvider
    from core.redis_client import METRICS, redis_from_url
    from worker.metrics import FleetCollector, scrape_registry
    from worker.probes import ProbeServer

    client = redis_from_url(settings.redis_url, METRICS)
    destinations = DestinationsProvider(settings.config_path)

    def token_ids() -> dict[str, str]:
        found: dict[str, str] = {}
        for destination in destinations.current().destinations:
            try:
                found[destination.id] = destination.token_id()
            except Exception:  # a token not readable here: its throttles are not seen, its pauses still are
                found[destination.id] = ""
        return found

    from worker.celery_app import DRAIN_QUEUE

    broker = client if settings.broker_url == settings.redis_url else redis_from_url(settings.broker_url, METRICS)
    collector = FleetCollector(client, token_ids, lease=settings.scheduler_lease,
                               queued_tasks=lambda: int(broker.llen(DRAIN_QUEUE)))
    registry = scrape_registry(collector)
    server = ProbeServer(settings.worker_metrics_host, port, alive=alive, ready=ready,
                         registry=lambda: registry).start()
    log.info("probes_serving", port=server.port)
    return server


def run_worker(settings: Settings, *, concurrency: int | None = None, loglevel: str = "WARNING",
               metrics_port: int | None = None, scheduler: bool | None = None) -> int:
    """Run until stopped; returns the exit code (0 after a graceful stop, 1 when the scheduler kept dying)."""
    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    with_scheduler = settings.worker_scheduler if scheduler is None else scheduler
    if settings.worker_nice:
        # Before anything forks: the scheduler and the pool's children inherit it.
        lower_priority(settings.worker_nice)
    cleanup = share_metrics_between_processes() if port else (lambda: None)
    from worker import shutdown  # maps the stop flag before the pool forks
    from worker.celery_app import make_celery

    # The command's one app: its pool processes run their tasks with its Settings (worker.tasks), and the
    # scheduler child makes its own from the same Settings (a spawned interpreter cannot share the object).
    app = make_celery(settings)
    supervisor = SchedulerSupervisor(app.settings, concurrency) if with_scheduler else None
    health = WorkerHealth(settings, supervisor)
    try:
        probes = start_probes(settings, port, health.alive, health.ready) if port else None
    except OSError as exc:
        cleanup()
        print(f"error: cannot serve probes and metrics on port {port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if supervisor is not None:
        supervisor.start()
    from celery.signals import worker_init, worker_shutting_down

    from core.logging import keep_celery_logging

    # Every line JSON: Celery logs through our set-up, and its text banner is replaced by one log line.
    keep_celery_logging()
    log.info("worker starting", concurrency=concurrency or os.cpu_count(), nice=settings.worker_nice)
    stop_watching = threading.Event()

    def on_init(sender: Any = None, **_: Any) -> None:
        health.controller = sender

    def on_shutting_down(**_: Any) -> None:
        shutdown.request()
        stop_watching.set()

    worker_init.connect(on_init, weak=False)
    worker_shutting_down.connect(on_shutting_down, weak=False)
    failed = threading.Event()
    if supervisor is not None:
        threading.Thread(target=_watch, args=(supervisor, stop_watching, failed), name="tta-scheduler-watch",
                         daemon=True).start()

    argv = ["--quiet", "worker", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle", "-O", "fair",
            f"--hostname={node_name(settings)}"]
    if not settings.task_events:
        argv.append("--without-heartbeat")  # Flower needs heartbeats; they come with TTA_TASK_EVENTS
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    code = 0
    try:
        app.worker_main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        stop_watching.set()
        if supervisor is not None:
            supervisor.stop()
        if probes is not None:
            probes.stop()
        cleanup()
    return 1 if failed.is_set() else code


def _watch(supervisor: SchedulerSupervisor, stop: threading.Event, failed: threading.Event) -> None:
    while not stop.wait(WATCH_EVERY):
        if not supervisor.check():
            failed.set()
            os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown, then exit code 1 (run_worker)
            return


def run_scheduler_role(settings: Settings, *, metrics_port: int | None = None) -> int:
    """``tiktok-audiences scheduler``: the scheduler alone (workers then run with TTA_WORKER_SCHEDULER=false and
    may scale to zero). Run two for a quick hand-over; one schedules at a time."""
    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    # One process: its metrics live in memory, whatever folder an environment shared with intake names.
    if os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None):
        from prometheus_client import values

        values.ValueClass = values.MutexValue
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    health = WorkerHealth(settings, None)
    from worker.celery_app import make_celery

    worker = threading.Thread(target=run_scheduler, args=(make_celery(settings), None, stop),
                              name="tta-scheduler", daemon=True)

    def alive() -> str | None:
        return None if worker.is_alive() else "the scheduler has stopped"

    try:
        probes = start_probes(settings, port, alive, health.ready) if port else None
    except OSError as exc:
        print(f"error: cannot serve probes and metrics on port {port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    worker.start()
    while worker.is_alive() and not stop.wait(WATCH_EVERY):
        pass
    died = not stop.is_set()  # the loop ended on its own: exit 1 so the supervisor starts another
    if died:
        log.error("scheduler_died")
    stop.set()
    worker.join(10)
    if probes is not None:
        probes.stop()
    return 1 if died or worker.is_alive() else 0
