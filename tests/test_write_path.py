"""The write path's cost structure: trips to the database thread per write transaction, and
what get_profile does (and no longer does) with a stored document."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite
import pytest

from mcp_profiles.config import Config
from mcp_profiles.errors import Conflict
from mcp_profiles.models import Profile
from mcp_profiles.service import ProfileService
from mcp_profiles.store import ProfileStore


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls queued to aiosqlite's database thread."""
    counter = [0]
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return counter


async def test_an_update_takes_two_trips_to_the_database_thread(config: Config, hops: list[int]) -> None:
    """BEGIN goes with the read, and the writes (document, search index, tags, revision) go
    with the COMMIT: two trips, where each statement used to be one (about seven)."""
    async with ProfileStore.open(config.db) as store:
        svc = ProfileService(store, config)
        await svc.update_profile("default", "u1", {"name": "One", "tags": ["a"]}, create=True)
        hops[0] = 0
        result = await svc.update_profile("default", "u1", {"name": "Two", "tags": ["b"]})
        assert hops[0] == 2 and result.profile.version == 2
        hops[0] = 0
        unchanged = await svc.update_profile("default", "u1", {"name": "Two"})
        assert hops[0] == 2 and unchanged.changed == []  # BEGIN with the read, then the COMMIT
        assert [r.version for r in await svc.history("default", "u1")] == [2, 1]
        found = await svc.list_profiles("default", tag="b")
        assert [p.id for p in found[0]] == ["u1"]


async def test_a_deferred_write_that_fails_fails_the_call_and_writes_nothing(config: Config) -> None:
    async with ProfileStore.open(config.db) as store:
        svc = ProfileService(store, config)
        await svc.update_profile("default", "u1", {"name": "One"}, create=True)
        with pytest.raises(Conflict):
            async with store.write() as tx:
                found = await tx.locate("default", "u1")
                assert found is not None
                pk, current = found
                new = current.model_copy(update={"name": "Stale", "version": current.version + 1})
                await tx.update_profile("default", pk, new, expected_version=current.version + 5)
        doc = await svc.get_profile("default", "u1")
        assert doc.name == "One" and doc.version == 1
        assert not store._db.in_transaction


async def test_get_profile_serves_the_stored_document_with_its_schema(connect: Any) -> None:
    async with connect() as client:
        await client.call_tool(
            "update_profile",
            {"profile": "u1", "create": True, "patch": {"name": "Zoë 😀", "attributes": {"work.role": "x"}}},
        )
        tools = {t.name: t for t in (await client.list_tools()).tools}
        schema = tools["get_profile"].output_schema
        assert schema is not None and {"attributes", "version"} <= set(schema["properties"])
        result = await client.call_tool("get_profile", {"profile": "u1"})  # the client validates it
        doc = Profile.model_validate(result.structured_content)
        assert result.content[0].text == doc.model_dump_json(indent=2)  # type: ignore[union-attr]
        assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
