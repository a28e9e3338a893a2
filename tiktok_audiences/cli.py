"""``tiktok-audiences``: one console script for the producer, the worker, the sandbox and operators."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.logging import configure_logging
from core.settings import get_settings
from tiktok_audiences.commands import audiences, auth, batches, config, destinations, services, shadow, stats

if TYPE_CHECKING:
    pass

# The command groups, in the order ``--help`` lists them.
COMMAND_GROUPS = (services, batches, stats, destinations, audiences, shadow, config, auth)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiktok-audiences", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    try:
        return int(args.handler(args, settings) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
