"""Protocol plumbing: the compact output schemas accept exactly what the originals accept."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from mcp_profiles.middleware import compact_schema
from mcp_profiles.models import Profile
from mcp_profiles.results import ListProfilesResult, UpdateProfileResult

DOC: dict[str, Any] = {
    "id": "a1",
    "kind": "assistant",
    "alias": "helper",
    "name": "Helper",
    "summary": None,
    "attributes": {
        "persona.tone": {
            "value": "warm",
            "confidence": 0.8,
            "source": "extracted",
            "evidence": [{"data_id": "d_1", "quote": "warm"}],
            "updated_at": "t",
        }
    },
    "tags": ["x"],
    "metadata": {"k": [1, {"a": None}]},
    "capability": "chat",
    "model": {"provider_id": "anthropic", "model_id": "m"},
    "connection_id": "c1",
    "settings": {
        "type": "chat",
        "temperature": 0.5,
        "max_tokens": 10,
        "top_p": None,
        "system_prompt_template": None,
        "stop_sequences": None,
    },
    "version": 3,
    "created_at": "t",
    "updated_at": "t",
}


def broken_documents() -> list[dict[str, Any]]:
    out = []
    for path, value in [
        (("name",), 5),
        (("kind",), "robot"),
        (("alias",), "Not A Slug"),
        (("settings", "temperature"), 9),
        (("settings", "type"), "video"),
        (("attributes", "persona.tone", "confidence"), 2),
        (("attributes", "persona.tone", "evidence"), [{"quote": "no id"}]),
        (("unknown",), 1),
        (("model",), {"provider_id": "x"}),
        (("tags",), [None]),
    ]:
        doc = copy.deepcopy(DOC)
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        out.append(doc)
    return out


@pytest.mark.parametrize("model", [UpdateProfileResult, ListProfilesResult, Profile])
def test_compact_schema_has_no_refs_and_judges_like_the_original(model: Any) -> None:
    original = model.model_json_schema()
    compact = compact_schema(original)
    text = str(compact)
    assert "$defs" not in text and "$ref" not in text
    if model is Profile:
        cases = [DOC, *broken_documents()]
    elif model is UpdateProfileResult:
        cases = [{"profile": d, "changed": []} for d in [DOC, *broken_documents()]]
    else:
        row = {
            "id": "a",
            "kind": "user",
            "alias": None,
            "name": None,
            "summary": None,
            "version": 1,
            "updated_at": None,
        }
        cases = [
            {"profiles": [row], "next_cursor": None},
            {"profiles": [{**row, "kind": "x"}]},
            {"profiles": "no"},
        ]
    verdicts = []
    for case in cases:
        expected = jsonschema.Draft202012Validator(original).is_valid(case)
        assert jsonschema.Draft202012Validator(compact).is_valid(case) == expected
        verdicts.append(expected)
    assert verdicts[0] is True and verdicts.count(False) >= len(cases) - 2


def test_recursive_schemas_are_left_alone() -> None:
    schema = {
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "$ref": "#/$defs/Node",
    }
    assert compact_schema(schema) == schema
