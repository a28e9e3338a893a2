"""Runtime settings, read once from the environment into a typed value object.

Modules take a :class:`Settings` as an argument instead of reading globals, so tests can build one with
exactly the values they need.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    # The data store: redis://, rediss://, unix:// or sentinel://host:port[,host:port]/service[/db]
    # (core.redis_client).
    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    # Celery's broker, when it is not the data store (same URL forms; empty: REDIS_URL).
    broker_url_setting: str = Field("", alias="TTA_BROKER_URL")
    tiktok_api_base_url: str = Field("https://business-api.tiktok.com", alias="TIKTOK_API_BASE_URL")
    config_path: str = Field("destinations.yaml", alias="TTA_CONFIG")
    write_keys: str = Field("", alias="TTA_WRITE_KEY")
    webhook_secret: str = Field("", alias="TTA_WEBHOOK_SECRET")

    batch_size: int = Field(10_000, alias="TTA_BATCH_SIZE", ge=1, le=10_000)
    # Longest wait, in seconds, of a partial batch before it is sent.
    flush_interval: float = Field(2.0, alias="TTA_FLUSH_INTERVAL", gt=0)
    # A partial batch is also sent once the whole intake has been quiet (no operation enqueued anywhere) this
    # many seconds: waiting out the flush interval after a burst has ended gains nothing. 0 turns it off.
    quiet_flush: float = Field(0.25, alias="TTA_QUIET_FLUSH", ge=0)
    rate_limit_qps: float = Field(10.0, alias="TTA_RATE_LIMIT_QPS", gt=0)
    log_format: str = Field("", alias="TTA_LOG_FORMAT")
    log_level: str = Field("info", alias="TTA_LOG_LEVEL")

    # Delivery policy.
    http_timeout: float = Field(30.0, alias="TTA_HTTP_TIMEOUT", gt=0)
    retry_window: float = Field(4 * 3600.0, alias="TTA_RETRY_WINDOW", gt=0)
    backoff_base: float = Field(1.0, alias="TTA_BACKOFF_BASE", gt=0)
    backoff_max: float = Field(300.0, alias="TTA_BACKOFF_MAX", gt=0)
    throttle_cooldown: float = Field(2.0, alias="TTA_THROTTLE_COOLDOWN", gt=0)
    # The longest a throttle rests a token, whatever TikTok's Retry-After says (absurd values fall back to it).
    throttle_cooldown_max: float = Field(300.0, alias="TTA_THROTTLE_COOLDOWN_MAX", gt=0)
    pause_recheck: float = Field(10.0, alias="TTA_PAUSE_RECHECK", gt=0)
    # A drain task is killed after this many seconds (Celery's hard limit); the broker's visibility timeout is
    # above it, so a running task is never handed to a second worker.
    task_time_limit: float = Field(300.0, alias="TTA_TASK_TIME_LIMIT", gt=0)
    # A drainer's hold on its target, renewed before every TikTok call, so it must outlast one call (the
    # HTTP timeout); a drainer that dies frees its target this long after its last renewal. Default: the
    # HTTP timeout + 15 s.
    target_lock_ttl: float | None = Field(None, alias="TTA_LOCK_TTL", gt=0)
    # How long one drain task keeps draining a busy audience before handing the slot to others.
    drain_budget: float = Field(5.0, alias="TTA_DRAIN_BUDGET", gt=0)
    scheduler_tick: float = Field(0.05, alias="TTA_SCHEDULER_TICK", gt=0)
    # How much the worker lowers its own CPU priority (Unix nice increment, 0-19). Senders wait on intake's
    # answers and delivery is asynchronous by design, so where both share cores intake should win a burst
    # and delivery catch up after it (in fuller batches). 0 keeps the priority it was started with.
    worker_nice: int = Field(10, alias="TTA_WORKER_NICE", ge=0, le=19)

    # Fleet: probes and metrics, scheduling, shutdown.
    # Port of the worker's (or scheduler's) /metrics, /healthz and /readyz; 0 serves none.
    worker_metrics_port: int = Field(0, alias="TTA_WORKER_METRICS_PORT", ge=0, le=65535)
    worker_metrics_host: str = Field("0.0.0.0", alias="TTA_WORKER_METRICS_HOST")
    # Whether ``worker`` runs a scheduler beside its Celery consumer (one of all of them schedules at a time,
    # by lease). Off where a ``scheduler`` role runs apart, so that workers can scale to zero.
    worker_scheduler: bool = Field(True, alias="TTA_WORKER_SCHEDULER")
    # How long the active scheduler's lease lasts without renewal: a dead scheduler's place is taken this
    # soon by another (it renews every third of it).
    scheduler_lease_ttl: float = Field(5.0, alias="TTA_SCHEDULER_LEASE_TTL", gt=0)
    # On SIGTERM a worker stops cutting batches at once and lets batches in flight finish for this long; what
    # is still running then is cancelled and handed back (due again at once, resent by any worker with the
    # same batch id). The worker exits within about this plus 3 s.
    shutdown_grace: float = Field(20.0, alias="TTA_SHUTDOWN_GRACE", ge=0)
    # Celery node name (``celery@...``); empty: tta-<host>-<pid>, unique per process.
    worker_name: str = Field("", alias="TTA_WORKER_NAME")
    # Celery task events, for Flower (``pip install tiktok-audiences[flower]``); off by default (they cost a
    # publish per task).
    task_events: bool = Field(False, alias="TTA_TASK_EVENTS")

    # Intake back-pressure: above this many pending operations, intake answers 503.
    backlog_limit: int = Field(5_000_000, alias="TTA_BACKLOG_LIMIT", ge=1)
    default_phone_country: str = Field("US", alias="TTA_DEFAULT_PHONE_COUNTRY")
    # An event time further than this many seconds ahead of the time received is clamped to the time received.
    max_event_skew: float = Field(24 * 3600.0, alias="TTA_MAX_EVENT_SKEW", ge=0)
    # Largest /v1/batch body, in bytes (Segment's and RudderStack's libraries send up to 500 KB and 4 MB).
    max_batch_bytes: int = Field(4 * 1024 * 1024, alias="TTA_MAX_BATCH_BYTES", ge=1024)

    # Intake connections: seconds a client has to send a request's head, then its body, and how long an idle
    # kept-alive connection stays open. Slow or stalled clients must not hold connections indefinitely.
    header_timeout: float = Field(10.0, alias="TTA_HEADER_TIMEOUT", gt=0)
    body_timeout: float = Field(30.0, alias="TTA_BODY_TIMEOUT", gt=0)
    keepalive_timeout: float = Field(75.0, alias="TTA_KEEPALIVE_TIMEOUT", gt=0)
    # Most events one intake request may carry (a larger one is refused with 413, whatever its byte size).
    max_request_events: int = Field(100_000, alias="TTA_MAX_REQUEST_EVENTS", ge=1)
    # Most new audiences (never seen before) events may introduce per destination per minute; the events
    # beyond it are rejected with the reason, so a flood of made-up audience keys cannot create thousands.
    # Counted per intake process; 0 turns the cap off.
    new_audiences_per_minute: int = Field(1000, alias="TTA_NEW_AUDIENCES_PER_MINUTE", ge=0)

    # Retention of ledger records, in seconds.
    delivered_retention: float = Field(7 * 86400.0, alias="TTA_DELIVERED_RETENTION", gt=0)
    dead_retention: float = Field(30 * 86400.0, alias="TTA_DEAD_RETENTION", gt=0)

    @property
    def write_key_list(self) -> list[str]:
        return [k.strip() for k in self.write_keys.split(",") if k.strip()]

    @model_validator(mode="after")
    def _lock_outlasts_a_call(self) -> Settings:
        if self.target_lock_ttl is not None and self.target_lock_ttl <= self.http_timeout:
            raise ValueError(f"TTA_LOCK_TTL ({self.target_lock_ttl:g} s) must be longer than "
                             f"TTA_HTTP_TIMEOUT ({self.http_timeout:g} s): a drainer renews its lock "
                             "once per TikTok call")
        return self

    @property
    def broker_url(self) -> str:
        return self.broker_url_setting or self.redis_url

    @property
    def lock_ttl(self) -> float:
        return self.target_lock_ttl if self.target_lock_ttl is not None else self.http_timeout + 15.0

    @property
    def scheduler_lease(self) -> float:
        """How long a claimed target is not claimed again. Longer than the lock's TTL, so the re-dispatch of a
        target whose drainer died (or whose task was lost) finds the lock free."""
        return self.lock_ttl + 5.0


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
