"""The alert rules: valid for Prometheus, unit-tested on synthetic series, documented, and shipped alike to
Prometheus (deploy/prometheus/) and to the Prometheus Operator (deploy/kubernetes/prometheusrule.yaml)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import yaml

from tests.support.promtool import promtool

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yaml"
RULE_TESTS = PROMETHEUS / "alerts_test.yaml"
MANIFEST = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"
README = ROOT / "README.md"

RUNBOOK_ANCHORS = {
    "#runbook-dead-batches", "#runbook-paused-destination", "#runbook-throttled-token",
    "#runbook-backlog-growing", "#runbook-no-workers", "#runbook-intake-errors",
}


def _rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_prometheusrule", PROMETHEUS / "render_prometheusrule.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return "#" + text.replace(" ", "-")


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", RULE_TESTS.name, cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_compose_scrape_config() -> None:
    result = promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_severity_a_summary_and_a_runbook() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("README.md#"), (rule["alert"], url)
        assert url.removeprefix("README.md") in RUNBOOK_ANCHORS, (rule["alert"], url)


def test_every_runbook_anchor_is_a_heading_of_the_readme() -> None:
    anchors = {_github_anchor(line.lstrip("#")) for line in README.read_text(encoding="utf-8").splitlines()
               if line.startswith("#")}
    linked = {rule["annotations"]["runbook_url"].removeprefix("README.md") for rule in _rules()}
    missing = sorted(linked - anchors)
    assert not missing, f"runbook anchors with no README heading: {missing}"


def test_every_alert_has_a_unit_test_where_it_fires() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    firing = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    quiet = {case["alertname"] for test in tests for case in test["alert_rule_test"] if not case["exp_alerts"]}
    names = {rule["alert"] for rule in _rules()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"


def test_the_issue_list_of_alerts_is_covered() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in _rules()}
    joined = "\n".join(exprs.values())
    for needle in ("tta_backlog_operations", "tta_oldest_due_age_seconds", 'outcome="dead"',
                   "tta_paused_destinations", "tta_throttles_total", "tta_tiktok_requests_total", "up{",
                   'status="503"', 'status=~"5.."'):
        assert needle in joined, needle


def test_the_prometheusrule_manifest_is_generated_from_the_rules() -> None:
    renderer = _renderer()
    assert MANIFEST.read_text(encoding="utf-8") == renderer.render(RULES), (
        "deploy/kubernetes/prometheusrule.yaml is stale: run python deploy/prometheus/render_prometheusrule.py")
    documents = {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8"))}
    assert set(documents) == {"ServiceMonitor", "PrometheusRule"}
    rule = documents["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]


def test_the_renderer_notices_a_stale_manifest(tmp_path: Path) -> None:
    renderer = _renderer()
    changed = tmp_path / "alerts.yaml"
    changed.write_text(RULES.read_text(encoding="utf-8").replace("> 900", "> 1800"), encoding="utf-8")
    assert renderer.render(changed) != MANIFEST.read_text(encoding="utf-8")


def test_the_readme_says_what_to_do_for_every_alert() -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("### The alerts"):]
    for rule in _rules():
        row = next((line for line in section.splitlines() if line.startswith(f"| `{rule['alert']}`")), None)
        assert row is not None, f"{rule['alert']} is not described in the README"
        assert f"({rule['labels']['severity']})" in row, rule["alert"]
        assert rule["annotations"]["runbook_url"].removeprefix("README.md") in row, rule["alert"]
