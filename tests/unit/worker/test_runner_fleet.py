"""The worker's parts that keep it alive or say it is not: the scheduler watchdog and the liveness check."""

from __future__ import annotations

from dataclasses import dataclass

from celery import bootsteps

from core.settings import Settings
from worker.runner import RESTARTS_ALLOWED, SchedulerSupervisor, WorkerHealth, node_name


@dataclass
class DeadProcess:
    """A scheduler process that has already died."""

    pid: int = 4242
    exitcode: int = -9

    def is_alive(self) -> bool:
        return False

    def terminate(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass


def supervisor_of_dead_schedulers() -> tuple[SchedulerSupervisor, list[int]]:
    started: list[int] = []

    def spawn() -> DeadProcess:
        started.append(1)
        return DeadProcess()

    supervisor = SchedulerSupervisor(Settings(), 1, spawn=spawn)
    supervisor.start()
    started.clear()  # the first start; the test counts restarts
    return supervisor, started


def test_a_dead_scheduler_is_started_again_until_it_keeps_dying() -> None:
    supervisor, started = supervisor_of_dead_schedulers()
    for _ in range(RESTARTS_ALLOWED):
        assert supervisor.check() is True
    assert len(started) == RESTARTS_ALLOWED
    assert supervisor.check() is False  # one death too many within the window: the worker must exit
    assert supervisor.gave_up and len(started) == RESTARTS_ALLOWED


@dataclass
class Blueprint:
    state: int


@dataclass
class Controller:
    blueprint: Blueprint


def test_liveness_needs_the_consumer_running_and_the_scheduler_alive() -> None:
    supervisor, _ = supervisor_of_dead_schedulers()
    health = WorkerHealth(Settings(), None)
    assert health.alive() == "the Celery consumer has not started"
    health.controller = Controller(Blueprint(bootsteps.RUN))
    assert health.alive() is None
    health.controller = Controller(Blueprint(bootsteps.CLOSE))
    assert health.alive() == "the Celery consumer has stopped"
    with_scheduler = WorkerHealth(Settings(), supervisor)
    with_scheduler.controller = Controller(Blueprint(bootsteps.RUN))
    assert with_scheduler.alive() == "the scheduler is not running"


def test_node_names_are_unique_per_process_unless_chosen() -> None:
    import os

    assert node_name(Settings()).startswith(f"tta-{os.getpid()}@")
    assert node_name(Settings(TTA_WORKER_NAME="w1@host")) == "w1@host"
