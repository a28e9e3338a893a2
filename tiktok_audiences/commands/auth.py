"""``auth exchange|check``: connect a TikTok account, and verify the tokens in use.

``exchange`` trades the ``auth_code`` TikTok hands to the app's redirect URL for a long-lived access token
(``/oauth2/access_token/``) and writes it to a file only its owner can read; a destination names that file as
``access_token_file``. ``check`` calls ``/user/info/`` with each destination's token.

No token, app secret or auth code is ever printed or logged: the secret and the auth code are read from
environment variables or stdin (never the command line, where ``ps`` shows it), the client blanks all three
out of TikTok's error messages, the log pipeline blanks them out of every line, and tokens are named only by
where they come from. The one exception is ``--write -``, which asks for the token on stdout so it can be
piped into a secret store.

The auth code works once: ``exchange`` makes sure it can write the token file before it spends the code.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from core.destinations import ConfigError, Destination, load_destinations
from core.logging import add_secrets
from core.settings import Settings
from tiktok_audiences.commands.output import fail

if TYPE_CHECKING:
    from tiktok_audiences.commands.handler import Subparsers
    from worker.tiktok.client import TikTokClient

DEFAULT_TOKEN_FILE = "tiktok-access-token"


def register(sub: Subparsers) -> None:
    """``auth exchange`` and ``auth check``."""
    auth = sub.add_parser("auth", help="TikTok authorisation").add_subparsers(dest="verb", required=True)
    p = auth.add_parser("exchange", help="exchange an OAuth auth code for an access token")
    p.add_argument("--app-id", required=True)
    p.add_argument("--secret-env", required=True, help="environment variable holding the app secret")
    p.add_argument("--auth-code-env", metavar="VAR",
                   help="environment variable holding the auth code (default: read it from stdin)")
    p.add_argument("--auth-code", help=argparse.SUPPRESS)  # refused: argv is visible to every user in ps
    p.add_argument("--write", help="write the token to this file (mode 0600)")
    p.set_defaults(handler=exchange)
    p = auth.add_parser("check", help="verify each destination's token")
    p.set_defaults(handler=check)


def write_secret_file(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` with mode 0600, atomically: a worker re-reading the file never sees half
    of it, and an existing file is replaced whole, its old mode not kept."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secret + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)  # the umask can only narrow 0600, but be explicit
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


async def _exchange(settings: Settings, app_id: str, secret: str, auth_code: str) -> dict[str, Any]:
    from worker.tiktok.client import TikTokClient

    async with TikTokClient(settings.tiktok_api_base_url, timeout=settings.http_timeout) as client:
        return await client.exchange_auth_code(app_id, secret, auth_code)


def check_writable(path: Path) -> str | None:
    """Why the token cannot be written to ``path``, or None: tried for real (a temporary file made and
    removed beside it), so that the single-use auth code is not spent on a token with nowhere to go."""
    if path.is_dir():
        return f"{path} is a directory"
    probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        return f"cannot write in {path.parent}: {exc.strerror}"
    return None


def read_auth_code(args: argparse.Namespace) -> str:
    """The auth code from ``--auth-code-env``'s variable, else from stdin (prompted for, unechoed, on a
    terminal); "" when there is none."""
    if args.auth_code_env:
        return os.environ.get(args.auth_code_env, "").strip()
    if sys.stdin is None:
        return ""
    if sys.stdin.isatty():
        return getpass.getpass("TikTok auth code: ").strip()
    return sys.stdin.readline().strip()


def exchange(args: argparse.Namespace, settings: Settings) -> int:
    from worker.tiktok.errors import TikTokError, TransientError

    if args.auth_code:
        return fail("--auth-code would show the auth code to every user of this machine (ps); put it in an "
                    "environment variable named by --auth-code-env, or pipe it to stdin")
    secret = os.environ.get(args.secret_env, "").strip()
    if not secret:
        return fail(f"environment variable {args.secret_env} is not set: put the TikTok app's secret in it "
                    "(it is read from the environment so that it never shows in the process list)")
    path = None if args.write == "-" else Path(args.write or DEFAULT_TOKEN_FILE).expanduser().absolute()
    if path is not None and (problem := check_writable(path)) is not None:
        return fail(f"{problem}; nothing was exchanged (the auth code is still good): choose another --write")
    auth_code = read_auth_code(args)
    if not auth_code:
        where = f"environment variable {args.auth_code_env}" if args.auth_code_env else "stdin"
        return fail(f"no auth code: {where} is empty")
    add_secrets(secret, auth_code)
    try:
        data = asyncio.run(_exchange(settings, args.app_id, secret, auth_code))
    except TransientError as exc:
        return fail(f"could not reach TikTok at {settings.tiktok_api_base_url} for the exchange: {exc}; "
                    "nothing was written, try again", 1)
    except TikTokError as exc:
        return fail(f"TikTok refused the auth code exchange: {exc}. Auth codes work once and expire "
                    "within an hour: authorise the app again to get a new one, and check --app-id and the "
                    "secret.", 1)
    except aiohttp.InvalidURL:
        return fail(f"TIKTOK_API_BASE_URL is not a valid URL: {settings.tiktok_api_base_url!r}")
    token = str(data.get("access_token") or "")
    if not token:
        return fail("TikTok answered the exchange without an access_token; nothing was written", 1)
    add_secrets(token)
    advertisers = [str(a) for a in data.get("advertiser_ids") or []]
    out = sys.stderr if args.write == "-" else sys.stdout
    out.write(f"authorised: the token grants {len(advertisers)} advertiser id(s):\n")
    for advertiser in advertisers:
        out.write(f"  {advertiser}\n")
    if path is None:
        sys.stdout.write(token + "\n")
        return 0
    try:
        write_secret_file(path, token)
    except OSError as exc:
        return fail(f"cannot write the token to {path}: {exc.strerror}; nothing was saved; run the exchange "
                    "again with another --write path", 1)
    listed = ", ".join(f'"{a}"' for a in advertisers)
    out.write(f"wrote the access token to {path} (mode 0600, readable only by you)\n"
              "use it in the destinations file:\n"
              f"    access_token_file: {path}\n"
              f"    advertiser_ids: [{listed}]\n")
    return 0


def _source(destination: Destination) -> str:
    if destination.access_token_env and os.environ.get(destination.access_token_env, "").strip():
        return f"environment variable {destination.access_token_env}"
    return f"file {destination.access_token_file}" if destination.access_token_file else \
        f"environment variable {destination.access_token_env}"


async def _check_all(settings: Settings, destinations: list[Destination]) -> list[tuple[bool, str]]:
    from worker.tiktok.client import TikTokClient

    results = []
    async with TikTokClient(settings.tiktok_api_base_url, timeout=settings.http_timeout) as client:
        for destination in destinations:
            results.append(await _check_one(client, destination))
    return results


async def _check_one(client: TikTokClient, destination: Destination) -> tuple[bool, str]:
    from worker.tiktok.errors import AuthError, TikTokError

    name = destination.id
    try:
        token = destination.access_token()
    except ConfigError as exc:
        return False, f"FAIL  {name}: {exc}"
    source = _source(destination)
    try:
        info = await client.user_info(token)
    except AuthError as exc:
        return False, (f"FAIL  {name}: TikTok refuses the token from {source}: {exc}. Re-authorise "
                       "with `tiktok-audiences auth exchange`, then "
                       f"`tiktok-audiences destinations resume {name}`")
    except TikTokError as exc:
        return False, f"FAIL  {name}: could not check the token from {source}: {exc}"
    who = info.get("display_name") or info.get("id") or "unknown user"
    return True, f"ok    {name}: the token from {source} works (TikTok user {who})"


def check(args: argparse.Namespace, settings: Settings) -> int:
    try:
        config = load_destinations(settings.config_path)
    except ConfigError as exc:
        return fail(str(exc))
    if not config.destinations:
        return fail(f"{settings.config_path} has no destinations to check")
    try:
        results = asyncio.run(_check_all(settings, config.destinations))
    except aiohttp.InvalidURL:
        return fail(f"TIKTOK_API_BASE_URL is not a valid URL: {settings.tiktok_api_base_url!r}")
    for _, line in results:
        sys.stdout.write(line + "\n")
    failed = sum(1 for ok, _ in results if not ok)
    if failed:
        sys.stderr.write(f"tiktok-audiences: {failed} of {len(results)} destination token(s) failed "
                         "the check\n")
        return 1
    return 0
