"""`config import-segment`: a Segment TikTok Audiences destination and its subscriptions, as Segment's Public
API returns them, become a destinations file that loads; disabled subscriptions stay as comments; whatever
cannot be carried over is listed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.destinations import parse_destinations
from producer.routing import Router
from tiktok_audiences.segment_import import SegmentImportError, convert, read_documents

ADVERTISER = "7000000000000000001"
EMAIL_DEFAULT = {
    "@if": {
        "exists": {"@path": "$.context.traits.email"},
        "then": {"@path": "$.context.traits.email"},
        "else": {"@path": "$.properties.email"},
    }
}


def destination(**settings: Any) -> dict[str, Any]:
    return {
        "data": {
            "destination": {
                "id": "fP7qoQw2HTWt9WdMr718gn",
                "name": "TikTok Audiences (prod)",
                "enabled": True,
                "settings": settings,
                "metadata": {"id": "61d7", "name": "TikTok Audiences", "slug": "actions-tiktok-audiences"},
            }
        }
    }


def subscription(slug: str, name: str, trigger: str, settings: dict[str, Any], enabled: bool = True) -> dict[str, Any]:
    return {
        "id": f"sub-{name}",
        "name": name,
        "actionId": "a1",
        "actionSlug": slug,
        "destinationId": "fP7qoQw2HTWt9WdMr718gn",
        "modelId": "",
        "enabled": enabled,
        "trigger": trigger,
        "settings": settings,
    }


SUBSCRIPTIONS = [
    subscription(
        "addToAudience",
        "Entered",
        'event = "Audience Entered"',
        {"email": EMAIL_DEFAULT, "send_email": True, "send_phone": True, "enable_batching": True},
    ),
    subscription(
        "addUser",
        "VIP adds",
        'event = "Audience Entered" and contains(properties.audience_key, "vip")',
        {
            "selected_advertiser_id": ADVERTISER,
            "audience_id": "1234345",
            "send_phone": False,
            "phone": {"@replace": {"pattern": " ", "value": {"@path": "$.properties.phone"}}},
            "batch_size": 1000,
        },
    ),
    subscription("removeUser", "VIP removes", 'event = "Audience Exited"',
                 {"selected_advertiser_id": ADVERTISER, "audience_id": "1234345"}, enabled=False),
    subscription("updateAudience", "Unknown", 'type = "track"', {}),
    subscription("removeFromAudience", "Broken", 'event = "Audience Exited" and', {}),
]


def imported(settings: dict[str, Any] | None = None, subs: list[dict[str, Any]] = SUBSCRIPTIONS) -> Any:
    dest = destination(**(settings if settings is not None else {"advertiser_ids": [ADVERTISER]}))
    return convert(dest["data"]["destination"], subs)


def test_the_file_loads_and_routes_like_segment() -> None:
    result = imported()
    config = parse_destinations(yaml.safe_load(result.text))
    (dest,) = config.destinations
    assert dest.id == "tiktok-audiences-prod" and dest.name == "TikTok Audiences (prod)"
    assert dest.advertiser_ids == [ADVERTISER]
    assert dest.hashing == "segment"
    assert dest.access_token_env == "TIKTOK_ACCESS_TOKEN"
    names = [(m["action"], m.get("name")) for m in dest.mappings]
    assert names == [("addToAudience", "Entered"), ("addUser", "VIP adds")]
    entered, vip = dest.mappings
    assert "subscribe" not in entered  # the action's default trigger
    assert vip["subscribe"] == 'event = "Audience Entered" and contains(properties.audience_key, "vip")'
    assert vip["fields"]["phone"] == {"@replace": {"pattern": " ", "value": {"@path": "$.properties.phone"}}}
    Router.from_destinations(config)  # everything compiles
    assert result.mappings == 2 and result.disabled == 1


def test_disabled_and_unloadable_subscriptions_stay_as_comments_in_order() -> None:
    text = imported().text
    lines = text.splitlines()
    disabled = lines.index("      # disabled in Segment:")
    assert lines[disabled + 1] == "      # - action: removeUser"
    assert lines[disabled + 2] == "      #   name: VIP removes"
    broken = next(i for i, line in enumerate(lines) if line.startswith("      # does not load: subscribe"))
    assert broken > disabled and lines[broken + 1] == "      # - action: removeFromAudience"
    uncommented = yaml.safe_load("\n".join(line[8:] for line in lines[disabled + 1 : broken]))
    assert uncommented == [
        {
            "action": "removeUser",
            "name": "VIP removes",  # its trigger is the action's default, so it is left out
            "fields": {"selected_advertiser_id": ADVERTISER, "audience_id": "1234345"},
        }
    ]


@pytest.mark.parametrize(
    "note",
    [
        "access token: Segment keeps its OAuth token",
        "subscription 2 'VIP adds': field 'batch_size': addUser has no such field; dropped",
        "subscription 4 'Unknown': action 'updateAudience' is not one this service has",
        "subscription 5 'Broken': kept as a comment, it does not load: subscribe 'event = \"Audience Exited\" and' "
        "does not parse at position",
    ],
)
def test_what_could_not_be_carried_over_is_listed(note: str) -> None:
    assert any(line.startswith(note) for line in imported().not_carried), imported().not_carried


def test_advertisers_come_from_the_mappings_when_the_settings_have_none() -> None:
    result = imported({})
    assert parse_destinations(yaml.safe_load(result.text)).destinations[0].advertiser_ids == [ADVERTISER]


def test_without_any_advertiser_a_placeholder_is_written_and_named() -> None:
    result = imported({}, [SUBSCRIPTIONS[0]])
    assert parse_destinations(yaml.safe_load(result.text)).destinations[0].advertiser_ids == ["0"]
    assert any(line.startswith("advertiser_ids: none") for line in result.not_carried)


def test_unknown_destination_settings_are_listed() -> None:
    assert "destination setting 'region': this service has no such setting" in imported(
        {"advertiser_ids": [ADVERTISER], "region": "eu"}
    ).not_carried


@pytest.mark.parametrize(
    "documents",
    [
        # the two Public API answers, in two files
        [destination(advertiser_ids=[ADVERTISER]), {"data": {"subscriptions": SUBSCRIPTIONS[:2]}}],
        # both in one list
        [[destination(advertiser_ids=[ADVERTISER]), {"data": {"subscriptions": SUBSCRIPTIONS[:2]}}]],
        # the inner objects, without the envelope
        [{"destination": destination(advertiser_ids=[ADVERTISER])["data"]["destination"],
          "subscriptions": SUBSCRIPTIONS[:2]}],
    ],
)
def test_input_shapes(tmp_path: Path, documents: list[Any]) -> None:
    paths = []
    for i, document in enumerate(documents):
        path = tmp_path / f"doc{i}.json"
        path.write_text(json.dumps(document))
        paths.append(str(path))
    dest, subs = read_documents(paths)
    assert dest["name"] == "TikTok Audiences (prod)"
    assert [s["name"] for s in subs] == ["Entered", "VIP adds"]


def test_a_file_that_is_not_segments_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(SegmentImportError, match="no 'destination' or 'subscriptions'"):
        read_documents([str(path)])


def test_the_command_writes_the_file_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cli: Callable[..., int]
) -> None:
    dest_file, subs_file, out = tmp_path / "d.json", tmp_path / "s.json", tmp_path / "imported.yaml"
    dest_file.write_text(json.dumps(destination(advertiser_ids=[ADVERTISER])))
    subs_file.write_text(json.dumps({"data": {"subscriptions": SUBSCRIPTIONS}}))
    assert cli("config", "import-segment", str(dest_file), str(subs_file), "-o", str(out), "--id", "tt") == 0
    assert parse_destinations(yaml.safe_load(out.read_text())).destinations[0].id == "tt"
    err = capsys.readouterr().err
    assert "imported 2 mapping(s) and 1 disabled subscription(s)" in err
    assert "not carried over:" in err and "updateAudience" in err
    assert cli("config", "import-segment", str(dest_file), "-o", str(out)) == 1  # never overwrites
    assert "exists" in capsys.readouterr().err


def test_config_check_shows_the_hashing_of_an_imported_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cli: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "imported.yaml"
    out.write_text(imported().text)
    monkeypatch.setenv("TIKTOK_ACCESS_TOKEN", "t")
    assert cli("config", "check", str(out)) == 0
    printed = capsys.readouterr().out
    assert "hashing: segment (identifiers hashed exactly as Segment's destination hashes them)" in printed
    assert "mapping 2 (addUser): when event = \"Audience Entered\" and contains(" in printed
