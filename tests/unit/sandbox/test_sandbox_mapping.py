"""/segment/mapping/: a valid add or delete changes membership, and answers TikTok's success envelope."""

from __future__ import annotations

from tests.support.sandbox import Api, sha


def test_add_puts_every_identifier_of_every_row_in(api: Api, audience: str) -> None:
    answer = api.mapping(
        api.body(
            audience,
            [[sha("a@x.com"), None, sha("idfa-1")], [None, sha("+15550001"), None]],
            schema=["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256"],
        )
    )

    assert answer.status == 200
    assert answer.json["code"] == 0
    assert answer.json["message"] == "OK"
    assert answer.json["data"] == {}
    assert answer.json["request_id"]
    assert api.members(audience) == sorted(
        [f"EMAIL_SHA256:{sha('a@x.com')}", f"IDFA_SHA256:{sha('idfa-1')}", f"PHONE_SHA256:{sha('+15550001')}"]
    )


def test_delete_removes_the_identifiers_and_ignores_absent_ones(api: Api, audience: str) -> None:
    api.add(audience, "a@x.com", "b@x.com")

    answer = api.add(audience, "a@x.com", "never-added@x.com", action="delete")

    assert answer.code == 0
    assert api.members(audience) == [f"EMAIL_SHA256:{sha('b@x.com')}"]


def test_membership_is_per_id_type(api: Api, audience: str) -> None:
    digest = sha("same-value")
    api.mapping(api.body(audience, [[digest, digest]], schema=["EMAIL_SHA256", "IDFA_SHA256"]))

    api.mapping(api.body(audience, [[digest]], schema=["IDFA_SHA256"], action="delete"))

    assert api.members(audience) == [f"EMAIL_SHA256:{digest}"]


def test_adding_twice_is_idempotent(api: Api, audience: str) -> None:
    api.add(audience, "a@x.com")
    api.add(audience, "a@x.com")

    assert api.admin.state()["audiences"][audience]["size"] == 1


def test_a_full_request_of_10000_rows_is_accepted(api: Api, audience: str) -> None:
    rows = [[sha(f"user{i}@x.com"), sha(f"phone{i}")] for i in range(10_000)]

    answer = api.mapping(api.body(audience, rows, schema=["EMAIL_SHA256", "PHONE_SHA256"]))

    assert answer.code == 0
    state = api.admin.state()
    assert state["audiences"][audience]["size"] == 20_000
    assert state["counters"]["rows_ok"] == 10_000


def test_success_is_counted_and_logged(api: Api, audience: str) -> None:
    api.add(audience, "a@x.com", "b@x.com")

    counters = api.admin.counters()
    assert (counters["mapping_calls"], counters["mapping_ok"], counters["rows_ok"]) == (1, 1, 2)
    [call] = api.admin.calls()
    assert call["code"] == 0
    assert call["http_status"] == 200
    assert call["rows"] == 2
    assert call["audience_id"] == audience
    assert call["action"] == "add"


def _cell(email: str, *audiences: str) -> dict[str, object]:
    return {"id": sha(email), "audience_ids": list(audiences)}


def test_one_request_carries_rows_of_several_audiences_and_a_row_may_name_several(api: Api, audience: str) -> None:
    second = api.admin.seed_audience(api.advertiser, "second")
    body = {"advertiser_ids": [api.advertiser], "action": "add", "id_schema": ["EMAIL_SHA256"],
            "batch_data": [[_cell("a@x.com", audience)], [_cell("b@x.com", second)],
                           [_cell("c@x.com", audience, second)]]}

    assert api.mapping(body).code == 0

    assert api.members(audience) == sorted(f"EMAIL_SHA256:{sha(e)}" for e in ("a@x.com", "c@x.com"))
    assert api.members(second) == sorted(f"EMAIL_SHA256:{sha(e)}" for e in ("b@x.com", "c@x.com"))
    assert api.admin.calls()[-1]["audience_ids"] == [audience, second]


def test_audiences_of_two_advertisers_of_the_token_go_in_one_request(api: Api, audience: str) -> None:
    other = api.admin.seed_audience(api.other_advertiser, "other's")
    body = {"advertiser_ids": [api.advertiser, api.other_advertiser], "action": "add",
            "id_schema": ["EMAIL_SHA256"], "batch_data": [[_cell("a@x.com", audience, other)]]}

    assert api.mapping(body).code == 0
    assert api.members(other) == [f"EMAIL_SHA256:{sha('a@x.com')}"]


def test_an_audience_of_an_advertiser_not_named_fails_the_whole_request(api: Api, audience: str) -> None:
    other = api.admin.seed_audience(api.other_advertiser, "other's")
    body = {"advertiser_ids": [api.advertiser], "action": "add", "id_schema": ["EMAIL_SHA256"],
            "batch_data": [[_cell("a@x.com", audience)], [_cell("b@x.com", other)]]}

    answer = api.mapping(body)

    assert answer.code == 40002
    assert f"audience {other} does not exist or does not belong" in answer.message
    assert api.members(audience) == [] and api.members(other) == []
