"""The intake's Prometheus metrics (``/metrics``), and how several intake processes add theirs up."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from producer.intake import IntakeResult


def _metrics_shared_between_processes() -> bool:
    """Whether metrics live in prometheus_client's multiprocess files (``serve --workers N``, or a
    ``PROMETHEUS_MULTIPROC_DIR`` set before start) rather than in this process's memory."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def share_metrics_between_processes() -> Callable[[], None]:
    """Make the metrics of processes forked from now on add up, whichever process a scrape reaches: each
    writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder unless that is set)
    and ``/metrics`` reads them all. Returns the cleanup to run when every process has exited."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    made: str | None = None
    if not directory:
        made = directory = tempfile.mkdtemp(prefix="tta-intake-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    # prometheus_client picks its value class from the environment when it is first imported, which was
    # before this function could set it; metrics read the class when they are made (after the fork).
    values.ValueClass = values.MultiProcessValue()

    def cleanup() -> None:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)

    return cleanup


class IntakeMetrics:
    """Prometheus metrics of the intake: in memory for one process; with several (``serve --workers N``),
    in shared files so that every process answers ``/metrics`` with the sum over all of them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._shared = _metrics_shared_between_processes()
        self.events_accepted = Counter("tta_intake_events_accepted", "Events accepted by intake",
                                       registry=self.registry)
        self.events_rejected = Counter("tta_intake_events_rejected", "Events rejected by intake, by reason",
                                       ["reason"], registry=self.registry)
        self.requests = Counter("tta_intake_requests", "Intake HTTP requests, by route and status (probes and "
                                "scrapes are not counted)", ["route", "status"], registry=self.registry)
        self.duration = Histogram("tta_intake_request_duration_seconds", "Time to answer an intake request, "
                                  "by route", ["route"], registry=self.registry,
                                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        if not self._shared:
            ProcessCollector(registry=self.registry)  # with shared files, render() adds the answering one's
        self.operations = Counter("tta_intake_operations_enqueued", "Operations written to the queue",
                                  registry=self.registry)
        self.unmatched = Counter("tta_intake_events_unmatched", "Accepted events no mapping subscribed to",
                                 registry=self.registry)
        self.opted_out = Counter("tta_intake_events_opted_out",
                                 "Accepted events whose integrations turned a destination off", registry=self.registry)
        self.clamped = Counter("tta_intake_event_times_clamped",
                               "Event times too far in the future, clamped to the time received",
                               registry=self.registry)
        # Set from Redis just before each scrape, by whichever process answers it: the latest value is the truth.
        self.backlog = Gauge("tta_backlog_operations", "Operations accepted and not yet settled (fleet-wide)",
                             registry=self.registry, multiprocess_mode="mostrecent")
        # labels() takes a lock and builds a key on every call; the set of (route, status) pairs is small.
        self._request_children: dict[tuple[str, int], Any] = {}
        self._duration_children: dict[str, Any] = {}

    def request(self, route: str, status: int, seconds: float) -> None:
        child = self._request_children.get((route, status))
        if child is None:
            child = self._request_children[(route, status)] = self.requests.labels(route, str(status))
        child.inc()
        timer = self._duration_children.get(route)
        if timer is None:
            timer = self._duration_children[route] = self.duration.labels(route)
        timer.observe(seconds)

    def record(self, result: IntakeResult) -> None:
        if result.accepted:
            self.events_accepted.inc(result.accepted)
        for code, n in result.rejected_by_code.items():
            self.events_rejected.labels(code).inc(n)
        if result.operations:
            self.operations.inc(result.operations)
        if result.unmatched:
            self.unmatched.inc(result.unmatched)
        if result.opted_out:
            self.opted_out.inc(result.opted_out)
        if result.clamped:
            self.clamped.inc(result.clamped)

    def render(self) -> bytes:
        if not self._shared:
            return generate_latest(self.registry)
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone)
        ProcessCollector(registry=everyone)
        return generate_latest(everyone)
