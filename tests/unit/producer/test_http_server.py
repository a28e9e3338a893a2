"""serve: refuses to start without authentication or on a port another server holds; with several processes,
one that fails stops the others and its exit code is serve's."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from producer.http import StartupError, ensure_port_free, serve
from producer.http.processes import run_processes
from tests.support.http import KEY
from tests.support.intake import settings


@pytest.fixture
def signal_handlers_kept() -> Iterator[None]:
    """run_processes installs SIGTERM/SIGINT handlers in the calling process: give pytest its own back."""
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in kept.items():
        signal.signal(signum, handler)


def test_serve_refuses_to_start_without_authentication(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve("127.0.0.1", 0, settings()) == 2
    assert "TTA_WRITE_KEY" in capsys.readouterr().err


def test_serve_refuses_a_port_another_server_listens_on(capsys: pytest.CaptureFixture[str]) -> None:
    # With --workers N intake binds with SO_REUSEPORT, which would otherwise share the port with a stale server.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            ensure_port_free("127.0.0.1", port)
        assert serve("127.0.0.1", port, settings(write_keys=KEY), workers=2) == 2
    assert "another intake" in capsys.readouterr().err
    ensure_port_free("127.0.0.1", port)  # free again once it is closed


def test_processes_that_all_finish_cleanly_exit_0(signal_handlers_kept: None) -> None:
    assert run_processes(2, lambda: None) == 0


def test_one_failed_process_stops_the_others_and_fails_serve(signal_handlers_kept: None) -> None:
    # One token in a pipe: the child that takes it fails, the other would serve for a minute.
    token, give = os.pipe()
    os.write(give, b"x")
    os.set_blocking(token, False)

    def run() -> None:
        try:
            os.read(token, 1)
        except BlockingIOError:
            time.sleep(60)
            return
        raise RuntimeError("cannot serve")

    started = time.monotonic()
    try:
        assert run_processes(2, run) == 1
    finally:
        os.close(token)
        os.close(give)
    assert time.monotonic() - started < 30
