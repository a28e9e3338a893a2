"""The worker gives up CPU priority, so that intake on the same cores wins a burst."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.settings import Settings
from worker.runner import lower_priority

AUTOGROUP = Path("/proc/self/autogroup")


def in_child(new_session: bool, increment: int) -> tuple[int, str]:
    """Run lower_priority in a forked child; return its niceness and autogroup line as it saw them."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            if new_session:
                os.setsid()
            lower_priority(increment)
            group = AUTOGROUP.read_text().strip() if AUTOGROUP.exists() else ""
            os.write(write, f"{os.getpriority(os.PRIO_PROCESS, 0)}\n{group}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        nice, _, group = answer.read().partition("\n")
    os.waitpid(pid, 0)
    return int(nice), group


def test_the_default_is_to_yield_to_intake() -> None:
    assert Settings().worker_nice == 10


def test_a_worker_lowers_its_niceness() -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    nice, _ = in_child(new_session=False, increment=3)
    assert nice == min(19, before + 3)


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="this kernel has no autogroup scheduling")
def test_a_session_leader_also_lowers_its_autogroup() -> None:
    _, group = in_child(new_session=True, increment=7)
    assert group.endswith("nice 7")


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="this kernel has no autogroup scheduling")
def test_a_worker_sharing_a_session_leaves_the_group_alone() -> None:
    before = AUTOGROUP.read_text().strip()
    in_child(new_session=False, increment=7)
    assert AUTOGROUP.read_text().strip() == before
