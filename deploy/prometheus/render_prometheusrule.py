"""Write deploy/kubernetes/prometheusrule.yaml from deploy/prometheus/alerts.yaml.

The Prometheus Operator takes rules as a PrometheusRule object; its ``spec.groups`` is exactly a rule file's
``groups``, so the manifest is generated rather than kept by hand (a test checks that it is up to date). Beside
it goes the ServiceMonitor that makes the Operator scrape intake, workers and scheduler under the job names the
rules select on (a ServiceMonitor's job is the Service's name).

    python deploy/prometheus/render_prometheusrule.py           # rewrite the manifest
    python deploy/prometheus/render_prometheusrule.py --check   # exit 1 if the manifest is stale
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "alerts.yaml"
MANIFEST = HERE.parent / "kubernetes" / "prometheusrule.yaml"

HEADER = """\
# Generated from deploy/prometheus/alerts.yaml by deploy/prometheus/render_prometheusrule.py: edit the rule file
# and run that script. For the Prometheus Operator (its CRDs must be installed): a ServiceMonitor scraping the
# intake, worker and scheduler Services (the job of each target is its Service's name, which is what the rules
# select on) and the PrometheusRule. The Operator picks up objects whose labels match its serviceMonitorSelector
# and ruleSelector (kube-prometheus-stack selects `release: <its release name>`: add that label if yours does).
"""

SELECTOR = {"app.kubernetes.io/name": "tiktok-audiences"}
# The Services' port names (deploy/kubernetes/*.yaml): intake serves /metrics on its HTTP port, the workers
# and the scheduler on their metrics port. A Service without a port of that name is simply not scraped on it.
SCRAPED_PORTS = ("http", "metrics")
SCRAPE_INTERVAL = "15s"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL expressions) as literal blocks, so the manifest reads like the rule file."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def service_monitor() -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": "tiktok-audiences",
            "labels": {**SELECTOR, "app.kubernetes.io/component": "monitoring"},
        },
        "spec": {
            "selector": {"matchLabels": dict(SELECTOR)},
            "endpoints": [{"port": port, "path": "/metrics", "interval": SCRAPE_INTERVAL} for port in SCRAPED_PORTS],
        },
    }


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "tiktok-audiences",
            "labels": {**SELECTOR, "app.kubernetes.io/component": "alerts"},
        },
        "spec": {"groups": rules["groups"]},
    }


def render(rules_path: Path = RULES) -> str:
    rules = yaml.safe_load(rules_path.read_text(encoding="utf-8"))
    body = yaml.dump_all([service_monitor(), prometheus_rule(rules)], Dumper=_Dumper, sort_keys=False, width=120,
                         allow_unicode=True, explicit_start=True)
    return HEADER + body


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not MANIFEST.exists() or MANIFEST.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{MANIFEST} is stale: run python {Path(__file__).relative_to(Path.cwd())}\n")
            return 1
        return 0
    MANIFEST.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
