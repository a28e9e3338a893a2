"""``tiktok-audiences run``: the whole service on one machine, on embedded defaults.

What is not configured is provided: without ``REDIS_URL`` a local ``redis-server`` (or, when there is none on
PATH, an in-process fake Redis served over TCP); without a TikTok token, the sandbox TikTok API and a
destinations file pointing at it. Intake, a worker and the sandbox run as child processes, exactly as they run
in production (:mod:`tiktok_audiences.local_stack`), and stop with this command.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

from core.settings import Settings
from tiktok_audiences.local_stack import LocalStack, free_port, say, stop_like_ctrl_c


def port_refused(port: int) -> str | None:
    """Why intake could not listen on ``port``, or None when it can (intake's own check, asked before
    anything is started)."""
    from producer.http import StartupError, ensure_port_free

    try:
        ensure_port_free("127.0.0.1", port)
    except StartupError as exc:
        return str(exc)
    return None


def run_stack(settings: Settings, *, demo: bool, once: bool, users: int, port: int) -> int:
    if port == 0:  # a free port, chosen here so the intake's address can be printed and used
        port = free_port()
    refused = port_refused(port)
    if refused:
        say(refused)
        return 2
    stop_like_ctrl_c()
    workdir = Path(tempfile.mkdtemp(prefix="tiktok-audiences-"))
    with LocalStack(workdir, dict(os.environ)) as stack:
        if not stack.redis_url:
            url = stack.start_redis(allow_fake=True)
            where = url.removeprefix("redis://").removesuffix("/0")
            say(f"started redis-server on {where}" if stack.redis_server
                else f"no redis-server on PATH: serving an in-process fake Redis on {where}")
        config_path = Path(settings.config_path)
        use_sandbox = not config_path.exists() and not os.environ.get("TIKTOK_ACCESS_TOKEN")
        if use_sandbox:
            stack.start_sandbox()
            stack.use_sandbox()
            say(f"no TikTok token configured: sandbox TikTok API on {stack.sandbox_url}")
        elif not config_path.exists():
            say(f"destinations file {config_path} not found (set TTA_CONFIG)")
            return 2
        write_key = stack.env.get("TTA_WRITE_KEY") or secrets.token_urlsafe(16)
        stack.env["TTA_WRITE_KEY"] = write_key
        stack.env.setdefault("TTA_FLUSH_INTERVAL", "1")
        stack.start_worker(2)
        stack.start_intake(port)
        say(f"intake on {stack.intake_url} (write key: {write_key}); logs in {workdir}")
        from tiktok_audiences.demo import DemoRun

        run = DemoRun(intake_url=stack.intake_url, write_key=write_key, redis_url=stack.redis_url,
                      sandbox_url=stack.sandbox_url, users=users, settings=settings)
        if demo:
            run.feed()
        if once:
            return run.wait_until_delivered(stack.check)
        say("running; Ctrl-C to stop")
        try:
            while True:
                stack.check()
                run.report(only_changes=True)
                time.sleep(2)
        except KeyboardInterrupt:
            say("stopping")
            return 0
