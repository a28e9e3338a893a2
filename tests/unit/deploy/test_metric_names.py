"""Every series the alert rules and the dashboard query is one the code exports, with labels it has: a renamed
metric or label fails here instead of leaving an alert that can never fire or a panel that stays empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.exported_metrics import TARGET_LABELS, Exported, exported
from tests.support.promql_queries import Query, dashboard_queries, reads, rule_queries

ROOT = Path(__file__).resolve().parents[3]
QUERIES = [*rule_queries(ROOT / "deploy" / "prometheus" / "alerts.yaml"),
           *dashboard_queries(ROOT / "deploy" / "grafana" / "tiktok-audiences.json")]


@pytest.fixture(scope="module")
def code() -> Exported:
    return exported()


@pytest.mark.parametrize("query", QUERIES, ids=[q.where for q in QUERIES])
def test_the_query_reads_only_series_the_code_exports(query: Query, code: Exported) -> None:
    for read in reads(query.expr):
        assert read.series, f"{query.where}: a selector without a metric name: {query.expr}"
        assert read.series in code.series, (
            f"{query.where}: {read.series} is not exported by the code (known tta_ series: "
            f"{sorted(s for s in code.series if s.startswith('tta_'))})")
        known = code.series[read.series] | TARGET_LABELS
        unknown = (read.filtered | read.grouped) - known
        assert not unknown, f"{query.where}: {read.series} has no label {sorted(unknown)} (it has {sorted(known)})"


def test_intake_metrics_are_found_in_the_source(code: Exported) -> None:
    # The intake's metrics are defined in producer/http/metrics.py: the scan must see them, with their labels.
    assert code.series["tta_intake_requests_total"] == {"route", "status"}
    assert code.series["tta_intake_events_rejected_total"] == {"reason"}
    assert "tta_intake_events_accepted_total" in code.series
    assert "tta_intake_events_accepted" not in code.series  # a counter is scraped with _total only
