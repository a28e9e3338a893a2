"""Logging: one JSON object per line (readable lines instead when stderr is a terminal, or with
``TTA_LOG_FORMAT=console``), for our own structlog lines and for every library's standard-library logging
alike (aiohttp's server, Celery, kombu, Python warnings), and never a secret.

Every rendered line passes through a :class:`~core.redaction.Redactor` holding the process's secrets: the
write keys and webhook secret from the settings, the values of environment variables named like secrets
(``*_TOKEN``, ``*_SECRET``, ``*_KEY``, ``*_PASSWORD``), and any a command adds with :func:`add_secrets` (the
token and auth code of ``auth exchange``). Copies in other case, percent-encoded or Basic-auth encoded are
caught too.

Celery configures logging of its own unless a ``setup_logging`` receiver exists: :func:`keep_celery_logging`
connects one that keeps ours.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from core.redaction import Redactor
from core.settings import Settings

_SECRET_SUFFIXES = ("_TOKEN", "_SECRET", "_KEY", "_PASSWORD", "_AUTH_CODE")
_redactor = Redactor()


def add_secrets(*secrets: str) -> None:
    """Make every later log line blank out ``secrets``."""
    _redactor.add(*secrets)


def _secrets_from(settings: Settings) -> list[str]:
    secrets = [*settings.write_key_list, settings.webhook_secret]
    secrets += [value for name, value in os.environ.items() if name.upper().endswith(_SECRET_SUFFIXES)]
    return [s for s in secrets if s]


def _redact_rendered(_: Any, __: str, rendered: Any) -> Any:
    return _redactor(rendered) if isinstance(rendered, str) else rendered


def configure_logging(settings: Settings) -> None:
    fmt = settings.log_format or ("console" if sys.stderr.isatty() else "json")
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    add_secrets(*_secrets_from(settings))
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            renderer,
            _redact_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library: render their records the same way, on the same stream.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, timestamper],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer, _redact_rendered],
    ))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)  # Python warnings become log records, so JSON lines too


def keep_celery_logging() -> None:
    """Stop Celery from replacing the logging set up here with its own text format (its ``setup_logging``
    signal: with a receiver connected, Celery leaves logging alone), and turn the few lines it writes
    straight to the terminal from its signal handlers ("worker: Warm shutdown") into JSON lines."""
    import celery.apps.worker
    from celery.signals import setup_logging

    setup_logging.connect(_leave_logging_alone, weak=False)
    celery.apps.worker.safe_say = _say_as_json


def _say_as_json(msg: str, f: Any = None) -> None:
    # Called from signal handlers: one os.write of a finished line, no logging locks.
    line = orjson.dumps({"event": msg.strip(), "level": "info", "logger": "celery.worker",
                         "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
    with contextlib.suppress(OSError):
        os.write(2, line + b"\n")


def _leave_logging_alone(**_: Any) -> None:
    return None
