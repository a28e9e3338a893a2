"""The ``tiktok-audiences`` parser: every command of the interface is there and runs a handler, building it
loads neither the worker nor intake, and operator commands refuse an unreachable Redis with one clear error."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from core.settings import Settings
from tiktok_audiences.cli import build_parser
from tiktok_audiences.commands.batches import batches_list
from tiktok_audiences.commands.handler import WithRedis

# The command list of the project's interface, each with the least it needs to parse.
INTERFACE_COMMANDS = [
    ["serve"],
    ["worker"],
    ["ingest", "-"],
    ["run"],
    ["sandbox"],
    ["batches", "list"],
    ["batches", "show", "BATCH_ID"],
    ["replay", "BATCH_ID"],
    ["stats"],
    ["audiences", "list"],
    ["audiences", "create", "NAME"],
    ["config", "check"],
]


@pytest.mark.parametrize("argv", INTERFACE_COMMANDS, ids=" ".join)
def test_every_command_of_the_interface_is_registered_with_a_handler(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert callable(args.handler)


def _leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, child in group.choices.items():
            yield from _leaf_commands(child, (*path, name))


def test_every_command_the_parser_offers_runs_a_handler() -> None:
    leaves = dict(_leaf_commands(build_parser()))
    assert len(leaves) > len(INTERFACE_COMMANDS)
    for path, parser in leaves.items():
        assert callable(parser.get_default("handler")), " ".join(path)


def test_handlers_are_the_command_functions_themselves() -> None:
    assert build_parser().parse_args(["batches", "list"]).handler == WithRedis(batches_list)


def test_building_the_parser_loads_neither_the_worker_nor_intake() -> None:
    # A worker must switch prometheus_client to multiprocess files before any worker metric is made, and
    # almost every worker module makes them when imported.
    probe = ("import sys; from tiktok_audiences.cli import build_parser; build_parser(); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('worker', 'producer')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_an_operator_command_without_redis_says_where_it_looked(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(REDIS_URL="redis://127.0.0.1:1/0")
    args = build_parser().parse_args(["batches", "list"])
    assert args.handler(args, settings) == 2
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in capsys.readouterr().err
