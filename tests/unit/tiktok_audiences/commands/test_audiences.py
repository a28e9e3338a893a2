"""``tiktok-audiences audiences create|list`` against the sandbox TikTok and fakeredis."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from sandbox.admin import SandboxAdmin
from sandbox.config import DEFAULT_ADVERTISERS, DEFAULT_TOKEN
from tests.support.cli import ADVERTISER
from worker import keys
from worker.keys import Target
from worker.membership import Membership
from worker.operations import Operation, PackedOperation

Cli = Callable[..., int]


def test_create_prints_and_records_the_new_id(cli: Cli, sandbox: SandboxAdmin, redis_client: object,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("audiences", "create", "VIP buyers") == 0
    out = capsys.readouterr().out
    (audience_id,) = sandbox.state()["audiences"]
    assert f"created audience {audience_id} 'VIP buyers' under advertiser {ADVERTISER}" in out
    assert sandbox.state()["audiences"][audience_id]["name"] == "VIP buyers"
    assert cli("audiences", "list", "--json") == 0
    (row,) = orjson.loads(capsys.readouterr().out)
    assert (row["audience_id"], row["name"], row["origin"], row["advertiser_id"]) == (
        audience_id, "VIP buyers", "cli", ADVERTISER)


def test_create_cuts_names_over_70_characters(cli: Cli, sandbox: SandboxAdmin,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    name = "Customers who bought twice in the last ninety days and opened the newsletter"
    assert len(name) > 70
    assert cli("audiences", "create", name) == 0
    out = capsys.readouterr().out
    cut = name[:67] + "..."
    assert f"it was cut to {cut!r}" in out
    (audience,) = sandbox.state()["audiences"].values()
    assert audience["name"] == cut and len(cut) == 70


def test_create_under_another_advertiser_and_refusals(cli: Cli, sandbox: SandboxAdmin,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("audiences", "create", "--advertiser-id", DEFAULT_ADVERTISERS[1], "second") == 0
    (audience,) = sandbox.state()["audiences"].values()
    assert audience["advertiser_id"] == DEFAULT_ADVERTISERS[1]
    assert cli("audiences", "create", "--advertiser-id", "123", "x") == 2
    assert "is not one of destination 'main'" in capsys.readouterr().err
    assert cli("audiences", "create", "--destination", "nope", "x") == 2
    assert "no destination 'nope'" in capsys.readouterr().err


def test_create_reports_tiktok_refusing_without_the_token(cli: Cli, sandbox: SandboxAdmin,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    sandbox.knobs(revoked_tokens=[DEFAULT_TOKEN])
    assert cli("audiences", "create", "VIP") == 1
    captured = capsys.readouterr()
    assert "TikTok did not create the audience" in captured.err and "40105" in captured.err
    assert DEFAULT_TOKEN not in captured.out + captured.err


def test_list_shows_delivered_membership_and_the_targeting_minimum(
        cli: Cli, redis_client: object, capsys: pytest.CaptureFixture[str]) -> None:
    client = redis_client
    target = Target("main", ADVERTISER, "@engaged")
    client.set(keys.created_audience("main", ADVERTISER, "engaged"), "1000000000000000042")  # type: ignore[attr-defined]
    client.hset(keys.AUDIENCES, f"main|{ADVERTISER}|1000000000000000042", orjson.dumps({  # type: ignore[attr-defined]
        "destination": "main", "advertiser_id": ADVERTISER, "audience_id": "1000000000000000042",
        "name": "engaged", "origin": "auto-create"}))
    client.sadd(keys.TARGETS, target.name)  # type: ignore[attr-defined]
    ops = [PackedOperation.unpack(Operation(target, "add", email=f"{i:064x}").pack()) for i in range(1000)]
    Membership(client).record(target.name, "add", "1-0", ops)  # type: ignore[arg-type]
    assert cli("audiences", "list") == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()
    assert header.split()[:4] == ["destination", "advertiser", "audience", "id"]
    assert "1000000000000000042" in row and "engaged" in row and " 1000 " in row and " yes " in row


def test_list_with_nothing_known(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("audiences", "list") == 0
    assert "no audiences yet" in capsys.readouterr().out
