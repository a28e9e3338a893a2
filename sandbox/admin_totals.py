"""Cheap totals and bulk membership under ``/_sandbox/``, for benchmarks that watch thousands of audiences.

``GET /_sandbox/state`` describes every audience, which is too heavy to poll while a run is being timed; and
reading members one audience at a time costs a round trip each. These two routes answer both in one call:

| route | query | answer |
|---|---|---|
| ``GET /_sandbox/counters`` | | ``{calls_by_endpoint, counters, last_call_seq, audiences, identifiers}`` |
| ``GET /_sandbox/memberships`` | ``advertiser_id`` (optional) | ``{audience_id: {advertiser_id, name, members}}`` |

``identifiers`` is the sum of every audience's size, so a watcher can tell when the expected number of members
has arrived without fetching them.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from sandbox.context import sandbox_of

ADMIN_PREFIX = "/_sandbox"

# TikTok endpoint -> the counter its handler increments for every call it receives (valid or not).
ENDPOINT_COUNTERS: dict[str, str] = {
    "/segment/mapping/": "mapping_calls",
    "/segment/audience/": "create_calls",
    "/dmp/custom_audience/get/": "get_calls",
    "/dmp/custom_audience/list/": "list_calls",
    "/user/info/": "user_info_calls",
    "/oauth2/access_token/": "oauth_calls",
}


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


async def get_counters(request: web.Request) -> web.Response:
    state = sandbox_of(request).state
    counters = dict(state.counters)
    return _json({
        "calls_by_endpoint": {endpoint: counters.get(name, 0) for endpoint, name in ENDPOINT_COUNTERS.items()},
        "counters": {**counters, "mapping_codes": dict(state.mapping_codes)},
        "last_call_seq": state.calls[-1]["seq"] if state.calls else 0,  # the log keeps the newest
        "audiences": len(state.audiences),
        "identifiers": sum(audience.size for audience in state.audiences.values()),
    })


async def get_memberships(request: web.Request) -> web.Response:
    advertiser_id = request.query.get("advertiser_id")
    audiences = sandbox_of(request).state.audiences.values()
    return _json({
        audience.audience_id: {"advertiser_id": audience.advertiser_id, "name": audience.name,
                               "members": audience.member_list()}
        for audience in audiences
        if advertiser_id is None or audience.advertiser_id == advertiser_id
    })


def add_totals_routes(router: web.UrlDispatcher) -> None:
    router.add_get(f"{ADMIN_PREFIX}/counters", get_counters)
    router.add_get(f"{ADMIN_PREFIX}/memberships", get_memberships)
