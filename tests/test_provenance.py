"""A patch cannot forge provenance: ``source``, ``evidence`` and ``summary_source`` are the
server's. ``update_profile`` sets ``value`` and ``confidence``; provenance sent back exactly
as read is accepted (a document read and sent whole), any other is refused as ``invalid``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes import MessagesAPI, anthropic_llm
from tests.helpers import text

FORGED_EVIDENCE = [{"data_id": "d_forged", "quote": "I am the admin"}]


async def update(client: Any, patch: dict[str, Any], **extra: Any) -> Any:
    return await client.call_tool("update_profile", {"profile": "alice", "patch": patch, **extra})


async def document(client: Any) -> dict[str, Any]:
    doc = (await client.call_tool("get_profile", {"profile": "alice"})).structured_content
    assert doc is not None
    return dict(doc)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        (
            {"attributes": {"work.role": {"value": "admin", "source": "extracted"}}},
            "attributes.work.role.source",
        ),
        (
            {"attributes": {"work.role": {"value": "admin", "evidence": FORGED_EVIDENCE}}},
            "attributes.work.role.evidence",
        ),
        (
            {"attributes": {"work.role": {"value": "eng", "source": "imported"}}},
            "attributes.work.role.source",
        ),
        ({"summary": "An admin.", "summary_source": "extracted"}, "summary_source"),
        ({"summary_source": "extracted"}, "summary_source"),
    ],
)
async def test_a_patch_that_sets_provenance_is_refused_naming_the_field(
    connect: Any, patch: dict[str, Any], field: str
) -> None:
    async with connect() as client:
        made = await update(client, {"summary": "Engineer.", "attributes": {"work.role": "eng"}}, create=True)
        assert not made.is_error, text(made)
        refused = await update(client, patch)
        assert refused.is_error and text(refused).startswith(f"invalid: {field}: set by the server")
        doc = await document(client)
    assert doc["version"] == 1 and doc["summary_source"] == "manual"
    assert doc["attributes"]["work.role"] | {"updated_at": None} == {
        "value": "eng",
        "confidence": 1.0,
        "source": "manual",
        "evidence": [],
        "updated_at": None,
    }


async def test_a_new_profile_cannot_be_created_with_forged_provenance(connect: Any) -> None:
    async with connect() as client:
        refused = await update(
            client,
            {
                "attributes": {
                    "work.role": {"value": "admin", "source": "extracted", "evidence": FORGED_EVIDENCE}
                }
            },
            create=True,
        )
        assert refused.is_error and "attributes.work.role.source: set by the server" in text(refused)
        missing = await client.call_tool("get_profile", {"profile": "alice"})
        assert missing.is_error and text(missing).startswith("not_found")


async def test_updated_at_in_a_patch_cannot_backdate_a_fact(connect: Any) -> None:
    async with connect() as client:
        await update(
            client,
            {"attributes": {"work.role": {"value": "eng", "updated_at": "1999-01-01T00:00:00Z"}}},
            create=True,
        )
        doc = await document(client)
    assert doc["attributes"]["work.role"]["updated_at"] == doc["updated_at"] != "1999-01-01T00:00:00Z"


async def test_an_extracted_document_sent_back_whole_keeps_its_provenance(connect: Any) -> None:
    """Read, then send the whole document back (replace): accepted, nothing changes. Changing
    an extracted value makes it manual; doing so while re-sending its evidence is refused."""
    api = MessagesAPI()
    api.enqueue_tool(
        {
            "operations": [
                {
                    "op": "set",
                    "key": "work.role",
                    "value": "engineer",
                    "confidence": 0.9,
                    "evidence": "I'm an engineer",
                }
            ],
            "summary": "An engineer.",
        }
    )
    async with connect(server_kwargs={"llm": anthropic_llm(api)}) as client:
        done = await client.call_tool(
            "upsert_profile_from_data", {"profile": "alice", "data": "User: I'm an engineer."}
        )
        assert not done.is_error, text(done)
        doc = await document(client)
        role = doc["attributes"]["work.role"]
        assert role["source"] == "extracted" and role["evidence"] and doc["summary_source"] == "extracted"

        same = await update(client, doc, replace=True)
        assert not same.is_error, text(same)
        assert same.structured_content is not None and same.structured_content["changed"] == []
        assert await document(client) == doc

        moved = await update(client, {"attributes": {"work.role": {**role, "value": "manager"}}})
        assert moved.is_error and "attributes.work.role.source: set by the server" in text(moved)
        moved = await update(client, {"attributes": {"work.role": {"value": "manager", "confidence": 0.8}}})
        assert not moved.is_error, text(moved)
        now = (await document(client))["attributes"]["work.role"]
    assert (now["value"], now["confidence"], now["source"], now["evidence"]) == ("manager", 0.8, "manual", [])
