"""Audiences: /segment/audience/ creates one (names over 70 characters are refused), /dmp/custom_audience/get/
shows the details of the advertiser's audiences, /dmp/custom_audience/list/ pages through them."""

from __future__ import annotations

import json

from tests.support.sandbox import ADVERTISER, OTHER_ADVERTISER, Answer, Api


def _create(api: Api, name: str, advertiser: str = ADVERTISER, **extra: str) -> Answer:
    body = {"custom_audience_name": name, "advertiser_id": advertiser, "action": "create", **extra}
    return api.request("POST", "/segment/audience/", body)


def _get(api: Api, *ids: str, advertiser: str = ADVERTISER) -> Answer:
    query = {"advertiser_id": advertiser, "custom_audience_ids": json.dumps(list(ids))}
    return api.request("GET", "/dmp/custom_audience/get/", query=query)


def _list(api: Api, advertiser: str = ADVERTISER, **query: str) -> Answer:
    return api.request("GET", "/dmp/custom_audience/list/", query={"advertiser_id": advertiser, **query})


def test_create_answers_a_new_numeric_audience_id_and_counts_the_call(api: Api) -> None:
    first = _create(api, "VIP customers")
    second = _create(api, "Lapsed customers")

    assert first.code == 0
    assert first.data == {"audience_id": "1000000000000000001"}
    assert second.data == {"audience_id": "1000000000000000002"}
    state = api.admin.state()
    assert state["audiences"]["1000000000000000001"] == {
        "advertiser_id": ADVERTISER, "name": "VIP customers", "size": 0, "by_type": {}
    }
    assert state["counters"]["create_calls"] == 2


def test_created_ids_skip_ids_already_seeded(api: Api) -> None:
    api.admin.seed_audience(ADVERTISER, "legacy", audience_id="1000000000000000001")

    assert _create(api, "new").data == {"audience_id": "1000000000000000002"}


def test_a_name_of_70_characters_is_accepted_and_71_refused(api: Api) -> None:
    assert _create(api, "n" * 70).code == 0

    refused = _create(api, "n" * 71)

    assert refused.code == 40002
    assert "custom_audience_name: at most 70 characters, got 71" in refused.message
    assert api.admin.counters()["create_calls"] == 2
    assert len(api.admin.state()["audiences"]) == 1


def test_create_accepts_an_id_type_and_refuses_unknown_fields(api: Api) -> None:
    assert _create(api, "typed", id_type="EMAIL_SHA256").code == 0

    refused = _create(api, "extra", colour="blue")

    assert refused.code == 40002
    assert "unknown field(s): colour" in refused.message


def test_create_refuses_another_action_and_an_advertiser_not_granted(api: Api) -> None:
    body = {"custom_audience_name": "x", "advertiser_id": ADVERTISER, "action": "delete"}
    wrong_action = api.request("POST", "/segment/audience/", body)
    assert wrong_action.code == 40002

    assert _create(api, "x", advertiser="7999999999999999999").code == 40001


def test_get_shows_details_with_the_current_size(api: Api) -> None:
    audience = _create(api, "VIP customers").data["audience_id"]
    api.add(audience, "a@x.com", "b@x.com")

    answer = _get(api, audience)

    assert answer.code == 0
    [entry] = answer.data["list"]
    details = entry["audience_details"]
    assert details["audience_id"] == audience
    assert details["name"] == "VIP customers"
    assert details["cover_num"] == 2
    assert details["is_valid"] is False  # under the 1,000 TikTok needs to target it
    assert details["is_creator"] is True
    assert entry["audience_history"][0]["action"] == "create"


def test_get_refuses_an_audience_of_another_advertiser_naming_it(api: Api) -> None:
    mine = _create(api, "mine").data["audience_id"]
    theirs = _create(api, "theirs", advertiser=OTHER_ADVERTISER).data["audience_id"]

    answer = _get(api, mine, theirs)

    assert answer.code == 40002
    assert f"audience {theirs} does not exist or does not belong to advertiser {ADVERTISER}" in answer.message


def test_get_needs_a_json_encoded_list_of_ids(api: Api) -> None:
    answer = api.request(
        "GET", "/dmp/custom_audience/get/", query={"advertiser_id": ADVERTISER, "custom_audience_ids": "123"}
    )

    assert answer.code == 40002
    assert "custom_audience_ids: expected a JSON-encoded array" in answer.message


def test_list_pages_through_the_advertisers_audiences_newest_first(api: Api) -> None:
    ids = [_create(api, f"audience {i}").data["audience_id"] for i in range(3)]
    _create(api, "someone else's", advertiser=OTHER_ADVERTISER)

    page1 = _list(api, page="1", page_size="2")
    page2 = _list(api, page="2", page_size="2")

    assert [a["audience_id"] for a in page1.data["list"]] == [ids[2], ids[1]]
    assert [a["audience_id"] for a in page2.data["list"]] == [ids[0]]
    assert page1.data["page_info"] == {"page": 1, "page_size": 2, "total_number": 3, "total_page": 2}
    assert {"audience_id", "name", "cover_num", "is_valid", "create_time"} <= set(page1.data["list"][0])


def test_list_refuses_a_page_size_over_100(api: Api) -> None:
    answer = _list(api, page_size="101")

    assert answer.code == 40002
    assert "page_size" in answer.message
