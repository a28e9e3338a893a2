"""TikTok Business API v1.3: typed errors, request bodies and an aiohttp client.

The modules stay separate so each can be used alone: ``wire`` is pure (the batch builder and its benchmark
need no network), ``errors`` is what the retry policy dispatches on, and ``client`` is the only place that
talks HTTP.
"""

from worker.tiktok.client import Response, TikTokClient
from worker.tiktok.errors import (
    AuthError,
    PermanentError,
    ThrottledError,
    TikTokError,
    TransientError,
    classify,
)
from worker.tiktok.wire import create_audience_body, mapping_body, truncate_audience_name

__all__ = [
    "AuthError",
    "PermanentError",
    "Response",
    "ThrottledError",
    "TikTokClient",
    "TikTokError",
    "TransientError",
    "classify",
    "create_audience_body",
    "mapping_body",
    "truncate_audience_name",
]
