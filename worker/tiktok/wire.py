"""Request bodies for TikTok's segment endpoints, byte for byte as TikTok's API takes them.

Pure functions: no I/O, so the hot path (a 10,000-row mapping body, built once per batch) can be measured and
tested on its own. Key order matters to nobody but a human diffing payloads against Segment's, and dicts keep
insertion order, so the literals below are written in the spec's order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import compress
from typing import Any, Literal, NamedTuple

import orjson

from worker.operations import (
    AAID_SHA256,
    EMAIL_SHA256,
    ID_TYPES_IN_ORDER,
    IDFA_SHA256,
    PHONE_SHA256,
    PackedOperation,
)

MAX_ROWS = 10_000
MAX_AUDIENCE_NAME = 70
_ELLIPSIS = "..."
_KNOWN_TYPES = frozenset(ID_TYPES_IN_ORDER)
_ACTIONS = ("add", "delete")


def mapping_body(
    advertiser_id: str,
    action: Literal["add", "delete"],
    audience_id: str,
    rows: Sequence[Mapping[str, str]],
) -> bytes:
    """The JSON body of ``POST /segment/mapping/``: one action on one audience for up to 10,000 users.

    Each row maps id types (``EMAIL_SHA256`` ...) to digests. ``id_schema`` lists the types some row uses, in
    TikTok's fixed order; every row gets one cell per schema entry, ``{}`` where it lacks that type. A row
    without any identifier is left out. Raises ValueError above 10,000 rows, on an unknown id type or action,
    and when no row is left to send (TikTok would refuse an empty request anyway).
    """
    if action not in _ACTIONS:
        raise ValueError(f"action must be 'add' or 'delete', not {action!r}")

    used: set[str] = set()
    used.update(*rows)
    unknown = used - _KNOWN_TYPES
    if unknown:
        raise ValueError(f"unknown id types {sorted(unknown)}; expected some of {list(ID_TYPES_IN_ORDER)}")
    # Column by column rather than row by row: flat comprehensions and C-level zip/compress instead of a
    # Python frame per row, which is most of the cost at 10,000 rows. An empty digest counts as missing.
    columns = {t: [row.get(t) for row in rows] for t in ID_TYPES_IN_ORDER if t in used}
    # A type whose values are all empty is left out of the schema rather than sent as a column of {}.
    id_schema = [t for t, column in columns.items() if any(column)]
    digest_columns = [columns[t] for t in id_schema]

    # Every cell shares one audience_ids list and every gap one empty dict (orjson writes a shared object out
    # wherever it is referenced), so the only allocation per identifier is its own small dict.
    audience_ids = [audience_id]
    empty: dict[str, Any] = {}
    cell_columns = [
        [{"id": digest, "audience_ids": audience_ids} if digest else empty for digest in column]
        for column in digest_columns
    ]
    return _body([advertiser_id], action, id_schema, digest_columns, cell_columns)


class AudienceRow(NamedTuple):
    """One user of a multi-audience mapping request: its operation (whose identifiers make the row's cells),
    and the audiences it goes to. Rows of one audience may share one ``audience_ids`` list."""

    op: PackedOperation
    audience_ids: list[str]

    @property
    def cells(self) -> dict[str, str]:
        return self.op.cells


def audiences_body(
    advertiser_ids: Sequence[str],
    action: Literal["add", "delete"],
    rows: Sequence[AudienceRow],
) -> bytes:
    """The JSON body of ``POST /segment/mapping/`` carrying rows of several audiences: each
    cell's ``audience_ids`` lists the audiences that row's user is added to (or deleted from). The same rules
    as :func:`mapping_body` otherwise (schema order, ``{}`` gaps, empty rows left out, 10,000 rows at most),
    and built the same way, column by column."""
    if action not in _ACTIONS:
        raise ValueError(f"action must be 'add' or 'delete', not {action!r}")
    if not advertiser_ids:
        raise ValueError("a request needs at least one advertiser id")
    ops = [row.op for row in rows]
    columns = {
        EMAIL_SHA256: [op[1] for op in ops],
        PHONE_SHA256: [op[2] for op in ops],
        IDFA_SHA256: [op[3] if op[4] == IDFA_SHA256 else "" for op in ops],
        AAID_SHA256: [op[3] if op[4] == AAID_SHA256 else "" for op in ops],
    }
    id_schema = [t for t, column in columns.items() if any(column)]
    digest_columns = [columns[t] for t in id_schema]
    audiences = [row.audience_ids for row in rows]
    if not all(audiences):
        raise ValueError("every row must name at least one audience")
    empty: dict[str, Any] = {}
    cell_columns = [
        [{"id": digest, "audience_ids": ids} if digest else empty
         for digest, ids in zip(column, audiences, strict=True)]
        for column in digest_columns
    ]
    return _body(list(advertiser_ids), action, id_schema, digest_columns, cell_columns)


def _body(advertiser_ids: list[str], action: str, id_schema: list[str], digest_columns: list[list[Any]],
          cell_columns: list[list[Any]]) -> bytes:
    """The request body from its columns: rows are tuples of cells (orjson writes them as arrays), and a row
    with no identifier at all is dropped."""
    batch_data = list(compress(zip(*cell_columns, strict=True), map(any, zip(*digest_columns, strict=True))))
    if len(batch_data) > MAX_ROWS:
        raise ValueError(f"{len(batch_data)} rows in one request; TikTok takes at most {MAX_ROWS}")
    if not batch_data:
        raise ValueError("no row carries an identifier; there is nothing to send")
    return orjson.dumps(
        {
            "advertiser_ids": advertiser_ids,
            "action": action,
            "id_schema": id_schema,
            "batch_data": batch_data,
        }
    )


def truncate_audience_name(name: str) -> str:
    """Fit a name into TikTok's 70-character limit the way Segment does: 67 characters and ``...``."""
    if len(name) <= MAX_AUDIENCE_NAME:
        return name
    return name[: MAX_AUDIENCE_NAME - len(_ELLIPSIS)] + _ELLIPSIS


def create_audience_body(advertiser_id: str, name: str) -> bytes:
    """The JSON body of ``POST /segment/audience/``, which creates an empty custom audience."""
    return orjson.dumps(
        {
            "custom_audience_name": truncate_audience_name(name),
            "advertiser_id": advertiser_id,
            "action": "create",
        }
    )
