"""``tiktok-audiences run``: the whole service on one machine, on embedded defaults.

What is not configured is provided: without ``REDIS_URL`` a local ``redis-server`` (or, when there is none on
PATH, an in-process fake Redis served over TCP); without a TikTok token, the sandbox TikTok API and a
destinations file pointing at it. Intake, a worker and the sandbox run as child processes, exactly as they run
in production, and stop with this command.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import yaml

from core.settings import Settings
from tiktok_audiences.processes import Children, free_port, say, start_redis, stop_like_ctrl_c, wait_for

SANDBOX_TOKEN = "sandbox-token"
SANDBOX_ADVERTISER = "7000000000000000001"
SANDBOX_DESTINATION = "sandbox"


def sandbox_destinations(path: Path) -> None:
    path.write_text(yaml.safe_dump({"destinations": [{
        "id": SANDBOX_DESTINATION,
        "name": "TikTok sandbox",
        "access_token_env": "TIKTOK_ACCESS_TOKEN",
        "advertiser_ids": [SANDBOX_ADVERTISER],
        "native": {"advertiser_id": SANDBOX_ADVERTISER, "auto_create": True},
        "mappings": [{"action": "addToAudience"}, {"action": "removeFromAudience"}],
    }]}, sort_keys=False))


def run_stack(settings: Settings, *, demo: bool, once: bool, users: int, port: int) -> int:
    from producer.http import StartupError, ensure_port_free

    if port == 0:  # a free port, chosen here so the intake's address can be printed and used
        port = free_port()
    try:
        ensure_port_free("127.0.0.1", port)
    except StartupError as exc:
        say(str(exc))
        return 2
    stop_like_ctrl_c()
    workdir = Path(tempfile.mkdtemp(prefix="tiktok-audiences-"))
    env = dict(os.environ)
    with ExitStack() as stack:
        if not os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = start_redis(stack, workdir)
        config_path = Path(settings.config_path)
        use_sandbox = not config_path.exists() and not os.environ.get("TIKTOK_ACCESS_TOKEN")
        children = Children(workdir, env)
        stack.callback(children.stop)
        sandbox_url = ""
        if use_sandbox:
            sandbox_port = free_port()
            sandbox_url = f"http://127.0.0.1:{sandbox_port}"
            env.update({"TIKTOK_API_BASE_URL": sandbox_url, "TIKTOK_ACCESS_TOKEN": SANDBOX_TOKEN,
                        "TTA_SANDBOX_TOKENS": SANDBOX_TOKEN, "TTA_CONFIG": str(workdir / "destinations.yaml")})
            sandbox_destinations(workdir / "destinations.yaml")
            children.start("sandbox", "sandbox", "--port", str(sandbox_port))
            from sandbox.admin import SandboxAdmin

            wait_for(lambda: SandboxAdmin(sandbox_url).state() is not None, 20, "the sandbox TikTok API")
            say(f"no TikTok token configured: sandbox TikTok API on {sandbox_url}")
        elif not config_path.exists():
            say(f"destinations file {config_path} not found (set TTA_CONFIG)")
            return 2
        write_key = env.get("TTA_WRITE_KEY") or secrets.token_urlsafe(16)
        env["TTA_WRITE_KEY"] = write_key
        env.setdefault("TTA_FLUSH_INTERVAL", "1")
        children.start("worker", "worker", "--concurrency", "2")
        children.start("intake", "serve", "--port", str(port))
        intake_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(intake_url), 20, "intake")
        children.check()  # the answer came from this stack's intake, not from one that failed to start
        say(f"intake on {intake_url} (write key: {write_key}); logs in {workdir}")
        from tiktok_audiences.demo import DemoRun

        run = DemoRun(intake_url=intake_url, write_key=write_key, redis_url=env["REDIS_URL"],
                      sandbox_url=sandbox_url, users=users, settings=settings)
        if demo:
            run.feed()
        if once:
            return run.wait_until_delivered(children.check)
        say("running; Ctrl-C to stop")
        try:
            while True:
                children.check()
                run.report(only_changes=True)
                time.sleep(2)
        except KeyboardInterrupt:
            say("stopping")
            return 0
    return 0


def _healthy(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
        return bool(response.status == 200)
