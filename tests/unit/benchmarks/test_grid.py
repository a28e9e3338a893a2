"""The rate-limited grid's arithmetic and reporting: which cells run, the floor each can reach (calls needed
divided by the rate), and how results and targets read. Nothing here is timed."""

from __future__ import annotations

import pytest

from benchmarks.grid import (
    AUTO,
    EXISTING,
    CallsNeeded,
    GridCell,
    GridResult,
    calls_needed,
    grid_lines,
    grid_target_lines,
    grid_to_json,
    plan_grid,
    time_limit,
)


def result(audiences: int, mode: str, seconds: float | None, **fields: object) -> GridResult:
    cell = GridCell(audiences, mode)
    r = GridResult(cell, 10.0, time_limit(calls_needed(cell).floor_seconds(10.0)), seconds=seconds,
                   exact=seconds is not None)
    for name, value in fields.items():
        setattr(r, name, value)
    return r


# -- the floor -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("audiences", "mode", "needed", "floor"), [
    (10, EXISTING, CallsNeeded(0, 0, 1), 0.1),  # the accepted mapping call confirms the audiences
    (1_000, EXISTING, CallsNeeded(0, 0, 1), 0.1),  # 5,000 rows fit one mapping call
    (10_000, EXISTING, CallsNeeded(0, 0, 5), 0.5),  # 50,000 rows: five mapping calls
    (10, AUTO, CallsNeeded(10, 0, 1), 1.1),  # created audiences need no ownership look-up
    (200, AUTO, CallsNeeded(200, 0, 1), 20.1),
    (10_000, AUTO, CallsNeeded(10_000, 0, 5), 1_000.5),
])
def test_the_floor_is_creates_look_ups_and_mapping_calls_over_the_rate(
        audiences: int, mode: str, needed: CallsNeeded, floor: float) -> None:
    assert calls_needed(GridCell(audiences, mode)) == needed
    assert calls_needed(GridCell(audiences, mode)).floor_seconds(10.0) == pytest.approx(floor)


def test_look_ups_and_mapping_calls_round_up_to_whole_calls() -> None:
    needed = calls_needed(GridCell(101, EXISTING, users_per_audience=100), checks_first=True)  # 10,100 rows

    assert needed == CallsNeeded(0, 2, 2)
    assert needed.describe() == "0 creates + 2 look-ups + 2 mapping = 4"


def test_a_cell_gets_a_minute_or_one_and_a_half_times_its_floor() -> None:
    assert time_limit(1.1) == 60.0
    assert time_limit(100.1) == pytest.approx(150.15)
    assert time_limit(100.1, override=15.0) == 15.0


# -- which cells run -----------------------------------------------------------------------------------------


def test_the_default_grid_runs_both_modes_and_the_200_audience_create_cell() -> None:
    cells, skipped = plan_grid()

    assert [(c.audiences, c.mode) for c in cells] == [
        (10, EXISTING), (100, EXISTING), (1_000, EXISTING), (10_000, EXISTING),
        (10, AUTO), (100, AUTO), (200, AUTO), (1_000, AUTO)]
    assert all(c.users_per_audience == 5 for c in cells)
    [left_out] = skipped
    assert (left_out.cell.audiences, left_out.cell.mode) == (10_000, AUTO)
    assert "1,000 s" in left_out.reason and "--grid-long" in left_out.reason


def test_the_long_cell_runs_when_asked_for() -> None:
    cells, skipped = plan_grid(include_long=True)

    assert GridCell(10_000, AUTO) in cells
    assert skipped == []


def test_chosen_audience_counts_and_modes_make_the_grid() -> None:
    cells, skipped = plan_grid([100, 10], modes=[AUTO], users=3)

    assert cells == [GridCell(10, AUTO, 3), GridCell(100, AUTO, 3)]
    assert skipped == []


def test_a_faster_rate_brings_a_long_cell_back() -> None:
    _, skipped = plan_grid([10_000], rate=100.0)

    assert skipped == []


# -- reporting -----------------------------------------------------------------------------------------------


def test_a_row_shows_the_time_beside_its_floor_the_calls_and_rows_per_call() -> None:
    r = result(1_000, EXISTING, 0.2, calls_by_endpoint={"/segment/mapping/": 1, "/dmp/custom_audience/get/": 10,
                                                        "/segment/audience/": 0},
               mapping_ok=1, rows_ok=5_000, worker_cpu=0.04, redis_cpu=0.01)

    [_, _, row, _] = grid_lines([r])

    assert "1,000 existing x 5" in row
    assert "0.1s" in row and "0.2 s (2.0x)" in row
    assert "11 (1 map, 0 create, 10 get)" in row
    # 5,000 rows per mapping call; worker + Redis: 0.05 s of CPU over 5,000 events = 10 us each
    assert row.endswith("    5,000        10  exact")
    assert r.cpu_per_event == pytest.approx(10e-6)


