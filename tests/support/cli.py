"""Fixtures and constants for the CLI tests: a sandbox TikTok on a free port, fakeredis, a destinations file
naming the sandbox's token, Settings pointing at both, and ``cli`` to run one command line in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import fakeredis
import pytest
import yaml

from core.settings import Settings
from sandbox import SandboxThread
from sandbox.config import DEFAULT_ADVERTISERS, DEFAULT_TOKEN
from tiktok_audiences.cli import build_parser
from tiktok_audiences.commands.handler import WithRedis

ADVERTISER = DEFAULT_ADVERTISERS[0]
TOKEN_ENV = "TTA_UNIT_TIKTOK_TOKEN"


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TOKEN_ENV, DEFAULT_TOKEN)
    path = tmp_path / "destinations.yaml"
    path.write_text(yaml.safe_dump({"destinations": [{
        "id": "main", "access_token_env": TOKEN_ENV, "advertiser_ids": list(DEFAULT_ADVERTISERS),
    }]}))
    return path


@pytest.fixture
def settings(sandbox_server: SandboxThread, config_file: Path) -> Settings:
    return Settings(TIKTOK_API_BASE_URL=sandbox_server.base_url, TTA_CONFIG=str(config_file),
                    TTA_HTTP_TIMEOUT=5)


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def cli(settings: Settings, redis_client: fakeredis.FakeRedis) -> Callable[..., int]:
    """Run one ``tiktok-audiences`` command line in-process; commands that use Redis get ``redis_client``."""

    def run(*argv: str) -> int:
        args = build_parser().parse_args(list(argv))
        if isinstance(args.handler, WithRedis):
            return int(args.handler.command(args, settings, redis_client))
        return int(args.handler(args, settings))

    return run
