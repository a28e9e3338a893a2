"""/segment/mapping/ bodies are checked as strictly as TikTok checks them: every rule refuses with 40002, the
message names the field (with its position) and the problem, and nothing is applied."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sandbox.validation import MappingHeader, check_batch_data
from tests.support.sandbox import ADVERTISER, OTHER_ADVERTISER, Api, sha

Body = dict[str, Any]


def _valid_body(api: Api, audience: str) -> Body:
    return api.body(
        audience,
        [[sha("a@x.com"), sha("+15550001")], [sha("b@x.com"), None]],
        schema=["EMAIL_SHA256", "PHONE_SHA256"],
    )


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Body], None]:
    """A mutation that sets ``body[path...] = value``."""

    def mutate(body: Body) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _add_rows(count: int) -> Callable[[Body], None]:
    def mutate(body: Body) -> None:
        cell = body["batch_data"][0][0]
        body["batch_data"] = [[cell, {}] for _ in range(count)]

    return mutate


BODY_RULES: list[tuple[str, Callable[[Body], None], list[str]]] = [
    ("unknown top-level key", _set(("extra",), 1), ["unknown field(s): extra"]),
    ("missing batch_data", lambda b: b.pop("batch_data"), ["missing required field(s): batch_data"]),
    ("the same advertiser twice", _set(("advertiser_ids",), [ADVERTISER, ADVERTISER]),
     ["advertiser_ids", "distinct advertiser ids"]),
    ("no advertiser", _set(("advertiser_ids",), []), ["advertiser_ids", "non-empty array"]),
    ("advertiser as a bare string", _set(("advertiser_ids",), ADVERTISER), ["advertiser_ids"]),
    ("unknown action", _set(("action",), "remove"), ['action: expected "add" or "delete"', '"remove"']),
    ("empty id_schema", _set(("id_schema",), []), ["id_schema: expected a non-empty array"]),
    ("unknown id type", _set(("id_schema", 1), "MAID_SHA256"),
     ["id_schema[1]", "unknown id type", "MAID_SHA256"]),
    ("duplicate id type", _set(("id_schema", 1), "EMAIL_SHA256"), ["id_schema[1]", "duplicate id type"]),
    ("batch_data not an array", _set(("batch_data",), {}), ["batch_data: expected an array of rows"]),
    ("empty batch_data", _set(("batch_data",), []), ["batch_data: must contain at least one row"]),
    ("10,001 rows", _add_rows(10_001), ["batch_data: at most 10000 rows per request, got 10001"]),
    ("row with too few cells", lambda b: b["batch_data"][1].pop(),
     ["batch_data[1]: expected 2 cells for id_schema, got 1"]),
    ("row that is not an array", _set(("batch_data", 1), {}),
     ["batch_data[1]: expected an array of 2 cells"]),
    ("cell that is not an object", _set(("batch_data", 1, 1), "x"), ["batch_data[1][1]: expected an object"]),
    ("uppercase digest", _set(("batch_data", 0, 1, "id"), sha("+15550001").upper()),
     ["batch_data[0][1].id", "64 lowercase hex", "uppercase hex is refused"]),
    ("short digest", _set(("batch_data", 0, 0, "id"), "abc123"), ["batch_data[0][0].id", '"abc123"']),
    ("raw email instead of a digest", _set(("batch_data", 1, 0, "id"), "b@x.com"), ["batch_data[1][0].id"]),
    ("numeric id", _set(("batch_data", 0, 0, "id"), 12345), ["batch_data[0][0].id"]),
    ("unknown cell key", _set(("batch_data", 0, 0, "extra"), 1),
     ["batch_data[0][0]: unknown field(s): extra"]),
    ("cell without audience_ids", lambda b: b["batch_data"][1][0].pop("audience_ids"),
     ["batch_data[1][0]: missing field(s): audience_ids"]),
    ("no audience in a cell", _set(("batch_data", 0, 0, "audience_ids"), []),
     ["batch_data[0][0].audience_ids", "non-empty array of distinct audience ids"]),
    ("an audience twice in one cell", _set(("batch_data", 0, 1, "audience_ids"), ["1", "1"]),
     ["batch_data[0][1].audience_ids", "non-empty array of distinct audience ids"]),
    ("an audience no advertiser of the request owns", _set(("batch_data", 1, 0, "audience_ids"), ["999"]),
     ["audience 999 does not exist or does not belong to advertiser"]),
    ("row whose cells are all empty", _set(("batch_data", 1, 0), {}), ["batch_data[1]: every cell is empty"]),
]


@pytest.mark.parametrize(
    ("mutate", "fragments"), [(m, f) for _, m, f in BODY_RULES], ids=[name for name, _, _ in BODY_RULES]
)
def test_each_body_rule_refuses_with_40002_naming_the_problem(
    api: Api, audience: str, mutate: Callable[[Body], None], fragments: list[str]
) -> None:
    body = _valid_body(api, audience)
    mutate(body)

    answer = api.mapping(body)

    assert answer.status == 200
    assert answer.code == 40002
    for fragment in fragments:
        assert fragment in answer.message
    assert api.members(audience) == []
    assert api.admin.calls()[-1]["code"] == 40002


def test_the_valid_body_those_rules_start_from_is_accepted(api: Api, audience: str) -> None:
    assert api.mapping(_valid_body(api, audience)).code == 0


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [("text/plain", "got 'text/plain'"), (None, "no Content-Type header")],
)
def test_a_body_that_is_not_declared_json_is_refused(
    api: Api, audience: str, content_type: str | None, expected: str
) -> None:
    answer = api.mapping(_valid_body(api, audience), content_type=content_type)

    assert answer.code == 40002
    assert "Content-Type must be application/json" in answer.message
    assert expected in answer.message


def test_a_json_content_type_with_a_charset_is_fine(api: Api, audience: str) -> None:
    answer = api.mapping(_valid_body(api, audience), content_type="application/json; charset=utf-8")

    assert answer.code == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"{not json", "body is not valid JSON"), (b"[]", "body must be a JSON object, got array")],
)
def test_a_body_that_is_not_a_json_object_is_refused(api: Api, raw: bytes, expected: str) -> None:
    answer = api.mapping(None, raw=raw)

    assert answer.code == 40002
    assert expected in answer.message


def test_an_audience_of_another_advertiser_is_refused_by_id(api: Api) -> None:
    foreign = api.admin.seed_audience(OTHER_ADVERTISER, "theirs")

    answer = api.add(foreign, "a@x.com")

    assert answer.code == 40002
    expected = f"audience {foreign} does not exist or does not belong to advertiser {ADVERTISER}"
    assert expected in answer.message
    assert api.members(foreign) == []


def test_an_unknown_audience_is_refused_by_id(api: Api) -> None:
    answer = api.add("4242", "a@x.com")

    assert answer.code == 40002
    assert "audience 4242 does not exist" in answer.message


def test_id_schema_order_is_the_clients_choice(api: Api, audience: str) -> None:
    body = api.body(audience, [[sha("+15550001"), sha("a@x.com")]], schema=["PHONE_SHA256", "EMAIL_SHA256"])

    assert api.mapping(body).code == 0
    assert api.members(audience) == [f"EMAIL_SHA256:{sha('a@x.com')}", f"PHONE_SHA256:{sha('+15550001')}"]


def test_the_checked_request_carries_digests_per_column_in_row_order() -> None:
    header = MappingHeader((ADVERTISER,), "add", ("EMAIL_SHA256", "AAID_SHA256"))
    rows = [
        [{"id": sha("1"), "audience_ids": ["9"]}, {}],
        [{}, {"id": sha("2"), "audience_ids": ["9"]}],
        [{"id": sha("3"), "audience_ids": ["9"]}, {"id": sha("4"), "audience_ids": ["9"]}],
    ]

    request = check_batch_data(rows, header, max_rows=10)

    assert request.audience_id == "9"
    assert request.rows == 3
    assert dict(request.by_type("9")) == {
        "EMAIL_SHA256": [sha("1"), sha("3")],
        "AAID_SHA256": [sha("2"), sha("4")],
    }


def test_a_row_naming_two_audiences_counts_for_each() -> None:
    header = MappingHeader((ADVERTISER,), "add", ("EMAIL_SHA256",))
    rows = [[{"id": sha("1"), "audience_ids": ["8", "9"]}], [{"id": sha("2"), "audience_ids": ["9"]}]]

    request = check_batch_data(rows, header, max_rows=10)

    assert request.audience_ids == ["8", "9"]
    assert dict(request.by_type("8")) == {"EMAIL_SHA256": [sha("1")]}
    assert dict(request.by_type("9")) == {"EMAIL_SHA256": [sha("1"), sha("2")]}
