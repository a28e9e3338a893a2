"""The source scan that tells which series the code exports (tests/unit/deploy/exported_metrics.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.exported_metrics import definitions_in, exported, series_of

SOURCE = '''
from collections import Counter as Tally
from prometheus_client import Counter, Gauge, Histogram, Summary, Info, Enum, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
import prometheus_client

LATENCY = "tta_call_duration_seconds"
requests = Counter("tta_requests_total", "Requests", ["route", "status"])
rows = prometheus_client.Counter("tta_rows", "Rows", labelnames=("action",))
backlog = Gauge(name="tta_backlog", documentation="Backlog", multiprocess_mode="mostrecent")
latency = Histogram(LATENCY, "Latency", ["endpoint"])
sizes = Summary("sizes", "Sizes", namespace="tta", subsystem="batch")
build = Info("tta_build", "Build")
state = Enum("tta_state", "State", states=["up", "down"])
ProcessCollector()
tallied = Tally(x for x in "abc")

class FleetCollector:
    def collect(self):
        yield GaugeMetricFamily("tta_due", "Due", value=3)
        yield GaugeMetricFamily("tta_paused", "Paused", labels=["destination"])
        yield CounterMetricFamily("tta_swept_total", "Swept", None, ["lane"])
'''


def test_definitions_are_read_with_their_names_and_labels() -> None:
    found, collectors = definitions_in(SOURCE, "sample.py")
    by_name = {d.name: d for d in found}
    assert set(by_name) == {"tta_requests", "tta_rows", "tta_backlog", "tta_call_duration_seconds",
                            "tta_batch_sizes", "tta_build", "tta_state", "tta_due", "tta_paused", "tta_swept"}
    assert by_name["tta_requests"].labels == {"route", "status"}
    assert by_name["tta_rows"].labels == {"action"}
    assert by_name["tta_call_duration_seconds"].labels == {"endpoint"}
    assert by_name["tta_state"].labels == {"tta_state"}
    assert by_name["tta_due"].labels == set()
    assert by_name["tta_paused"].labels == {"destination"}
    assert by_name["tta_swept"].labels == {"lane"}
    assert collectors == {"ProcessCollector"}


def test_series_names_follow_prometheus_client() -> None:
    found, _ = definitions_in(SOURCE, "sample.py")
    series: dict[str, frozenset[str]] = {}
    for definition in found:
        series.update(series_of(definition))
    assert {"tta_requests_total", "tta_rows_total", "tta_backlog", "tta_call_duration_seconds_bucket",
            "tta_call_duration_seconds_sum", "tta_call_duration_seconds_count", "tta_batch_sizes_count",
            "tta_build_info", "tta_state", "tta_due", "tta_swept_total"} <= set(series)
    assert "tta_requests" not in series
    assert "tta_call_duration_seconds" not in series
    assert series["tta_call_duration_seconds_bucket"] == {"endpoint", "le"}


def test_a_project_tree_is_scanned_with_standard_collectors_and_prometheus_series(tmp_path: Path) -> None:
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "metrics.py").write_text(SOURCE, encoding="utf-8")
    result = exported(tmp_path, ("worker",))
    assert "tta_rows_total" in result.series
    assert "process_resident_memory_bytes" in result.series
    assert "up" in result.series
    assert "python_info" not in result.series  # PlatformCollector is not used
