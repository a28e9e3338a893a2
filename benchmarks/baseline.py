"""The design a team writes first, for the benchmark to compare against: one Celery task per event.

The HTTP handler's place is taken by :func:`enqueue_all`, which calls ``apply_async`` once per event; each task
hashes the event's identifiers with the same functions the service uses (:mod:`producer.identifiers`) and
POSTs a one-row request, built by the same :func:`worker.tiktok.wire.mapping_body`, to the same sandbox. It
keeps one HTTP connection per worker process, and Celery's defaults otherwise: nothing here is made slow
on purpose, so the ratio measures the design (a broker round trip and a TikTok call per event), not neglect.

The Celery app is built by :func:`baseline_app`, only by the processes that use it: the bench, to enqueue,
and the worker, started as ``python -m benchmarks.baseline [celery worker options]``, which reads
``TTA_BASELINE_BROKER``, ``TTA_BASELINE_API`` and ``TIKTOK_ACCESS_TOKEN`` from the environment.
"""

from __future__ import annotations

import http.client
import os
import sys
import time
import urllib.parse
from typing import Any, Literal

import orjson
from celery import Celery

from producer.identifiers import hash_email, phone_hasher
from worker.tiktok.wire import mapping_body

TASK = "baseline.deliver"
QUEUE = "baseline"
ADVERTISER = "7000000000000000001"

_hash_phone = phone_hasher("e164", "US")
_connection: http.client.HTTPConnection | None = None


def _post(path: str, body: bytes) -> dict[str, Any]:
    """POST on this process's keep-alive connection, reconnecting once if the server closed it."""
    global _connection
    api = urllib.parse.urlsplit(os.environ["TTA_BASELINE_API"])
    headers = {"Content-Type": "application/json", "Access-Token": os.environ["TIKTOK_ACCESS_TOKEN"]}
    for attempt in (1, 2):
        if _connection is None:
            _connection = http.client.HTTPConnection(api.hostname or "127.0.0.1", api.port, timeout=30)
        try:
            _connection.request("POST", api.path.rstrip("/") + path, body=body, headers=headers)
            return dict(orjson.loads(_connection.getresponse().read()))
        except (http.client.HTTPException, OSError):
            _connection.close()
            _connection = None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def deliver(event: dict[str, Any], audience_id: str) -> None:
    traits = event["context"]["traits"]
    row: dict[str, str] = {}
    email = hash_email(traits.get("email"))
    if email:
        row["EMAIL_SHA256"] = email
    phone = _hash_phone(traits.get("phone"))
    if phone:
        row["PHONE_SHA256"] = phone
    action: Literal["add", "delete"] = "add" if event["event"] == "Audience Entered" else "delete"
    answer = _post("/open_api/v1.3/segment/mapping/", mapping_body(ADVERTISER, action, audience_id, [row]))
    if answer.get("code") != 0:
        raise RuntimeError(f"TikTok answered {answer.get('code')}: {answer.get('message')}")


def baseline_app(broker: str) -> Celery:
    """The baseline's Celery app on ``broker``, with :func:`deliver` as its one task."""
    app = Celery("tta_baseline", broker=broker)
    app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                    task_default_queue=QUEUE, worker_hijack_root_logger=False,
                    broker_connection_retry_on_startup=True)
    app.task(name=TASK, ignore_result=True)(deliver)
    return app


def enqueue_all(app: Celery, events: list[dict[str, Any]], audience_ids: dict[str, str]) -> tuple[float, float]:
    """One ``apply_async`` per event, as a request handler would; returns (wall, CPU) seconds it took."""
    task = app.tasks[TASK]
    started, cpu = time.perf_counter(), time.process_time()
    for event in events:
        key = event["context"]["personas"]["computation_key"]
        task.apply_async(args=[event, audience_ids[key]])
    return time.perf_counter() - started, time.process_time() - cpu


def main(argv: list[str]) -> None:
    """The baseline's Celery worker; ``argv`` are ``celery worker`` options."""
    baseline_app(os.environ["TTA_BASELINE_BROKER"]).worker_main(["worker", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
