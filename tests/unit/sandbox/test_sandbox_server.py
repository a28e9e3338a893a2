"""Running the sandbox: configuration from the environment, independent background instances, and the
``python -m sandbox`` process integration tests start."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from sandbox import SandboxAdmin, SandboxConfig, SandboxThread
from sandbox.config import DEFAULT_ADVERTISERS, DEFAULT_TOKEN
from tests.support.sandbox import ADVERTISER, Api

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_default_config_has_one_token_granted_two_advertisers() -> None:
    assert dict(SandboxConfig.from_env({}).tokens) == {DEFAULT_TOKEN: DEFAULT_ADVERTISERS}


def test_tokens_and_advertisers_come_from_the_environment() -> None:
    config = SandboxConfig.from_env({"TTA_SANDBOX_TOKENS": "a, b", "TTA_SANDBOX_ADVERTISERS": "1,2"})

    assert dict(config.tokens) == {"a": ("1", "2"), "b": ("1", "2")}
    assert config.default_advertisers == ("1", "2")


def test_explicit_tokens_win_over_the_environment() -> None:
    config = SandboxConfig.from_env({"TTA_SANDBOX_TOKENS": "env-token"}, tokens=["cli-token"])

    assert list(config.tokens) == ["cli-token"]


def test_background_sandboxes_are_independent() -> None:
    with SandboxThread() as one, SandboxThread(SandboxConfig(tokens={"t2": (ADVERTISER,)})) as two:
        assert one.port != two.port
        one.admin.seed_audience(ADVERTISER, "only in one")

        assert len(one.admin.state()["audiences"]) == 1
        assert two.admin.state()["audiences"] == {}
        assert Api(two.base_url).request("GET", "/user/info/", token="t2").code == 0


def test_python_m_sandbox_serves_until_terminated() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(port), "--token", "cli-token"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        admin = SandboxAdmin(f"http://127.0.0.1:{port}")
        admin.wait_ready(timeout=10)
        audience = admin.seed_audience(ADVERTISER, "from a subprocess")

        assert Api(admin.base_url).add(audience, "a@x.com", token="cli-token").code == 0
        assert admin.state()["audiences"][audience]["size"] == 1
    finally:
        process.terminate()
        stdout, _ = process.communicate(timeout=10)
    assert f"listening on http://127.0.0.1:{port}" in stdout
