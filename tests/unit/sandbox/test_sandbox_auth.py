"""Authentication and permission: the token goes in ``Access-Token`` (never ``Authorization: Bearer``), must
be known and not revoked, and may only touch the advertisers it was granted."""

from __future__ import annotations

import json

from sandbox.state import token_id
from tests.support.sandbox import ADVERTISER, OTHER_ADVERTISER, TOKEN, Api


def test_a_call_without_a_token_is_refused_with_40104(api: Api, audience: str) -> None:
    answer = api.add(audience, "a@x.com", token=None)

    assert answer.status == 200
    assert answer.code == 40104
    assert "Access-Token" in answer.message
    assert api.members(audience) == []


def test_a_bearer_token_is_not_accepted(api: Api, audience: str) -> None:
    answer = api.add(audience, "a@x.com", token=None, headers={"Authorization": f"Bearer {TOKEN}"})

    assert answer.code == 40105
    assert "Access-Token header" in answer.message
    assert "Bearer is not accepted" in answer.message
    assert api.members(audience) == []


def test_an_unknown_token_is_refused_with_40105(api: Api, audience: str) -> None:
    answer = api.add(audience, "a@x.com", token="not-a-token")

    assert answer.code == 40105
    assert answer.message == "Access token is incorrect or has been revoked."


def test_a_revoked_token_is_refused_everywhere(api: Api, audience: str) -> None:
    api.admin.knobs(revoked_tokens=[TOKEN])

    assert api.add(audience, "a@x.com").code == 40105
    assert api.request("GET", "/user/info/").code == 40105
    assert api.members(audience) == []


def test_an_advertiser_not_granted_to_the_token_is_refused_with_40001(api: Api) -> None:
    api.admin.add_token("narrow-token", [ADVERTISER])
    other = api.admin.seed_audience(OTHER_ADVERTISER, "other")

    answer = api.add(other, "a@x.com", advertiser=OTHER_ADVERTISER, token="narrow-token")

    assert answer.code == 40001
    assert OTHER_ADVERTISER in answer.message
    assert api.members(other) == []


def test_a_token_added_through_the_admin_api_works(api: Api, audience: str) -> None:
    api.admin.add_token("second-token")

    assert api.add(audience, "a@x.com", token="second-token").code == 0


def test_refused_calls_are_logged_under_a_token_id_never_the_token(api: Api, audience: str) -> None:
    api.add(audience, "a@x.com", token="not-a-token")

    [call] = api.admin.calls()
    assert call["code"] == 40105
    assert call["token_id"] == token_id("not-a-token")
    assert "not-a-token" not in json.dumps(api.admin.calls())
    assert TOKEN not in json.dumps(api.admin.state())
