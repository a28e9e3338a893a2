"""The CLI tests' fixtures, defined in tests.support.cli."""

from tests.support.cli import cli, config_file, redis_client, settings

__all__ = ["cli", "config_file", "redis_client", "settings"]
