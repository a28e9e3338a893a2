"""``tiktok-audiences stats --watch`` in a terminal, following a real delivery, and ended with Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator

import pytest

from tests.support.events import wait_until
from tests.support.stack import ADVERTISER, Stack
from worker import keys

pytestmark = pytest.mark.integration

AUDIENCE = "3000000000000000001"
USERS = 20
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A command run on a pseudo-terminal of 200 x 100 characters, as in a person's shell."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self._master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 100, 200, 0, 0))
        # Ctrl-C reaches a foreground program with SIGINT's default action (a test runner may ignore it).
        self.process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave,
                                        env={**env, "COLUMNS": "200", "LINES": "100", "TERM": "xterm"},
                                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        os.close(slave)
        self._output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while chunk := os.read(self._master, 65536):
                self._output.extend(chunk)
        except OSError:
            pass  # the program exited and its side of the terminal closed

    @property
    def text(self) -> str:
        return _ESCAPES.sub("", bytes(self._output).decode(errors="replace"))

    def last_frame(self) -> str:
        return self.text.rpartition("Ctrl-C to stop")[2]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(5)
        os.close(self._master)


@pytest.fixture
def watching(stack: Stack) -> Iterator[Terminal]:
    stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="watched", audience_id=AUDIENCE)
    stack.start_intake()
    stack.start_worker()
    terminal = Terminal([sys.executable, "-m", "tiktok_audiences", "stats", "--watch", "--interval", "0.3"],
                        stack.env)
    yield terminal
    terminal.close()


def _entered(i: int) -> dict[str, object]:
    return {"type": "track", "event": "Audience Entered", "userId": f"w{i}", "messageId": f"watch-{i}",
            "properties": {"watched": True},
            "context": {"traits": {"email": f"watched{i}@example.com"},
                        "personas": {"computation_key": "watched", "external_audience_id": AUDIENCE}}}


def _audience_row(frame: str) -> str | None:
    return next((line for line in frame.splitlines() if AUDIENCE in line), None)


def test_the_view_follows_a_delivery_and_ends_cleanly_on_ctrl_c(stack: Stack, watching: Terminal) -> None:
    wait_until(lambda: "Backlog per audience" in watching.text, 30, message=f"a first frame\n{watching.text}")
    status, body = stack.post("/v1/batch", {"batch": [_entered(i) for i in range(USERS)]})
    assert status == 200 and body["accepted"] == USERS, body

    def delivered_members_shown() -> bool:
        row = _audience_row(watching.last_frame())
        return row is not None and row.split("│")[-2].strip() == str(USERS)

    wait_until(delivered_members_shown, 60, message=f"{USERS} delivered members on screen\n{watching.text[-3000:]}")
    token_row = next(line for line in watching.last_frame().splitlines() if "tiktok-main" in line and " of 100" in line)
    assert re.search(r"\d+\.\d of 100 \(\d+%\)", token_row), token_row
    # The worker's calls were counted by the fleet-wide limiter, which is where the view reads them.
    counted = [stack.redis.get(key) for key in stack.redis.scan_iter(match=keys.rate_calls("*"))]
    assert counted and all(int(n) >= 1 for n in counted)

    watching.process.send_signal(signal.SIGINT)
    assert watching.process.wait(15) == 0
    assert "Traceback" not in watching.text
