"""What a sandbox starts with: tokens and the advertisers they may use, the OAuth app, limits.

A :class:`SandboxConfig` is plain data. ``POST /_sandbox/reset`` returns the sandbox to exactly this, so
tests can rely on a known starting point.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DEFAULT_TOKEN = "sandbox-token"
DEFAULT_ADVERTISERS: tuple[str, ...] = ("7000000000000000001", "7000000000000000002")
DEFAULT_APP_ID = "sandbox-app"
DEFAULT_APP_SECRET = "sandbox-secret"
DEFAULT_AUTH_CODE = "sandbox-auth-code"

# TikTok's documented ceiling per /segment/mapping/ request.
MAX_ROWS = 10_000
# TikTok refuses longer names; the client is expected to cut them to 67 characters plus "..." before sending.
MAX_AUDIENCE_NAME = 70
# A 10,000-row body with four id types is ~4 MB; leave ample room so size is never the failure a test sees.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Audience ids look like TikTok's: long numeric strings.
FIRST_AUDIENCE_ID = 1_000_000_000_000_000_001
# Bounded so a long benchmark cannot grow memory without limit; sequence numbers keep counting.
CALL_LOG_LIMIT = 100_000

ENV_TOKENS = "TTA_SANDBOX_TOKENS"
ENV_ADVERTISERS = "TTA_SANDBOX_ADVERTISERS"
ENV_APP_ID = "TTA_SANDBOX_APP_ID"
ENV_APP_SECRET = "TTA_SANDBOX_APP_SECRET"
ENV_AUTH_CODES = "TTA_SANDBOX_AUTH_CODES"
ENV_SEED = "TTA_SANDBOX_SEED"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@dataclass(frozen=True)
class SandboxConfig:
    """Starting configuration of a sandbox.

    ``tokens`` maps each valid access token to the advertiser ids it is granted. Tokens issued later by the
    OAuth exchange are granted ``default_advertisers``.
    """

    tokens: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {DEFAULT_TOKEN: DEFAULT_ADVERTISERS}
    )
    default_advertisers: tuple[str, ...] = DEFAULT_ADVERTISERS
    app_id: str = DEFAULT_APP_ID
    app_secret: str = DEFAULT_APP_SECRET
    auth_codes: tuple[str, ...] = (DEFAULT_AUTH_CODE,)
    seed: int = 0
    max_rows: int = MAX_ROWS
    max_audience_name: int = MAX_AUDIENCE_NAME
    max_body_bytes: int = MAX_BODY_BYTES
    first_audience_id: int = FIRST_AUDIENCE_ID
    call_log_limit: int = CALL_LOG_LIMIT

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, tokens: Iterable[str] | None = None
    ) -> SandboxConfig:
        """Read ``TTA_SANDBOX_*`` variables; explicit ``tokens`` (e.g. CLI ``--token``) win over the env.

        ``TTA_SANDBOX_TOKENS`` and ``TTA_SANDBOX_ADVERTISERS`` are comma-separated; every token is granted
        every listed advertiser.
        """
        env = os.environ if environ is None else environ
        token_list = list(tokens) if tokens else _split(env.get(ENV_TOKENS, "")) or [DEFAULT_TOKEN]
        advertisers = tuple(_split(env.get(ENV_ADVERTISERS, ""))) or DEFAULT_ADVERTISERS
        auth_codes = tuple(_split(env.get(ENV_AUTH_CODES, ""))) or (DEFAULT_AUTH_CODE,)
        return cls(
            tokens={token: advertisers for token in token_list},
            default_advertisers=advertisers,
            app_id=env.get(ENV_APP_ID) or DEFAULT_APP_ID,
            app_secret=env.get(ENV_APP_SECRET) or DEFAULT_APP_SECRET,
            auth_codes=auth_codes,
            seed=int(env.get(ENV_SEED) or 0),
        )
