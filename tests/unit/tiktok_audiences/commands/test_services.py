"""``tiktok-audiences serve`` with no flags uses the machine: one intake process per usable core."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiktok_audiences.cli import build_parser
from tiktok_audiences.commands import services
from tiktok_audiences.commands.services import default_intake_processes, usable_cpus


def test_serve_without_workers_leaves_the_choice_to_the_default() -> None:
    assert build_parser().parse_args(["serve"]).workers is None
    assert build_parser().parse_args(["serve", "--workers", "1"]).workers == 1


def test_the_default_is_one_process_per_core_this_process_may_use(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setattr(services.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(services, "CGROUP_CPU_MAX", tmp_path / "absent")

    assert usable_cpus() == 4
    assert default_intake_processes(8080) == 4


@pytest.mark.parametrize(("cpu_max", "expected"), [("150000 100000\n", 2), ("max 100000\n", 4),
                                                   ("50000 100000\n", 1), ("800000 100000\n", 4)])
def test_a_container_cpu_quota_lowers_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  cpu_max: str, expected: int) -> None:
    monkeypatch.setattr(services.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    (tmp_path / "cpu.max").write_text(cpu_max)
    monkeypatch.setattr(services, "CGROUP_CPU_MAX", tmp_path / "cpu.max")

    assert usable_cpus() == expected


def test_port_zero_stays_one_process() -> None:
    # Each process would bind a port of its own: a sender could reach only one of them.
    assert default_intake_processes(0) == 1
