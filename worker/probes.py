"""The worker's (and the scheduler role's) small HTTP server: ``/metrics``, ``/healthz``, ``/readyz``.

- ``/healthz`` (liveness) asks only this process's own parts whether they are alive (the Celery consumer, the
  scheduler child) and never Redis: restarting a worker does not bring a lost Redis back.
- ``/readyz`` proves the data store's write path (worker.readiness).
- ``/metrics`` answers in Prometheus' text format (worker.metrics).

A standard-library threaded server in a daemon thread: it serves a probe every few seconds and a scrape every
few more, and must not add an event loop to a process that Celery forks pool processes from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

# Each returns None when fine, else why not.
Check = Callable[[], str | None]


class ProbeServer:
    def __init__(self, host: str, port: int, *, alive: Check, ready: Check,
                 registry: Callable[[], CollectorRegistry]) -> None:
        self._alive = alive
        self._ready = ready
        self._registry = registry
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="tta-probes", daemon=True)

    def start(self) -> ProbeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(server._registry()), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._check(server._alive, "alive")
                elif path == "/readyz":
                    self._check(server._ready, "ready")
                else:
                    self._send(404, orjson.dumps({"error": "not found"}), "application/json")

            def _check(self, check: Check, name: str) -> None:
                try:
                    problem = check()
                except Exception as exc:  # a probe that cannot decide says no, and why
                    problem = f"{type(exc).__name__}: {exc}"
                body = {name: True} if problem is None else {name: False, "error": problem}
                self._send(200 if problem is None else 503, orjson.dumps(body), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # probes are not worth a log line
                pass

        return Handler
