"""The deployment files agree with the code: every command they run exists, every setting they set is one the
code reads, ports and probes are the ones served, stop grace outlasts the worst-case drain, the autoscaler
queries a metric the code exports, and the Kubernetes files pass schema validation."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import yaml
from packaging.requirements import Requirement
from prometheus_client import CollectorRegistry, generate_latest

from core.settings import Settings
from tiktok_audiences.cli import build_parser
from worker.metrics import FleetCollector

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
# Read by code other than Settings: the token (named by the destinations file), the sandbox's own settings,
# prometheus_client's folder for multiprocess metrics.
OTHER_ENV = {"TIKTOK_ACCESS_TOKEN", "PROMETHEUS_MULTIPROC_DIR"}
SANDBOX_ENV = re.compile(r"^TTA_SANDBOX_[A-Z_]+$")
WORST_STOP = Settings().shutdown_grace + 3  # worker.shutdown: the grace, then cancelling and exiting


def settings_env() -> set[str]:
    return {field.alias for field in Settings.model_fields.values() if field.alias}


def known_env(name: str) -> bool:
    return name in settings_env() or name in OTHER_ENV or bool(SANDBOX_ENV.match(name))


def parses(args: list[str]) -> Any:
    """The CLI's reading of ``args`` (fails the test on an unknown command or option)."""
    try:
        return build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"`tiktok-audiences {' '.join(args)}` is not a command the CLI takes")


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def seconds(value: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", value)
    assert match, value
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def exported_fleet_metrics() -> set[str]:
    registry = CollectorRegistry()
    registry.register(FleetCollector(fakeredis.FakeRedis(), dict, lease=50))
    return {line.split()[2] for line in generate_latest(registry).decode().splitlines() if line.startswith("# TYPE")}


# -- Dockerfile and lock -----------------------------------------------------------------------------------


def dockerfile() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_the_image_is_multi_stage_non_root_and_installs_from_the_lock_with_hashes() -> None:
    lines = dockerfile()
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    user = [line for line in lines if line.startswith("USER ")][-1].split()[1]
    assert user.split(":")[0] not in ("0", "root")
    assert any("--require-hashes" in line and "requirements.lock" in line for line in lines)
    assert any(line.startswith("COPY deploy/requirements.lock") for line in lines)


def test_every_file_the_image_copies_exists_and_every_package_is_copied() -> None:
    copied = set()
    for line in dockerfile():
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), source
                copied.add(source)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert package.rstrip("*") in copied, package


def test_the_images_default_command_is_a_command_of_the_cli() -> None:
    lines = dockerfile()
    entrypoint = yaml.safe_load([line for line in lines if line.startswith("ENTRYPOINT")][-1].split(None, 1)[1])
    command = yaml.safe_load([line for line in lines if line.startswith("CMD")][-1].split(None, 1)[1])
    assert entrypoint == ["tiktok-audiences"]
    parses(command)
    exposed = {int(p) for line in lines if line.startswith("EXPOSE") for p in line.split()[1:]}
    assert int(option(command, "--port") or 0) in exposed


def locked(lock: str = "requirements.lock") -> dict[str, tuple[str, int]]:
    """Package -> (version, number of hashes) in a lock file of deploy/."""
    found: dict[str, tuple[str, int]] = {}
    name = ""
    for line in (DEPLOY / lock).read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-]+)==([^ \\]+)", line):
            name = match.group(1).lower().replace("_", "-")
            found[name] = (match.group(2), 0)
        elif "--hash=sha256:" in line and name:
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
    return found


def test_the_lock_pins_every_dependency_with_hashes_at_versions_the_project_accepts() -> None:
    pins = locked()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in pyproject["dependencies"] + pyproject["optional-dependencies"]["flower"]:
        requirement = Requirement(spec)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in deploy/requirements.lock (uv pip compile again)"
        assert requirement.specifier.contains(pins[name][0]), (name, pins[name][0], str(requirement.specifier))
    assert all(hashes for _, hashes in pins.values())


def test_the_build_lock_pins_what_building_the_project_needs() -> None:
    pins = locked("build-requirements.lock")
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]:
        requirement = Requirement(spec)
        assert requirement.specifier.contains(pins[requirement.name.lower()][0]), spec
    assert all(hashes for _, hashes in pins.values())


# -- compose -----------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


def app_services() -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose()["services"].items()
            if "tiktok-audiences" in str(service.get("image", ""))}


def test_compose_runs_intake_scheduler_workers_and_a_sandbox_profile_with_real_commands() -> None:
    services = app_services()
    assert {"intake", "scheduler", "worker", "sandbox"} <= set(services)
    assert services["sandbox"]["profiles"] == ["sandbox"]
    for service in services.values():
        parses(service["command"])
    assert "--no-scheduler" in services["worker"]["command"]  # the scheduler service schedules


def test_compose_sets_only_settings_the_code_reads() -> None:
    for name, service in app_services().items():
        for variable in service.get("environment", {}):
            assert known_env(variable), f"{name}: {variable} is read by nothing"


def test_compose_redis_persists_and_never_evicts() -> None:
    command = " ".join(compose()["services"]["redis"]["command"])
    for flag in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert flag in command


def test_compose_gives_a_worker_longer_to_stop_than_its_worst_case_drain() -> None:
    worker = app_services()["worker"]
    grace = float(worker["environment"].get("TTA_SHUTDOWN_GRACE", Settings().shutdown_grace))
    assert seconds(worker["stop_grace_period"]) > grace + 3
    assert seconds(worker["stop_grace_period"]) > WORST_STOP


