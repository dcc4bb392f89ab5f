"""Pure document rules: merge patch, attribute forms, diffs, limits."""

from __future__ import annotations

import pytest

from mcp_profiles.errors import Invalid, TooLarge
from mcp_profiles.models import Profile, normalize_keys
from mcp_profiles.patching import Limits, apply_patch, diff, merge_patch


def patch(current: Profile | None, body: dict, **kw: object) -> Profile:
    args = {
        "profile_id": "p",
        "kind": "user",
        "replace": False,
        "at": "2026-01-01T00:00:00Z",
        "limits": Limits(),
    }
    args.update(kw)
    return apply_patch(current, body, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "patch_", "result"),
    [  # RFC 7396 appendix A examples
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7396(target: object, patch_: object, result: object) -> None:
    assert merge_patch(target, patch_) == result


def test_camel_case_is_renamed_only_in_structure() -> None:
    body = normalize_keys({"connectionId": "c", "model": {"modelId": "m"}, "metadata": {"someKey": 1}})
    assert body == {"connection_id": "c", "model": {"model_id": "m"}, "metadata": {"someKey": 1}}
    with pytest.raises(ValueError, match="given twice"):
        normalize_keys({"connectionId": "a", "connection_id": "b"})


def test_attribute_value_forms() -> None:
    doc = patch(
        None,
        {"attributes": {"a.b": "x", "c.d": {"value": {"nested": 1}, "confidence": 0.4}, "e.f": {"k": 1}}},
    )
    assert doc.attributes["a.b"].confidence == 1.0 and doc.attributes["a.b"].source == "manual"
    assert doc.attributes["c.d"].value == {"nested": 1} and doc.attributes["c.d"].confidence == 0.4
    assert doc.attributes["e.f"].value == {"k": 1}


def test_server_managed_fields_in_a_patch_are_ignored() -> None:
    doc = patch(None, {"version": 99, "created_at": "x", "name": "N"})
    assert doc.version == 0 and doc.created_at is None


def test_id_and_kind_cannot_change() -> None:
    current = patch(None, {"name": "N"})
    with pytest.raises(Invalid, match="id"):
        patch(current, {"id": "other"})
    with pytest.raises(Invalid, match="kind"):
        patch(current, {"kind": "assistant"})


def test_limits_are_configurable() -> None:
    small = Limits(max_attributes=2, max_document_bytes=2000)
    with pytest.raises(TooLarge, match="attributes"):
        patch(None, {"attributes": {"a.a": 1, "a.b": 2, "a.c": 3}}, limits=small)
    with pytest.raises(TooLarge, match="document"):
        patch(None, {"summary": "x" * 1990}, limits=small)


def test_diff_names_nested_paths_and_ignores_bookkeeping() -> None:
    old = patch(None, {"name": "A", "attributes": {"a.b": 1}})
    new = patch(old, {"name": "B", "attributes": {"a.b": None, "a.c": 2}})
    new.version = 7
    assert [c["path"] for c in diff(old, new)] == ["name", "attributes.a.b", "attributes.a.c"]


def test_a_summary_in_a_patch_is_marked_as_written_by_hand() -> None:
    doc = patch(None, {"summary": "Mine."})
    assert doc.summary_source == "manual"
    assert patch(doc, {"summary": None}).summary_source is None
