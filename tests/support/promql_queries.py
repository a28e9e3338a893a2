"""The PromQL the alert rules and the Grafana dashboard run, and the series and labels each query reads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

# Grafana fills these in before a query reaches Prometheus; any valid duration stands in for them here.
_GRAFANA_DURATIONS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)}")
_GRAFANA_VARIABLE = re.compile(r"\$\{?[A-Za-z_]\w*(?::\w+)?}?")
# label_values(metric, label) / label_values(label): Grafana's variable queries, not PromQL.
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<metric>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$")
_RELABELLING = frozenset({"label_replace", "label_join"})


@dataclass(frozen=True)
class Query:
    where: str
    expr: str


@dataclass(frozen=True)
class Read:
    """What one query reads: a series name, the labels it filters on, and the labels it groups by."""

    series: str | None
    filtered: frozenset[str]
    grouped: frozenset[str]


def rule_queries(path: Path) -> list[Query]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [Query(f"{path.name}: {rule.get('alert') or rule.get('record')}", rule["expr"])
            for group in doc["groups"] for rule in group["rules"]]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(path: Path) -> list[Query]:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    found = [Query(f"{path.name}: panel {panel.get('title')!r} {target.get('refId', '')}", target["expr"])
             for panel in panels(dashboard) for target in panel.get("targets", []) if target.get("expr")]
    found += [Query(f"{path.name}: annotation {annotation.get('name')!r}", annotation["expr"])
              for annotation in dashboard.get("annotations", {}).get("list", []) if annotation.get("expr")]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text or "")
        if match and match.group("metric"):
            found.append(Query(f"{path.name}: variable {variable['name']}", match.group("metric")))
        elif text and not match:
            found.append(Query(f"{path.name}: variable {variable['name']}", text))
    return found


def as_promql(expr: str) -> str:
    """A Grafana query as Prometheus would receive it: interval variables become a duration, and other
    variables (used in label matchers, e.g. ``destination=~"$destination"``) a regular expression."""
    expr = _GRAFANA_DURATIONS.sub("5m", expr)
    return _GRAFANA_VARIABLE.sub(".*", expr)


def reads(expr: str) -> list[Read]:
    tree = promql_parser.parse(as_promql(expr))
    found: list[Read] = []

    def selectors_under(node: Any) -> tuple[list[Any], bool]:
        """The vector selectors below ``node``, and whether labels may come from elsewhere than them (a nested
        aggregation or a relabelling function rewrites them)."""
        below: list[Any] = []
        rewritten = False
        aggregations = 0  # the walk starts at ``node`` itself (a fresh wrapper object, so counted, not compared)

        def visit(inner: Any) -> None:
            nonlocal rewritten, aggregations
            if isinstance(inner, promql_parser.VectorSelector):
                below.append(inner)
            elif isinstance(inner, promql_parser.AggregateExpr):
                aggregations += 1
                rewritten = rewritten or aggregations > 1
            elif isinstance(inner, promql_parser.Call) and inner.func.name in _RELABELLING:
                rewritten = True

        promql_parser.walk(node, pre_visit=visit)
        return below, rewritten

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            name = node.name or next((m.value for m in matchers if m.name == "__name__"), None)
            filtered = frozenset(m.name for m in matchers if m.name != "__name__")
            found.append(Read(name, filtered, frozenset()))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            below, rewritten = selectors_under(node)
            if not rewritten and len({s.name for s in below}) == 1:
                found.append(Read(below[0].name, frozenset(), frozenset(node.modifier.labels)))

    promql_parser.walk(tree, pre_visit=visit)
    return found
