"""Request bodies are laid out exactly as TikTok's segment endpoints take them."""

from __future__ import annotations

import hashlib
import time

import orjson
import pytest

from worker.tiktok.wire import (
    MAX_ROWS,
    create_audience_body,
    mapping_body,
    truncate_audience_name,
)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


E1, E2, P1, P2, I1, A1 = (digest(v) for v in ("e1", "e2", "p1", "p2", "i1", "a1"))


def cell(value: str, audience: str = "aud") -> dict[str, object]:
    return {"id": value, "audience_ids": [audience]}


def test_body_matches_the_spec_example_byte_for_byte() -> None:
    body = mapping_body(
        "adv",
        "add",
        "aud",
        [{"EMAIL_SHA256": E1, "IDFA_SHA256": I1}, {"PHONE_SHA256": P1}],
    )
    expected = (
        '{"advertiser_ids":["adv"],"action":"add","id_schema":["EMAIL_SHA256","PHONE_SHA256","IDFA_SHA256"],'
        f'"batch_data":[[{{"id":"{E1}","audience_ids":["aud"]}},{{}},{{"id":"{I1}","audience_ids":["aud"]}}],'
        f'[{{}},{{"id":"{P1}","audience_ids":["aud"]}},{{}}]]}}'
    )
    assert body == expected.encode()


def test_keys_are_in_the_spec_order() -> None:
    body = orjson.loads(mapping_body("adv", "delete", "aud", [{"EMAIL_SHA256": E1}]))
    assert list(body) == ["advertiser_ids", "action", "id_schema", "batch_data"]
    assert body["advertiser_ids"] == ["adv"]
    assert body["action"] == "delete"


def test_id_schema_follows_tiktoks_order_whatever_the_rows_order() -> None:
    rows = [{"AAID_SHA256": A1, "PHONE_SHA256": P1}, {"IDFA_SHA256": I1, "EMAIL_SHA256": E1}]
    body = orjson.loads(mapping_body("adv", "add", "aud", rows))
    assert body["id_schema"] == ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256"]
    assert body["batch_data"] == [
        [{}, cell(P1), {}, cell(A1)],
        [cell(E1), {}, cell(I1), {}],
    ]


def test_id_schema_lists_only_types_some_row_uses() -> None:
    rows = [{"EMAIL_SHA256": E1}, {"EMAIL_SHA256": E2}]
    body = orjson.loads(mapping_body("adv", "add", "aud", rows))
    assert body["id_schema"] == ["EMAIL_SHA256"]
    assert body["batch_data"] == [[cell(E1)], [cell(E2)]]


def test_phone_only_users_are_sent() -> None:
    body = orjson.loads(mapping_body("adv", "add", "aud", [{"PHONE_SHA256": P1}, {"PHONE_SHA256": P2}]))
    assert body["id_schema"] == ["PHONE_SHA256"]
    assert body["batch_data"] == [[cell(P1)], [cell(P2)]]


def test_rows_without_any_identifier_are_never_sent() -> None:
    rows = [{}, {"EMAIL_SHA256": E1}, {"EMAIL_SHA256": "", "PHONE_SHA256": ""}, {"PHONE_SHA256": P1}]
    body = orjson.loads(mapping_body("adv", "add", "aud", rows))
    assert body["batch_data"] == [[cell(E1), {}], [{}, cell(P1)]]


def test_a_type_with_only_empty_values_is_not_in_the_schema() -> None:
    body = orjson.loads(mapping_body("adv", "add", "aud", [{"EMAIL_SHA256": E1, "IDFA_SHA256": ""}]))
    assert body["id_schema"] == ["EMAIL_SHA256"]


def test_every_cell_names_the_audience() -> None:
    body = orjson.loads(mapping_body("adv", "add", "7000123", [{"EMAIL_SHA256": E1, "PHONE_SHA256": P1}]))
    assert body["batch_data"] == [[cell(E1, "7000123"), cell(P1, "7000123")]]


def test_at_most_ten_thousand_rows() -> None:
    rows = [{"EMAIL_SHA256": digest(str(i))} for i in range(MAX_ROWS + 1)]
    assert len(orjson.loads(mapping_body("adv", "add", "aud", rows[:MAX_ROWS]))["batch_data"]) == MAX_ROWS
    with pytest.raises(ValueError, match="at most 10000"):
        mapping_body("adv", "add", "aud", rows)


def test_empty_rows_do_not_count_towards_the_limit() -> None:
    rows = [{"EMAIL_SHA256": digest(str(i))} for i in range(MAX_ROWS)] + [{}]
    assert len(orjson.loads(mapping_body("adv", "add", "aud", rows))["batch_data"]) == MAX_ROWS


@pytest.mark.parametrize("rows", [[], [{}], [{"EMAIL_SHA256": ""}]])
def test_nothing_to_send_is_an_error(rows: list[dict[str, str]]) -> None:
    with pytest.raises(ValueError, match="nothing to send"):
        mapping_body("adv", "add", "aud", rows)


def test_unknown_id_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown id types"):
        mapping_body("adv", "add", "aud", [{"MAID_SHA256": E1}])


def test_unknown_action_is_an_error() -> None:
    with pytest.raises(ValueError, match="action"):
        mapping_body("adv", "remove", "aud", [{"EMAIL_SHA256": E1}])  # type: ignore[arg-type]


def test_ten_thousand_rows_build_quickly() -> None:
    # A guard against accidental quadratic work, far above the few milliseconds this takes (see the report).
    rows = [{"EMAIL_SHA256": digest(f"e{i}"), "PHONE_SHA256": digest(f"p{i}")} for i in range(MAX_ROWS)]
    started = time.perf_counter()
    mapping_body("adv", "add", "aud", rows)
    assert time.perf_counter() - started < 1.0


def test_audience_names_up_to_70_characters_are_kept() -> None:
    name = "x" * 70
    assert truncate_audience_name(name) == name


def test_audience_names_over_70_characters_are_cut_to_67_plus_dots() -> None:
    name = "abcdefghij" * 7 + "k"  # 71 characters
    cut = truncate_audience_name(name)
    assert cut == name[:67] + "..."
    assert len(cut) == 70


def test_create_audience_body() -> None:
    body = create_audience_body("adv", "Engage: high value customers")
    assert body == (
        b'{"custom_audience_name":"Engage: high value customers","advertiser_id":"adv","action":"create"}'
    )


def test_create_audience_body_truncates_the_name() -> None:
    body = orjson.loads(create_audience_body("adv", "n" * 100))
    assert body["custom_audience_name"] == "n" * 67 + "..."
