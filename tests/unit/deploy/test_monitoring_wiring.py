"""The monitoring files fit the deployment they watch: compose's `monitoring` profile mounts them where they
point at each other, Prometheus scrapes every role on the port it listens on, and on Kubernetes the
ServiceMonitor finds the Services whose names are the job names the rules and the dashboard select on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
KUBERNETES = DEPLOY / "kubernetes"
ROLES = ("intake", "worker", "scheduler")


def _compose() -> dict[str, Any]:
    assert COMPOSE.exists(), "deploy/compose.yaml (with its `monitoring` profile) is missing"
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to deploy/) of a compose service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        found[target] = source
    return found


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _manifests() -> list[dict[str, Any]]:
    return [doc for path in sorted(KUBERNETES.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def test_compose_mounts_the_rules_beside_the_prometheus_config() -> None:
    prometheus = _compose()["services"]["prometheus"]
    assert "monitoring" in prometheus["profiles"]
    mounts = _mounts(prometheus)
    config = next(arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--config.file="))
    assert Path(mounts[config]) == Path("prometheus/prometheus.yml")
    rule_files = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))["rule_files"]
    for rule_file in rule_files:
        assert Path(mounts[str(Path(config).parent / rule_file)]) == Path("prometheus") / rule_file


def test_compose_provisions_grafana_with_the_dashboard_where_the_provider_looks() -> None:
    grafana = _compose()["services"]["grafana"]
    assert "monitoring" in grafana["profiles"]
    mounts = _mounts(grafana)
    assert Path(mounts["/etc/grafana/provisioning"]) == Path("grafana/provisioning")
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/tiktok-audiences.yaml").read_text())
    folder = provider["providers"][0]["options"]["path"]
    assert Path(mounts[f"{folder}/tiktok-audiences.json"]) == Path("grafana/tiktok-audiences.json")
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    host, port = re.match(r"http://([^:/]+):(\d+)", datasource["datasources"][0]["url"]).groups()  # type: ignore[union-attr]
    assert host in _compose()["services"]
    assert f"{port}:{port}" in _compose()["services"][host].get("ports", []) or port == "9090"


def test_prometheus_scrapes_every_role_on_the_port_compose_runs_it_on() -> None:
    services = _compose()["services"]
    jobs = {job["job_name"]: job for job in yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"]}
    for role in ROLES:
        job = jobs[f"tiktok-audiences-{role}"]
        (sd,) = job["dns_sd_configs"]
        (service_name,) = sd["names"]
        command = services[service_name]["command"]
        assert command[0] == ("serve" if role == "intake" else role)
        listens = _flag(command, "--port") if role == "intake" else _flag(command, "--metrics-port")
        assert int(listens) == sd["port"], role


def test_the_service_monitor_scrapes_each_role_under_the_job_name_the_rules_use() -> None:
    documents = _manifests()
    (monitor,) = [d for d in documents if d["kind"] == "ServiceMonitor"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped_ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    for role in ROLES:
        service = services.get(f"tiktok-audiences-{role}")
        assert service is not None, f"no Service tiktok-audiences-{role} (the job name the rules select on)"
        labels = service["metadata"].get("labels", {})
        assert selector.items() <= labels.items(), f"the ServiceMonitor does not select {role}'s Service"
        assert {port.get("name") for port in service["spec"]["ports"]} & scraped_ports, role
