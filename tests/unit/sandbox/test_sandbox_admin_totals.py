"""Cheap totals and bulk memberships (``/_sandbox/counters``, ``/_sandbox/memberships``), as a benchmark
watching thousands of audiences reads them."""

from __future__ import annotations

from tests.support.sandbox import ADVERTISER, OTHER_ADVERTISER, Api, sha


def test_counters_count_every_call_by_endpoint(api: Api, audience: str) -> None:
    api.add(audience, "a@x.com", "b@x.com")
    api.add(audience, "c@x.com")
    api.request("GET", "/dmp/custom_audience/get/", query={"advertiser_id": ADVERTISER,
                                                          "custom_audience_ids": f'["{audience}"]'})
    api.request("POST", "/segment/audience/", {"advertiser_id": ADVERTISER, "custom_audience_name": "new",
                                                "calculate_type": "MULTIPLE_TYPES"})

    totals = api.admin.totals()

    calls = totals["calls_by_endpoint"]
    assert calls["/segment/mapping/"] == 2
    assert calls["/dmp/custom_audience/get/"] == 1
    assert calls["/segment/audience/"] == 1
    assert calls["/dmp/custom_audience/list/"] == 0
    assert totals["counters"]["rows_ok"] == 3
    assert totals["counters"]["mapping_codes"] == {"0": 2}
    assert totals["last_call_seq"] == api.admin.state()["last_call_seq"] == 2


def test_counters_total_the_audiences_and_their_identifiers(api: Api, audience: str) -> None:
    other = api.admin.seed_audience(ADVERTISER, "other")
    api.add(audience, "a@x.com", "b@x.com")
    api.add(other, "a@x.com")

    totals = api.admin.totals()

    assert totals["audiences"] == 2
    assert totals["identifiers"] == 3


def test_counters_start_from_zero_after_a_reset(api: Api, audience: str) -> None:
    api.add(audience, "a@x.com")
    api.admin.reset()

    totals = api.admin.totals()

    assert totals["last_call_seq"] == 0
    assert totals["audiences"] == totals["identifiers"] == 0
    assert set(totals["calls_by_endpoint"].values()) == {0}


def test_memberships_give_every_audience_with_its_name_and_members(api: Api, audience: str) -> None:
    theirs = api.admin.seed_audience(OTHER_ADVERTISER, "theirs")
    api.add(audience, "b@x.com", "a@x.com")

    everyone = api.admin.memberships()
    ours = api.admin.memberships(ADVERTISER)

    assert set(everyone) == {audience, theirs}
    assert ours == {audience: {"advertiser_id": ADVERTISER, "name": "test audience",
                               "members": sorted([f"EMAIL_SHA256:{sha('a@x.com')}",
                                                  f"EMAIL_SHA256:{sha('b@x.com')}"])}}
    assert everyone[theirs]["members"] == []
