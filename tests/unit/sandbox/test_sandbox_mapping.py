"""/segment/mapping/: a valid add or delete changes membership, and answers TikTok's success envelope."""

from __future__ import annotations

from tests.unit.sandbox.sandbox_testkit import Api, sha


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
