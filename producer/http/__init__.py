"""HTTP intake: Segment's tracking API shape on aiohttp, in front of :class:`producer.intake.AsyncIntake`.

Routes (``POST /v1/track``, ``/v1/identify``, ``/v1/batch``, ``/v1/webhook``; ``GET /healthz``, ``/readyz``,
``/metrics``) answer as Segment's do (``{"success": true}``); a 200 always means the events are stored in
Redis. The package, by job:

- :mod:`~producer.http.server` -- :func:`serve`: start-up checks, then one process or several until stopped;
- :mod:`~producer.http.startup` -- what is checked before listening (:class:`StartupError`);
- :mod:`~producer.http.processes` -- the pre-fork supervisor of several intake processes;
- :mod:`~producer.http.connections` -- what happens to a connection before a request reaches a handler;
- :mod:`~producer.http.app` -- :func:`build_app` / :func:`make_app`, the routes and the wrapper around them;
- :mod:`~producer.http.event_routes` and :mod:`~producer.http.operations` -- the handlers;
- :mod:`~producer.http.answers` -- the JSON shape of every answer;
- :mod:`~producer.http.metrics` -- the Prometheus metrics, shared between processes when there are several;
- :mod:`~producer.http.auth` -- write keys and webhook signatures;
- :mod:`~producer.http.bodies` -- reading a body within its limits;
- :mod:`~producer.http.gc_pause` -- the garbage collector held off while a request is handled.
"""

from producer.http.app import build_app, make_app
from producer.http.server import serve
from producer.http.startup import StartupError, ensure_port_free

__all__ = ["StartupError", "build_app", "ensure_port_free", "make_app", "serve"]
