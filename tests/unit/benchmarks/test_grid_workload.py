"""A grid cell's events and the membership check that ends it: each user enters one audience; existing
audiences are named by id; auto-created ones are found at TikTok by name, so a duplicate create shows."""

from __future__ import annotations

import orjson

from benchmarks.grid import AUTO, EXISTING, GridCell
from benchmarks.grid_run import (
    MembershipCheck,
    build_grid_workload,
    check_grid_membership,
    grid_email,
    grid_key,
)
from producer.identifiers import hash_email
from sandbox.admin import SandboxAdmin
from tests.support.sandbox import Api
from tiktok_audiences.local_stack import SANDBOX_ADVERTISER


def events_of(bodies: list[bytes]) -> list[dict[str, object]]:
    return [event for body in bodies for event in orjson.loads(body)["batch"]]


def test_every_user_enters_one_audience_and_consecutive_events_spread_over_all() -> None:
    workload = build_grid_workload(GridCell(30, AUTO, users_per_audience=5), per_request=100)

    events = events_of(workload.bodies)
    assert len(workload.bodies) == 2 and len(events) == 150
    assert [e["context"]["personas"]["computation_key"] for e in events[:3]] == ["grid_0", "grid_1", "grid_2"]
    assert {e["event"] for e in events} == {"Audience Entered"}
    assert len({e["userId"] for e in events}) == 150
    assert all(len(members) == 5 for members in workload.expected.values())
    assert workload.identifiers == 150
    assert "external_audience_id" not in events[0]["context"]["personas"]


def test_events_for_existing_audiences_name_the_audience_id() -> None:
    ids = {grid_key(a): str(9000 + a) for a in range(3)}

    workload = build_grid_workload(GridCell(3, EXISTING, users_per_audience=2), ids)

    events = events_of(workload.bodies)
    assert [e["context"]["personas"]["external_audience_id"] for e in events] == ["9000", "9001", "9002"] * 2
    assert workload.expected["grid_1"] == {f"EMAIL_SHA256:{hash_email(grid_email(1))}",
                                           f"EMAIL_SHA256:{hash_email(grid_email(4))}"}


def deliver(api: Api, audience_id: str, users: list[int]) -> None:
    answer = api.mapping(api.body(audience_id, [[hash_email(grid_email(u))] for u in users]))
    assert answer.code == 0


def test_existing_audiences_holding_exactly_their_users_are_exact(sandbox: SandboxAdmin) -> None:
    api = Api(sandbox.base_url)
    ids = {grid_key(a): sandbox.seed_audience(SANDBOX_ADVERTISER, grid_key(a)) for a in range(2)}
    workload = build_grid_workload(GridCell(2, EXISTING, users_per_audience=2), ids)
    deliver(api, ids["grid_0"], [0, 2])
    deliver(api, ids["grid_1"], [1])

    assert check_grid_membership(sandbox, workload, ids) == MembershipCheck(
        False, "1 audiences differ; 1 identifiers missing, 0 extra", contradicted=False)  # late, not wrong
    deliver(api, ids["grid_1"], [3])
    assert check_grid_membership(sandbox, workload, ids) == MembershipCheck(True, "2 audiences, 4 identifiers")
    deliver(api, ids["grid_1"], [0])  # a member of grid_0 in grid_1 as well
    assert check_grid_membership(sandbox, workload, ids) == MembershipCheck(
        False, "1 audiences differ; 0 identifiers missing, 1 extra", contradicted=True)


def test_auto_created_audiences_are_found_by_name_and_duplicates_are_reported(sandbox: SandboxAdmin) -> None:
    api = Api(sandbox.base_url)
    workload = build_grid_workload(GridCell(2, AUTO, users_per_audience=1))
    first = sandbox.seed_audience(SANDBOX_ADVERTISER, "grid_0")
    deliver(api, first, [0])

    check = check_grid_membership(sandbox, workload, None)
    assert not check.exact and not check.contradicted
    assert check.detail.startswith("1 audiences never created; 1 identifiers missing")

    deliver(api, sandbox.seed_audience(SANDBOX_ADVERTISER, "grid_1"), [1])
    assert check_grid_membership(sandbox, workload, None) == MembershipCheck(True, "2 audiences, 2 identifiers")

    sandbox.seed_audience(SANDBOX_ADVERTISER, "grid_1")  # a second create of the same Engage audience
    assert check_grid_membership(sandbox, workload, None) == MembershipCheck(
        False, "1 audiences created more than once", contradicted=True)
