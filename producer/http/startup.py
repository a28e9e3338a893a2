"""What ``serve`` checks before it listens: authentication is configured (or deliberately off), the port is
not held by another server, and the destinations file compiles into a router."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from core.settings import Settings
from producer.http.auth import Authenticator
from producer.limits import NewAudienceGate

if TYPE_CHECKING:
    from producer.routing import Router


class StartupError(Exception):
    """``serve`` cannot start; the message says what to set."""


def check_startup(settings: Settings, *, no_auth: bool) -> None:
    """Refuse to serve an open intake by accident."""
    if no_auth:
        return
    if not Authenticator.from_settings(settings).configured:
        raise StartupError(
            "refusing to start without authentication: set TTA_WRITE_KEY (comma-separated write keys) "
            "and/or TTA_WEBHOOK_SECRET, or pass --no-auth to accept unauthenticated events"
        )


def ensure_port_free(host: str, port: int) -> None:
    """Raise StartupError when something already listens on ``host:port``.

    Needed because ``--workers N`` binds with ``SO_REUSEPORT``: a server left running on the port (an earlier
    intake that was never stopped) would silently share it, and answer half the requests with its own keys."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another intake "
                               "still running there? stop it or choose another --port)") from None


def load_router(settings: Settings) -> Router:
    """The router compiled from the destinations file (``ConfigError`` when it cannot be used), with the
    new-audience gate when one is configured."""
    from core.destinations import load_destinations
    from producer.routing import Router

    router = Router.from_destinations(load_destinations(settings.config_path),
                                      default_phone_country=settings.default_phone_country)
    if settings.new_audiences_per_minute:
        router.audience_gate = NewAudienceGate(settings.new_audiences_per_minute)
    return router
