"""A fleet of workers, run the way a deployment runs them: probes and metrics, a scheduler that dies, a stop
asked for in the middle of a batch, one scheduler for many workers."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.events import Events, settle, statuses, wait_until
from tests.support.stack import Stack
from tiktok_audiences.local_stack import ServiceProcess, free_port
from worker.scheduler_lease import LEASE_KEY

pytestmark = pytest.mark.integration

PROMTOOL = shutil.which("promtool")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def worker_with_probes(stack: Stack, **env: str) -> tuple[ServiceProcess, str]:
    port = free_port()
    process = stack.start_worker(TTA_WORKER_METRICS_PORT=str(port), **env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: get(url + "/healthz")[0] == 200, 40, message="the worker to say it is alive")
    return process, url


def scheduler_pids(process: ServiceProcess) -> list[int]:
    """The worker's scheduler child (a spawned interpreter, unlike the pool's forked children)."""
    found = []
    for pid in process.children():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.spawn" in cmdline or b"spawn_main" in cmdline:
            found.append(pid)
    return found


def promtool_check(text: str) -> None:
    if PROMTOOL is None:
        return
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=30)
    # promtool exits 1 for lint findings too; only real problems fail here (units, names are linted).
    assert done.returncode == 0 or "error" not in done.stderr.lower(), done.stderr


def test_a_worker_serves_metrics_liveness_and_readiness(stack: Stack) -> None:
    events = Events(stack, audiences=2)
    stack.start_intake()
    _, url = worker_with_probes(stack)
    assert get(url + "/readyz") == (200, '{"ready":true}')
    events.post(events.everyone_enters(range(40)))
    settle(stack)
    events.assert_delivered_exactly()

    status, text = get(url + "/metrics")
    assert status == 200
    assert 'tta_batches_total{outcome="delivered"}' in text
    # Rows on the wire: a user entering both audiences is one row whose cells name both.
    sent = sum(c["rows"] for c in stack.sandbox.calls() if c["code"] == 0 and c["action"] == "add")
    assert 40 <= sent <= 80
    assert f'tta_rows_total{{action="add"}} {float(sent)}' in text
    assert 'tta_tiktok_requests_total{code="0",endpoint="segment/mapping"}' in text
    assert 'tta_tiktok_request_duration_seconds_bucket{endpoint="segment/mapping",le="0.5"}' in text
    for gauge in ("tta_backlog_operations 0.0", "tta_due_targets 0.0", "tta_oldest_due_age_seconds",
                  "tta_paused_destinations 0.0", "tta_throttled_tokens 0.0", "tta_scheduler_active 1.0",
                  "tta_drain_queue_tasks",
                  "process_resident_memory_bytes"):
        assert gauge in text, gauge
    promtool_check(text)

    # Intake: probes and scrapes are not traffic; requests are timed.
    for _ in range(3):
        get(stack.intake_url + "/healthz")
    intake_status, intake_text = get(stack.intake_url + "/metrics")
    assert intake_status == 200
    assert 'route="/healthz"' not in intake_text
    assert 'tta_intake_request_duration_seconds_count{route="/v1/batch"}' in intake_text
    assert "process_cpu_seconds_total" in intake_text
    promtool_check(intake_text)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian's prometheus package)")
def test_promtool_accepts_both_expositions(stack: Stack) -> None:
    stack.start_intake()
    _, url = worker_with_probes(stack)
    for text in (get(url + "/metrics")[1], get(stack.intake_url + "/metrics")[1]):
        done = subprocess.run([str(PROMTOOL), "check", "metrics"], input=text, capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_killed_scheduler_is_started_again_and_delivery_resumes(stack: Stack) -> None:
    events = Events(stack, audiences=2)
    stack.start_intake()
    worker, url = worker_with_probes(stack)
    [first] = wait_until(lambda: scheduler_pids(worker), 20, message="the scheduler child")
    events.post(events.everyone_enters(range(10)))
    settle(stack)

    subprocess.run(["kill", "-9", str(first)], check=True)
    killed = time.monotonic()
    second = wait_until(lambda: [p for p in scheduler_pids(worker) if p != first], 10,
                        interval=0.1, message="a new scheduler")
    noticed = time.monotonic() - killed
    events.post(events.everyone_enters(range(10, 60)))
    settle(stack)
    events.assert_delivered_exactly()
    assert worker.process is not None and worker.process.poll() is None
    assert "scheduler_died_restarting" in worker.log_path.read_text()
    assert "tta_scheduler_restarts_total 1.0" in get(url + "/metrics")[1]
    assert get(url + "/healthz")[0] == 200
    print(f"scheduler {first} killed; {second} running {noticed:.1f} s later")


@pytest.mark.parametrize("to_group", [False, True], ids=["sigterm-to-main-pid", "sigterm-to-process-group"])
@pytest.mark.parametrize("grace, latency_ms, handed_back", [("20", 300, False), ("0", 1500, True)],
                         ids=["batches-in-flight-finish", "past-the-grace-they-are-handed-back"])
def test_sigterm_mid_batch_stops_cutting_exits_0_and_loses_nothing(stack: Stack, to_group: bool, grace: str,
                                                                   latency_ms: int, handed_back: bool) -> None:
    events = Events(stack, audiences=4)
    stack.sandbox.knobs(latency_ms=latency_ms)  # every call is in flight this long
    stack.start_intake()
    worker = stack.start_worker(TTA_BATCH_SIZE="10", TTA_SHUTDOWN_GRACE=grace)
    events.post(events.everyone_enters(range(200)))

    def in_flight() -> bool:
        return "delivering" in statuses(stack).values()

    wait_until(in_flight, 30, interval=0.05, message="a batch in flight")
    assert worker.process is not None
    asked = time.monotonic()
    if to_group:
        worker.stop(signal.SIGTERM, timeout=60)
    else:
        worker.process.send_signal(signal.SIGTERM)
        worker.process.wait(60)
    took = time.monotonic() - asked
    assert worker.process.returncode == 0, worker.tail()
    log = worker.log_path.read_text()
    assert "Traceback" not in log, worker.tail()
    assert "shutdown_requested" in log
    # With a grace, the batches in flight finish; past it (0 here) they are cancelled and handed back.
    assert ("drain_handed_back" in log) is handed_back, worker.tail()
    cut_by_then = len(statuses(stack))
    assert cut_by_then < 80  # 4 audiences x 200 users in batches of 10: it stopped cutting

    stack.sandbox.knobs(latency_ms=0)
    stack.start_worker(TTA_BATCH_SIZE="10")
    settle(stack, timeout=90)
    events.assert_delivered_exactly()  # what was handed back was resent, with the same batch ids
    print(f"stopped {took:.1f} s after SIGTERM (grace {grace} s, calls of {latency_ms} ms); "
          f"{cut_by_then} batches cut by then, {len(statuses(stack))} in all")


def test_one_scheduler_schedules_for_many_workers_and_a_standby_takes_over(stack: Stack) -> None:
    events = Events(stack, audiences=2)
    stack.start_intake()
    first, first_url = worker_with_probes(stack, TTA_SCHEDULER_LEASE_TTL="2")
    second, second_url = worker_with_probes(stack, TTA_SCHEDULER_LEASE_TTL="2")
    holder = wait_until(lambda: stack.redis.get(LEASE_KEY), 10, message="a lease holder").decode()

    def active(url: str) -> bool:
        return "tta_scheduler_active 1.0" in get(url + "/metrics")[1]

    assert [active(first_url), active(second_url)].count(True) == 1
    assert holder.split(":")[-1] in {str(p) for w in (first, second) for p in scheduler_pids(w)}
    # The holder's worker goes away; the other worker's scheduler takes over within the lease's TTL.
    leader, standby, standby_url = (first, second, second_url) if active(first_url) else (second, first, first_url)
    leader.stop()
    wait_until(lambda: active(standby_url), 10, message="the standby to take the lease")
    events.post(events.everyone_enters(range(30)))
    settle(stack)
    events.assert_delivered_exactly()
    assert standby.process is not None and standby.process.poll() is None


def test_workers_without_a_scheduler_and_a_scheduler_role(stack: Stack) -> None:
    events = Events(stack, audiences=2)
    stack.start_intake()
    port = free_port()
    shared = stack.workdir / "metrics-of-an-intake"  # a folder named in an environment shared with intake
    shared.mkdir()
    scheduler = ServiceProcess("scheduler", ["scheduler", "--metrics-port", str(port)],
                               {**stack.env, "PROMETHEUS_MULTIPROC_DIR": str(shared)}, stack.workdir).start()
    stack.processes.append(scheduler)
    wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 30, message="the scheduler role")
    events.post(events.everyone_enters(range(20)))
    time.sleep(1.0)
    text = get(f"http://127.0.0.1:{port}/metrics")[1]
    assert text.count("tta_due_targets 1.0") == 1  # no worker yet: the signal that starts one (the lane of both)
    assert "tta_scheduler_active 1.0" in text
    assert list(shared.iterdir()) == []  # the scheduler keeps its own metrics in memory
    worker = stack.start_worker(TTA_WORKER_SCHEDULER="false")
    settle(stack)
    events.assert_delivered_exactly()
    assert scheduler_pids(worker) == []
    scheduler.stop()
    assert scheduler.process is not None and scheduler.process.returncode == 0


def test_flower_sees_each_worker_by_its_own_name(stack: Stack) -> None:
    pytest.importorskip("flower")
    import json
    import os
    import sys

    first = stack.start_worker(TTA_TASK_EVENTS="true")
    second = stack.start_worker(TTA_TASK_EVENTS="true")
    port = free_port()
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "--broker", stack.env["REDIS_URL"], "flower", f"--port={port}",
         "--address=127.0.0.1"], env={**stack.env, "FLOWER_UNAUTHENTICATED_API": "true"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def online() -> set[str]:
            """Workers the dashboard shows online: from their events and heartbeats, not a broadcast."""
            status, body = get(f"http://127.0.0.1:{port}/workers?json=1")
            if status != 200:
                return set()
            return {w["hostname"] for w in json.loads(body)["data"] if w.get("status")}

        names = wait_until(lambda: len(online()) >= 2 and online(), 60, interval=1, message="Flower to see workers")
        assert len(names) == 2 and all(name.startswith("tta-") for name in names)
        assert {int(name.split("@")[0].removeprefix("tta-")) for name in names} == {
            p.process.pid for p in (first, second) if p.process is not None}
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(10)


def test_pointed_at_a_replica_intake_and_worker_say_they_are_not_ready(stack: Stack) -> None:
    """A Redis that answers PING but refuses writes (here a replica of the session's Redis) fails readiness:
    a load balancer stops sending events there instead of every one of them failing."""
    port = free_port()
    replica = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--replicaof", "127.0.0.1", str(stack.redis_server.port), "--dir", str(stack.workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stack.env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        stack.start_intake()
        status, body = get(stack.intake_url + "/readyz")
        assert status == 503 and "read only replica" in body
        metrics_port = free_port()
        stack.start_worker(TTA_WORKER_METRICS_PORT=str(metrics_port))
        url = f"http://127.0.0.1:{metrics_port}/readyz"
        answer = wait_until(lambda: get(url), 40, message="the worker's probes")
        assert answer[0] == 503 and "read only replica" in answer[1]
    finally:
        stack.stop()
        replica.terminate()
        replica.wait(10)


@pytest.mark.parametrize("role", ["worker", "scheduler"])
def test_a_metrics_port_already_taken_is_a_clear_error(stack: Stack, role: str) -> None:
    import socket
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tiktok_audiences", role, "--metrics-port", str(port)],
                              env={**stack.env, "TTA_WORKER_METRICS_HOST": "127.0.0.1"}, capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 2
    assert f"cannot serve probes and metrics on port {port}" in done.stderr
