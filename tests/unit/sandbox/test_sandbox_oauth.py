"""OAuth and user info: a configured app exchanges a known auth code for a new working token; anything else
is refused and issues nothing. /user/info/ answers for a valid token only."""

from __future__ import annotations

from sandbox.config import DEFAULT_ADVERTISERS
from tests.support.sandbox import Answer, Api

GOOD = {"app_id": "sandbox-app", "secret": "sandbox-secret", "auth_code": "sandbox-auth-code"}


def _exchange(api: Api, **overrides: str) -> Answer:
    return api.request("POST", "/oauth2/access_token/", {**GOOD, **overrides}, token=None)


def test_a_known_auth_code_is_exchanged_for_a_new_working_token(api: Api, audience: str) -> None:
    answer = _exchange(api)

    assert answer.code == 0
    token = answer.data["access_token"]
    assert answer.data["advertiser_ids"] == list(DEFAULT_ADVERTISERS)
    assert isinstance(answer.data["scope"], list)
    assert api.add(audience, "a@x.com", token=token).code == 0
    assert api.request("GET", "/user/info/", token=token).code == 0


def test_each_exchange_issues_a_different_token(api: Api) -> None:
    assert _exchange(api).data["access_token"] != _exchange(api).data["access_token"]


def test_an_unknown_auth_code_is_refused_and_issues_nothing(api: Api) -> None:
    tokens_before = len(api.admin.state()["tokens"])

    answer = _exchange(api, auth_code="stolen-code")

    assert answer.code == 40110
    assert "Auth code is invalid" in answer.message
    assert answer.data == {}
    assert len(api.admin.state()["tokens"]) == tokens_before


def test_a_wrong_app_secret_is_refused(api: Api) -> None:
    answer = _exchange(api, secret="guess")

    assert answer.code == 40101
    assert "app_id and secret" in answer.message


def test_a_missing_field_is_refused_with_40002(api: Api) -> None:
    answer = api.request("POST", "/oauth2/access_token/", {"app_id": "sandbox-app"}, token=None)

    assert answer.code == 40002
    assert "missing required field(s): secret, auth_code" in answer.message


def test_reset_forgets_issued_tokens(api: Api) -> None:
    token = _exchange(api).data["access_token"]

    api.admin.reset()

    assert api.request("GET", "/user/info/", token=token).code == 40105


def test_user_info_describes_the_tokens_user(api: Api) -> None:
    answer = api.request("GET", "/user/info/")

    assert answer.code == 0
    assert {"id", "display_name", "email"} <= set(answer.data)


def test_user_info_refuses_an_unknown_token(api: Api) -> None:
    assert api.request("GET", "/user/info/", token="nope").code == 40105
