"""The Grafana dashboard and its provisioning for compose's `monitoring` profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from tests.support.promql_queries import as_promql, dashboard_queries, panels
from tests.support.promtool import promtool

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA / "tiktok-audiences.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "tiktok-audiences.yaml"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

# What an operator must find on the dashboard, and a word of the query that draws it.
REQUIRED_PANELS = {
    "Events in and rejected, by reason": "tta_intake_events_rejected_total",
    "Backlog and due targets": "tta_due_targets",
    "Oldest due age": "tta_oldest_due_age_seconds",
    "TikTok calls by endpoint and code": "tta_tiktok_requests_total",
    "TikTok call latency": "tta_tiktok_request_duration_seconds_bucket",
    "Rows per mapping call (of 10,000)": "tta_rows_total",
    "Throttles and cooldowns": "tta_throttles_total",
    "Batches by outcome": "tta_batches_total",
    "Paused destinations": "tta_paused_destinations",
    "Workers up": "up{",
}


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def _drawing_panels() -> list[dict[str, Any]]:
    return [p for p in panels(_dashboard()) if p["type"] != "row"]


def test_every_panel_the_operators_need_is_there() -> None:
    by_title: dict[str, list[str]] = {}
    for panel in _drawing_panels():
        by_title.setdefault(panel["title"], []).extend(t["expr"] for t in panel["targets"])
    for title, needle in REQUIRED_PANELS.items():
        assert title in by_title, f"no panel {title!r}"
        assert any(needle in expr for expr in by_title[title]), (title, by_title[title])


def test_every_panel_says_what_it_shows() -> None:
    for panel in _drawing_panels():
        assert len(panel.get("description", "")) > 20, panel["title"]
        assert panel["targets"], panel["title"]


def test_every_query_is_valid_promql() -> None:
    for query in dashboard_queries(DASHBOARD_FILE):
        promql_parser.parse(as_promql(query.expr))


def test_prometheus_itself_accepts_every_query(tmp_path: Path) -> None:
    # promtool parses with Prometheus's own parser: each query becomes a recording rule it must accept.
    queries = dashboard_queries(DASHBOARD_FILE)
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{index}", "expr": as_promql(query.expr)} for index, query in enumerate(queries)
    ]}]}
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(queries)} rules found" in result.stdout


def test_panels_use_the_chosen_prometheus() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in _drawing_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_panels_fit_the_grid_without_overlapping() -> None:
    taken: dict[tuple[int, int], str] = {}
    ids: set[int] = set()
    for panel in panels(_dashboard()):
        assert panel["id"] not in ids, f"panel id {panel['id']} used twice"
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for row in range(grid["y"], grid["y"] + grid["h"]):
            for column in range(grid["x"], grid["x"] + grid["w"]):
                assert (row, column) not in taken, f"{panel['title']!r} overlaps {taken[(row, column)]!r}"
                taken[(row, column)] = panel["title"]


def test_rows_per_call_are_drawn_against_tiktoks_ceiling() -> None:
    panel = next(p for p in _drawing_panels() if p["title"] == "Rows per mapping call (of 10,000)")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert 10_000 in [step["value"] for step in steps]
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"


def test_the_provisioned_datasource_is_the_compose_prometheus() -> None:
    datasource = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    scrape = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
    assert datasource["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]


def test_the_dashboard_provider_loads_the_folder_compose_mounts_the_dashboard_in() -> None:
    provider = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_readme_describes_every_panel() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### The dashboard"):readme.index("### The alerts")]
    described = {line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")}
    assert {panel["title"] for panel in _drawing_panels()} <= described