def test_a_stalled_cell_says_so_and_names_what_went_wrong() -> None:
    r = result(1_000, AUTO, None, detail="989 audiences never created", error="not delivered within 150 s",
               calls_by_endpoint={"/segment/mapping/": 13, "/segment/audience/": 11}, throttled=2)

    row = grid_lines([r])[2]

    assert "not delivered within 150 s" in row
    assert "2 throttled" in row
    assert "NOT exact: 989 audiences never created" in row


def test_calls_throttled_before_an_endpoint_count_as_calls_made_and_as_throttled() -> None:
    r = result(10, AUTO, 2.0, calls_by_endpoint={"/segment/mapping/": 2, "/segment/audience/": 10},
               throttled_unrouted=3, throttled=4)

    row = grid_lines([r])[2]

    assert r.calls_made == 15
    assert "15 (2 map, 10 create, 0 get, 4 throttled)" in row


def test_look_ups_by_name_and_other_calls_are_shown_when_made() -> None:
    r = result(1_000, AUTO, None, calls_by_endpoint={"/segment/mapping/": 22, "/segment/audience/": 933,
                                                     "/dmp/custom_audience/list/": 154, "/user/info/": 1})

    assert "1,110 (22 map, 933 create, 0 get, 154 list, 1 other)" in grid_lines([r])[2]


def test_skipped_cells_are_listed_with_their_reason() -> None:
    _, skipped = plan_grid()

    lines = grid_lines([], skipped)

    assert any("10,000 auto-created x 5" in line and "skipped" in line for line in lines)


def test_targets_hold_each_time_against_its_bound_and_print_the_floor() -> None:
    grid = [result(10, EXISTING, 0.5, worker_cpu=0.001, redis_cpu=0.0),
            result(1_000, EXISTING, 2.5), result(10_000, EXISTING, 12.0, worker_cpu=0.3, redis_cpu=0.2),
            result(200, AUTO, 27.0)]

    lines = grid_target_lines(grid, reference_cpu_per_event=5e-6, reference="the 10-audience run")

    assert lines[0].startswith("  1,000 existing audiences x 5 within 3 s (floor 0.1 s)")
    assert lines[0].endswith("2.5 s met")
    assert lines[1].endswith("(floor 0.5 s): 12.0 s NOT met")
    assert "creates' floor (20 s, so 26 s): 27.0 s (1.35x) NOT met" in lines[2]
    assert "10.0 against 5.0 us = 2.0x met" in lines[3]


def test_cpu_per_event_of_a_cell_that_did_not_deliver_does_not_meet_the_target() -> None:
    stalled = result(10_000, EXISTING, None, worker_cpu=0.05, redis_cpu=0.0)

    line = grid_target_lines([stalled], reference_cpu_per_event=5e-6, reference="the 10-audience run")[3]

    assert line.endswith("1.0 against 5.0 us = 0.2x NOT met (the cell did not deliver)")


def test_a_target_whose_cell_did_not_run_or_stalled_is_not_met() -> None:
    lines = grid_target_lines([result(1_000, EXISTING, None)], None, "")

    assert "not delivered within 60 s NOT met" in lines[0]
    assert lines[1].endswith("not run")
    assert lines[2].endswith("not run")
    assert lines[3].endswith("not compared (the 10,000-audience cell did not run)")


def test_cpu_per_event_is_not_compared_without_the_10_audience_run() -> None:
    line = grid_target_lines([result(10_000, EXISTING, 11.0)], None, "the 10-audience throughput run (not run)")[3]

    assert line.endswith("within 3x the 10-audience throughput run (not run): not compared")


def test_the_json_form_carries_floor_time_and_calls() -> None:
    document = grid_to_json(result(200, AUTO, 22.0, calls_by_endpoint={"/segment/audience/": 200,
                                                                       "/segment/mapping/": 1}))

    assert document["calls_needed"] == 201
    assert document["floor_seconds"] == 20.1
    assert document["ratio_to_floor"] == pytest.approx(1.09, abs=0.01)
    assert document["calls_made"] == 201
    assert document["membership_exact"] is True