def test_compose_healthchecks_ask_the_ports_the_commands_serve() -> None:
    for name, service in app_services().items():
        if "healthcheck" not in service:
            continue
        port = option(service["command"], "--port") or option(service["command"], "--metrics-port")
        assert f"127.0.0.1:{port}/" in " ".join(service["healthcheck"]["test"]), name


def test_the_monitoring_profile_mounts_the_prometheus_and_grafana_files() -> None:
    services = compose()["services"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for path in ("./prometheus/prometheus.yml", "./prometheus/alerts.yaml", "./grafana/provisioning",
                 "./grafana/tiktok-audiences.json"):
        assert path in mounts


# -- Kubernetes --------------------------------------------------------------------------------------------


def kube_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "prometheusrule.yaml"):
            continue
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in kube_docs() if doc["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def settings_map() -> dict[str, str]:
    return dict(of_kind("ConfigMap")["tiktok-audiences-settings"]["data"])


@pytest.mark.skipif(shutil.which("kubernetes-validate") is None and not (Path(sys.executable).parent /
                    "kubernetes-validate").exists(), reason="kubernetes-validate is not installed (dev extra)")
def test_the_kubernetes_files_pass_strict_schema_validation() -> None:
    binary = shutil.which("kubernetes-validate") or str(Path(sys.executable).parent / "kubernetes-validate")
    files = [str(p) for p in sorted(KUBE.glob("*.yaml")) if p.name != "kustomization.yaml"]
    done = subprocess.run([binary, "--strict", "--quiet", *files], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_kustomization_lists_every_manifest_but_the_examples() -> None:
    listed = set(yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml",
                                                        "prometheusrule.yaml"}
    assert listed == present


def test_every_deployment_runs_a_cli_command_on_the_port_its_probes_ask() -> None:
    deployments = of_kind("Deployment")
    assert {"tiktok-audiences-intake", "tiktok-audiences-worker", "tiktok-audiences-scheduler"} == set(deployments)
    for name, deployment in deployments.items():
        main = container(deployment)
        args = main["args"]
        parses(args)
        port = option(args, "--port") or option(args, "--metrics-port") or settings_map()["TTA_WORKER_METRICS_PORT"]
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            http = main[probe]["httpGet"]
            assert ports[http["port"]] == int(port), (name, probe)
        # Liveness never depends on Redis: /healthz asks the process; /readyz is the one that proves Redis.
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert main["resources"]["requests"]["cpu"] and main["resources"]["requests"]["memory"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_settings_configmap_sets_only_settings_the_code_reads() -> None:
    for variable in settings_map():
        assert known_env(variable), variable
    Settings(**settings_map())  # and the values are valid


def test_a_worker_pod_outlasts_its_worst_case_drain() -> None:
    worker = of_kind("Deployment")["tiktok-audiences-worker"]
    grace = float(settings_map().get("TTA_SHUTDOWN_GRACE", Settings().shutdown_grace))
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > max(grace + 3, 30)


def test_every_workload_has_a_disruption_budget_that_selects_it() -> None:
    budgets = of_kind("PodDisruptionBudget")
    for name, deployment in of_kind("Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
                   for budget in budgets.values()), name


def test_keda_scales_workers_to_zero_on_a_metric_the_code_exports() -> None:
    [scaled] = of_kind("ScaledObject").values()
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "tiktok-audiences-worker"
    assert spec["minReplicaCount"] == 0
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus"
    queried = set(re.findall(r"\btta_[a-z_]+", trigger["metadata"]["query"]))
    assert queried == {"tta_due_targets"} and queried <= exported_fleet_metrics()
    assert float(trigger["metadata"]["threshold"]) > 0
    # Scale to zero needs scheduling outside the workers: they run without one, a scheduler role runs apart.
    assert "--no-scheduler" in container(of_kind("Deployment")["tiktok-audiences-worker"])["args"]
    assert of_kind("Deployment")["tiktok-audiences-scheduler"]["spec"]["replicas"] >= 1


# -- systemd -----------------------------------------------------------------------------------------------


def test_the_systemd_units_run_cli_commands_and_outlast_the_drain() -> None:
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text()
        [exec_start] = re.findall(r"^ExecStart=(.+)$", text, re.M)
        binary, *args = exec_start.split()
        assert binary.endswith("/bin/tiktok-audiences")
        parses(args)
        if stop := re.search(r"^TimeoutStopSec=(\d+)$", text, re.M):
            assert int(stop.group(1)) > WORST_STOP


# -- README ------------------------------------------------------------------------------------------------

RUNBOOKS = ("dead batches", "paused destination", "throttled token", "backlog growing", "no workers",
            "intake errors")


def test_the_readme_configuration_reference_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    reference = readme.split("### Configuration reference", 1)[1].split("\n## ", 1)[0]
    for variable in sorted(settings_env()):
        assert f"`{variable}`" in reference, f"{variable} is missing from the README's configuration reference"


def test_the_readme_has_the_runbooks_alerts_link_to() -> None:
    headings = set(re.findall(r"^### (.+)$", (ROOT / "README.md").read_text(), re.M))
    for runbook in RUNBOOKS:
        assert f"Runbook: {runbook}" in headings
