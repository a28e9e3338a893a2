"""``tiktok-audiences stats --watch``: a live view of delivery in the terminal, redrawn every few seconds.

It shows what an operator checks when an audience stops moving: the backlog per audience and how long its
oldest operation has waited, TikTok calls per second against the rate limit and the cooldowns throttles left,
paused destinations with the command that lifts the pause, and the newest dead batches. Ctrl-C ends it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import redis
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from core.destinations import ConfigError, DestinationsFile, load_destinations
from core.settings import Settings
from tiktok_audiences.watch_sample import Sampler, Snapshot, TokenCalls, token_destinations
from worker.ledger import Ledger

AUDIENCES_SHOWN = 15


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def _clock(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%H:%M:%S")


def _audience_name(audience: dict[str, Any]) -> str:
    audience_id = audience.get("audience_id") or ""
    if audience_id and not audience_id.startswith("@"):
        return str(audience_id)
    return f"(to create: {audience.get('audience_key')})"


def _header(snapshot: Snapshot, interval: float) -> Text:
    text = Text()
    text.append("tiktok-audiences", style="bold")
    text.append(f"  {_clock(snapshot.taken_at)} UTC, every {interval:g}s; Ctrl-C to stop\n")
    stats = snapshot.stats
    text.append(f"backlog {stats['backlog']:,} operations", style="bold")
    batches = ", ".join(f"{status} {count:,}" for status, count in stats["batches"].items() if count)
    text.append(f"   batches: {batches or 'none yet'}")
    text.append(f"   rejected events: {stats['rejected_total']:,}")
    return text


def _audiences(snapshot: Snapshot) -> Table:
    table = Table(title="Backlog per audience", title_justify="left", expand=True)
    for column in ("destination", "advertiser", "audience"):
        table.add_column(column)
    for column in ("backlog", "oldest waits", "delivered members"):
        table.add_column(column, justify="right")
    audiences = sorted(snapshot.stats["audiences"], key=lambda a: (-a["backlog"], a["target"]))
    for audience in audiences[:AUDIENCES_SHOWN]:
        oldest = audience.get("oldest_pending_at")
        waited = snapshot.taken_at - oldest if oldest else None
        style = "yellow" if waited is not None and waited > 60 else None
        table.add_row(audience["destination"], audience["advertiser_id"], _audience_name(audience),
                      f"{audience['backlog']:,}", _age(waited), f"{audience['delivered_members']:,}", style=style)
    if len(audiences) > AUDIENCES_SHOWN:
        rest = audiences[AUDIENCES_SHOWN:]
        table.add_row(f"... {len(rest):,} more", "", "", f"{sum(a['backlog'] for a in rest):,}", "", "")
    if not audiences:
        table.add_row("(no audience has received an operation yet)", "", "", "", "", "")
    return table


def _calls(token: TokenCalls, limit: float) -> str:
    if token.calls_per_second is None:
        return "measuring"
    return f"{token.calls_per_second:.1f} of {limit:g} ({token.calls_per_second / limit:.0%})"


def _tokens(snapshot: Snapshot) -> Table:
    table = Table(title="TikTok calls per access token (fleet-wide rate limit)", title_justify="left", expand=True)
    table.add_column("token")
    table.add_column("destinations")
    table.add_column("calls/s of the limit", justify="right")
    table.add_column("cooldown", justify="right")
    for token in snapshot.tokens:
        cooling = token.cooldown_seconds > 0
        table.add_row(token.token_id, ", ".join(token.destinations) or "-", _calls(token, snapshot.rate_limit_qps),
                      f"throttled, {token.cooldown_seconds:.1f}s left" if cooling else "-",
                      style="red" if cooling else None)
    if not snapshot.tokens:
        table.add_row("(no TikTok call made yet)", "", "", "")
    return table


def _paused(snapshot: Snapshot) -> Table | None:
    paused = snapshot.stats["paused_destinations"]
    if not paused:
        return None
    table = Table(title="Paused destinations: no call is made with their token", title_justify="left",
                  expand=True, style="red")
    for column in ("destination", "since", "code", "reason", "after fixing the token"):
        table.add_column(column)
    for destination, info in sorted(paused.items()):
        table.add_row(destination, _clock(info.get("since")), str(info.get("code") or "-"),
                      str(info.get("reason") or ""), f"tiktok-audiences destinations resume {destination}")
    return table


def _dead(snapshot: Snapshot) -> Table | None:
    if not snapshot.recent_dead:
        return None
    table = Table(title="Recent dead batches (tiktok-audiences batches show ID; tiktok-audiences replay ID)",
                  title_justify="left", expand=True)
    for column in ("batch", "died", "destination", "audience", "action", "rows", "code", "message"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for record in snapshot.recent_dead:
        table.add_row(record["id"], _clock(record.get("finished_at") or record.get("updated_at")),
                      record.get("destination", ""), str(record.get("audience_id", "")), record.get("action", ""),
                      f"{record.get('rows', 0):,}", str(record.get("last_code") or "-"),
                      (record.get("last_message") or "")[:80])
    return table


def render(snapshot: Snapshot, interval: float) -> RenderableType:
    if snapshot.error:
        return Group(Text(f"tiktok-audiences  {_clock(snapshot.taken_at)} UTC", style="bold"),
                     Text(f"{snapshot.error}; trying again every {interval:g}s (Ctrl-C to stop)", style="red"))
    parts: list[RenderableType] = [_header(snapshot, interval)]
    paused = _paused(snapshot)
    if paused is not None:
        parts.append(paused)
    parts += [_tokens(snapshot), _audiences(snapshot)]
    dead = _dead(snapshot)
    if dead is not None:
        parts.append(dead)
    return Group(*parts)


def watch(sampler: Sampler, *, interval: float, console: Console | None = None, refreshes: int | None = None,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Redraw the view every ``interval`` seconds until Ctrl-C (or ``refreshes`` redraws, for tests).
    Returns the exit code: 0, Ctrl-C being how a watch is meant to end."""
    console = console or Console()
    drawn = 0
    try:
        with Live(render(sampler.sample(), interval), console=console, auto_refresh=False) as live:
            while refreshes is None or drawn < refreshes:
                sleep(interval)
                live.update(render(sampler.sample(), interval), refresh=True)
                drawn += 1
    except KeyboardInterrupt:
        pass
    return 0


def watch_stats(settings: Settings, client: redis.Redis, *, interval: float,
                console: Console | None = None) -> int:
    """``stats --watch``: the view over the service ``settings`` point at."""
    try:
        destinations: DestinationsFile | None = load_destinations(settings.config_path)
    except ConfigError:
        destinations = None  # the view works without it, naming tokens by id only
    ledger = Ledger(client, delivered_retention=settings.delivered_retention,
                    dead_retention=settings.dead_retention)
    sampler = Sampler(client, ledger, settings.rate_limit_qps, token_destinations(destinations))
    return watch(sampler, interval=interval, console=console)
