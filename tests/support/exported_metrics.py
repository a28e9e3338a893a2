"""The Prometheus series the code exports, read from its source (so it holds wherever a metric is defined).

Every ``Counter``/``Gauge``/``Histogram``/``Summary``/``Info``/``Enum`` call, and every ``*MetricFamily`` a custom
collector yields, with a literal name (or a name held in a module-level string constant) in the project's
packages counts, with the series names prometheus_client derives from it: a counter ``x`` (or ``x_total``) is
scraped as ``x_total`` and ``x_created``, a histogram as ``x_bucket``/``x_count``/``x_sum``, a summary as
``x_count``/``x_sum``, an info as ``x_info``. ``namespace`` and ``subsystem`` arguments are prefixed as
prometheus_client does. The standard process, platform and GC collectors add their series when the code uses
them, and Prometheus adds ``up`` and its scrape series to every target.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("producer", "worker", "sandbox", "tiktok_audiences")

# Labels every scraped series carries (target labels) or that a metric type adds.
TARGET_LABELS = frozenset({"job", "instance"})

# Series Prometheus itself records for each scrape target, and its alert state.
PROMETHEUS_SERIES = {
    name: frozenset() for name in (
        "up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    )
} | {"ALERTS": frozenset({"alertname", "alertstate", "severity"}), "ALERTS_FOR_STATE": frozenset({"alertname"})}

_STANDARD_COLLECTORS: dict[str, dict[str, frozenset[str]]] = {
    "ProcessCollector": dict.fromkeys(
        ("process_cpu_seconds_total", "process_open_fds", "process_max_fds", "process_virtual_memory_bytes",
         "process_resident_memory_bytes", "process_start_time_seconds"), frozenset()),
    "PlatformCollector": {"python_info": frozenset({"implementation", "major", "minor", "patchlevel", "version"})},
    "GCCollector": {
        "python_gc_objects_collected_total": frozenset({"generation"}),
        "python_gc_objects_uncollectable_total": frozenset({"generation"}),
        "python_gc_collections_total": frozenset({"generation"}),
    },
}

_TYPES = frozenset({"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"})
# What custom collectors yield (prometheus_client.core): the same series shapes, labels given as ``labels``.
_FAMILIES = {f"{kind}MetricFamily": kind for kind in ("Counter", "Gauge", "Histogram", "Summary", "Info")}


@dataclass(frozen=True)
class Definition:
    kind: str  # Counter, Gauge, ...
    name: str  # as prometheus_client registers it (namespace and subsystem included, counter _total removed)
    labels: frozenset[str]
    where: str  # file:line


@dataclass
class Exported:
    definitions: list[Definition] = field(default_factory=list)
    series: dict[str, frozenset[str]] = field(default_factory=dict)  # series name -> label names

    def add(self, name: str, labels: frozenset[str]) -> None:
        self.series[name] = self.series.get(name, frozenset()) | labels


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _string(node: ast.AST | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _strings(node: ast.AST | None, constants: dict[str, str]) -> list[str] | None:
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_string(element, constants) for element in node.elts]
        return None if any(v is None for v in values) else [v for v in values if v is not None]
    return None


def _module_constants(tree: ast.Module) -> dict[str, str]:
    constants: dict[str, str] = {}
    for statement in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        for target in targets:
            if isinstance(target, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                constants[target.id] = value.value
    return constants


def definitions_in(source: str, where: str) -> tuple[list[Definition], set[str]]:
    """The metric definitions in one module's source, and the standard collectors it uses."""
    tree = ast.parse(source)
    constants = _module_constants(tree)
    found: list[Definition] = []
    collectors: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = _called_name(node)
        if called in _STANDARD_COLLECTORS:
            collectors.add(called)
        if called not in _TYPES and called not in _FAMILIES:
            continue
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        name = _string(node.args[0] if node.args else keywords.get("name"), constants)
        if name is None:
            continue  # Counter from collections, or a name only known at run time
        if called in _FAMILIES:
            # (name, documentation, value=None, labels=None, ...): labels are the fourth argument.
            labels = _strings(node.args[3] if len(node.args) > 3 else keywords.get("labels"), constants) or []
            called = _FAMILIES[called]
        else:
            labels = _strings(node.args[2] if len(node.args) > 2 else keywords.get("labelnames"), constants) or []
        prefix = [p for p in (_string(keywords.get("namespace"), constants),
                              _string(keywords.get("subsystem"), constants)) if p]
        full = "_".join([*prefix, name])
        if called == "Counter":
            full = full.removesuffix("_total")
        if called == "Enum":
            labels.append(full)
        found.append(Definition(called, full, frozenset(labels), f"{where}:{node.lineno}"))
    return found, collectors


def series_of(definition: Definition) -> dict[str, frozenset[str]]:
    """The series names a scrape shows for one definition, with their label names."""
    name, labels = definition.name, definition.labels
    if definition.kind == "Counter":
        return {f"{name}_total": labels, f"{name}_created": labels}
    if definition.kind == "Histogram":
        return {f"{name}_bucket": labels | {"le"}, f"{name}_count": labels, f"{name}_sum": labels,
                f"{name}_created": labels}
    if definition.kind == "Summary":
        return {name: labels | {"quantile"}, f"{name}_count": labels, f"{name}_sum": labels,
                f"{name}_created": labels}
    if definition.kind == "Info":
        return {f"{name}_info": labels}
    return {name: labels}


def exported(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> Exported:
    result = Exported()
    for name, labels in PROMETHEUS_SERIES.items():
        result.add(name, labels)
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            definitions, collectors = definitions_in(path.read_text(encoding="utf-8"),
                                                     str(path.relative_to(root)))
            result.definitions.extend(definitions)
            for definition in definitions:
                for series, labels in series_of(definition).items():
                    result.add(series, labels)
            for collector in collectors:
                for series, labels in _STANDARD_COLLECTORS[collector].items():
                    result.add(series, labels)
    return result
