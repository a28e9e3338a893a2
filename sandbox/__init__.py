"""A local stand-in for TikTok's Business API v1.3, for tests, demos and benchmarks.

It validates requests as strictly as the real API (headers, exact body keys, digest shape, row limits),
keeps audience membership in memory, and can throttle or fail on command through admin routes under
``/_sandbox/``. Modules, one job each:

- :mod:`sandbox.config` -- :class:`SandboxConfig`: tokens, advertisers, OAuth app, limits.
- :mod:`sandbox.errors` -- TikTok's answer codes and the :class:`ApiError` the handlers raise.
- :mod:`sandbox.validation` -- request checks, pure functions over parsed JSON.
- :mod:`sandbox.state` -- the in-memory model: tokens, audiences, membership, counters, call log.
- :mod:`sandbox.faults` -- the fault knobs (throttle, fail, latency) and the decisions they drive.
- :mod:`sandbox.app` -- the TikTok routes and :func:`build_app`.
- :mod:`sandbox.admin_routes` -- the ``/_sandbox/`` inspection and control routes.
- :mod:`sandbox.admin` -- :class:`SandboxAdmin`, a small synchronous client of those routes.
- :mod:`sandbox.server` -- :func:`serve` (blocking) and :class:`SandboxThread` (background, for tests).
"""

from __future__ import annotations

from sandbox.admin import SandboxAdmin, SandboxAdminError
from sandbox.config import SandboxConfig
from sandbox.server import SandboxThread, build_app, serve

__all__ = ["SandboxAdmin", "SandboxAdminError", "SandboxConfig", "SandboxThread", "build_app", "serve"]
