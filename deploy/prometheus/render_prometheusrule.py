"""Write deploy/kubernetes/prometheusrule.yaml from deploy/prometheus/alerts.yaml.

The Prometheus Operator takes rules as a PrometheusRule object; its ``spec.groups`` is exactly a rule file's
``groups``, so the manifest is generated rather than kept by hand (a test checks that it is up to date).

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
# and run that script. The Prometheus Operator loads PrometheusRule objects whose labels match its
# ruleSelector (kube-prometheus-stack's default selects `release: <its release name>`: add that label here
# if yours does). The rules expect the scrape jobs tiktok-audiences-intake and tiktok-audiences-worker
# (a ServiceMonitor's job is its Service's name; a "namespace/" prefix is accepted).
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL expressions) as literal blocks, so the manifest reads like the rule file."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def manifest(rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "tiktok-audiences",
            "labels": {"app.kubernetes.io/name": "tiktok-audiences", "app.kubernetes.io/component": "alerts"},
        },
        "spec": {"groups": rules["groups"]},
    }


def render(rules_path: Path = RULES) -> str:
    rules = yaml.safe_load(rules_path.read_text(encoding="utf-8"))
    body = yaml.dump(manifest(rules), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
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
