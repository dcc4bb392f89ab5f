"""Erasure: after delete_profile, nothing of the profile is readable in any database file.

A distinctive PII string goes into every place the server keeps something (id, alias,
name, summary, tags, attributes, metadata, old versions, the search index, raw data and
what extraction made of it), surrounded by bystander profiles that keep changing. After
the delete, every byte of the database file, its WAL, shared-memory and journal files is
scanned for the PII in each form SQLite might store it, plain and inside every zlib stream,
and every row is read with its compressed columns decoded (``tests/scan.py``). ``export``
beforehand holds it all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from mcp_profiles import runtime, store
from mcp_profiles.cli import main
from mcp_profiles.config import Config
from mcp_profiles.runtime import open_app
from tests.fakes import MessagesAPI, anthropic_llm
from tests.helpers import table_counts, text
from tests.procs.common import integrity_check
from tests.scan import Scan, scan

VICTIM = "zorbulax.quenwhistle"
NAME = "Zorbulax Quenwhistle"
EMAIL = "zorbulax.quenwhistle@example.org"
PHONE = "+49 1579 5550123"
STREET = "Ølgårdsvej 17"
# Every form the PII could take on disk: as written, case-folded (the FTS index stores
# folded terms; the scan is case-insensitive for ASCII), with and without diacritics,
# JSON-escaped, and each distinctive word on its own.
NEEDLES = [
    s.encode()
    for s in (
        NAME,
        "zorbulax",
        "quenwhistle",
        "5550123",
        "1579 555",
        STREET,
        "ølgårdsvej",
        "ølgardsvej",
        "olgardsvej",
        "lgårdsvej",
        "lgardsvej",
        "\\u00d8lg",
        "\\u00f8lg",
    )
]
# What must be found before the delete, or the scan could not see anything at all.
SEEN_BEFORE = {NAME, "zorbulax", "quenwhistle", "5550123", STREET, "lgardsvej"}
CHAT = (
    f"""User: Hi, I'm {NAME}, reach me at {EMAIL} or {PHONE}.
Assistant: Thanks!
User: I live at {STREET} and I'm a lighthouse keeper.
"""
    + "User: filler line about the weather and nothing personal.\n" * 200
)


def pii(db: str) -> Scan:
    """Where any form of the victim's PII is left: the shared scan of ``tests/scan.py``
    (plaintext, zlib streams in the raw bytes, and every row with compressed columns decoded)."""
    return scan(db, NEEDLES)


async def _seed_victim(client: Any) -> str:
    """The victim profile with PII everywhere, plus history and a raw data item; returns the job id."""
    for i in range(40):
        await client.call_tool(
            "update_profile",
            {
                "profile": f"bystander-{i:02d}",
                "create": True,
                "patch": {
                    "name": f"Bystander {i}",
                    "summary": f"A bystander number {i} who likes tea. " * 20,
                    "tags": ["crowd"],
                    "attributes": {"work.role": f"role {i}", "interests.topic": f"topic {i} " * 30},
                },
            },
        )
    created = await client.call_tool(
        "update_profile",
        {
            "profile": VICTIM,
            "create": True,
            "patch": {
                "alias": "zorbulax-q",
                "name": NAME,
                "summary": f"{NAME} ({EMAIL}) lives at {STREET}.",
                "tags": ["zorbulax-family"],
                "metadata": {"crm": {"email": EMAIL}},
                "attributes": {"basic_info.phone": PHONE, "basic_info.address": STREET},
            },
        },
    )
    assert not created.is_error, text(created)
    # history: a value that only old versions still hold
    await client.call_tool(
        "update_profile",
        {"profile": VICTIM, "patch": {"attributes": {"relationships.spouse": f"Mrs {NAME}"}}},
    )
    await client.call_tool(
        "update_profile", {"profile": VICTIM, "patch": {"attributes": {"relationships.spouse": None}}}
    )
    upsert = await client.call_tool(
        "upsert_profile_from_data", {"profile": VICTIM, "data": CHAT, "input_type": "chat history"}
    )
    assert upsert.structured_content["status"] == "updated", upsert
    for i in range(40):  # bystanders keep changing around it
        await client.call_tool(
            "update_profile", {"profile": f"bystander-{i:02d}", "patch": {"summary": f"changed {i}"}}
        )
    return str(upsert.structured_content["job_id"])


async def test_delete_leaves_no_pii_in_the_database_wal_or_shm(connect: Any, config: Config) -> None:
    api = MessagesAPI(when_empty="echo")
    async with connect(server_kwargs={"llm": anthropic_llm(api)}) as client:
        job_id = await _seed_victim(client)
        found = await client.call_tool("list_profiles", {"query": "quenwhistle"})
        assert [p["id"] for p in found.structured_content["profiles"]] == [VICTIM]
        seen = pii(config.db_path)
        before = seen.hits
        assert SEEN_BEFORE <= {n for names in before.values() for n in names}, before
        # and it is seen inside what is stored compressed, decoded and in the raw bytes
        compressed = {
            "profiles.document",
            "revisions.diff",
            "revisions.snapshot",
            "profiles.sqlite3-wal zlib",
        }
        assert compressed <= set(before) and all(NAME in before[k] for k in compressed), before

        result = await client.call_tool("delete_profile", {"profile": "zorbulax-q"})  # by alias
        assert result.structured_content == {
            "id": VICTIM,
            "deleted": True,
            "erased": {"revisions": 4, "data_items": 1, "wal_pending": False},
        }
        # the server is still running: its WAL and shared-memory files are live
        live = pii(config.db_path)
        assert live.hits == {}, f"PII left after erasure: {live.hits}"
        # the bystanders are still there: a real file was read, and every compressed value
        # (40 documents, 80 revisions with a diff and a snapshot each) decoded and searched
        assert live.bytes + live.inflated > 500_000 and live.values == 40 + 2 * 80, live.summary()

        assert (await client.call_tool("list_profiles", {"query": "quenwhistle"})).structured_content[
            "profiles"
        ] == []
        assert text(await client.call_tool("get_profile", {"profile": VICTIM})).startswith("not_found:")
        assert text(await client.call_tool("get_job", {"job_id": job_id})).startswith("not_found:")
        with pytest.raises(MCPError):
            await client.read_resource(f"profile://{VICTIM}")
        listed = {r.uri for r in (await client.list_resources()).resources}
        assert f"profile://{VICTIM}" not in listed and "profile://bystander-00" in listed
        # the rest of the database still works, search included
        assert (
            len(
                (await client.call_tool("list_profiles", {"query": "bystander"})).structured_content[
                    "profiles"
                ]
            )
            == 40
        )

    closed = pii(config.db_path)
    assert closed.hits == {} and closed.values == 40 + 2 * 80
    assert integrity_check(config.db_path) == "ok"
    counts = table_counts(config.db_path)
    assert counts["profiles"] == 40 and counts["revisions"] == 80 and counts["data_items"] == 0
    print(f"\nerasure: {len(NEEDLES)} PII forms; before: {seen.summary()}")
    print(f"after, live: {live.summary()}, none found; closed: {closed.summary()}, none found")


def test_export_before_delete_holds_everything_kept_about_the_profile(
    config: Config, tmp_path: Path, capsys: Any
) -> None:
    from mcp import Client

    from mcp_profiles.server import create_server

    async def seed() -> str:
        api = MessagesAPI(when_empty="echo")
        async with Client(create_server(config, llm=anthropic_llm(api))) as client:
            return await _seed_victim(client)

    job_id = anyio.run(seed)
    out = tmp_path / "export.jsonl"
    assert main(["export", VICTIM, "-o", str(out)]) == 0
    [line] = out.read_text("utf-8").splitlines()
    record = json.loads(line)
    doc = record["profile"]
    assert doc["id"] == VICTIM and doc["alias"] == "zorbulax-q" and doc["name"] == NAME
    assert EMAIL in doc["summary"] and doc["metadata"] == {"crm": {"email": EMAIL}}
    assert doc["attributes"]["basic_info.phone"]["value"] == PHONE
    assert NAME in doc["attributes"]["basic_info.fake_note"]["value"]  # what extraction made of the data
    # every version, including the one with a value that was later removed
    revisions = record["revisions"]
    assert [r["version"] for r in revisions] == list(range(1, doc["version"] + 1))
    assert revisions[-1]["snapshot"] == doc
    assert any(
        r["snapshot"]["attributes"].get("relationships.spouse", {}).get("value") == f"Mrs {NAME}"
        for r in revisions
    )
    # the raw data, as received, with its job state
    [item] = record["data_items"]
    assert item["id"] == job_id and item["content"] == CHAT and item["status"] == "done"
    assert item["input_type"] == "chat history"
    for value in (NAME, EMAIL, PHONE, STREET):
        assert value in line

    async def delete() -> None:
        async with open_app(config, worker=False) as app:
            await app.service.delete_profile("default", VICTIM)

    anyio.run(delete)
    capsys.readouterr()
    assert main(["export", VICTIM]) == 1
    assert "not_found" in capsys.readouterr().err
    assert pii(config.db_path).hits == {}


@pytest.mark.slow
async def test_a_thousand_erasures_keep_the_search_index_sound(config: Config) -> None:
    """Regression: erasure ran FTS5 'optimize', which on SQLite 3.40 adds a level to the
    index structure each time; around the thousandth erasure the index was corrupt and
    every write failed with "database disk image is malformed"."""
    async with open_app(config, worker=False) as app:
        svc = app.service
        for i in range(30):
            words = " ".join(f"w{i}x{j}" for j in range(100))
            await svc.update_profile(
                "default", f"keep-{i}", {"name": f"Keeper {i}", "summary": words}, create=True
            )
        for i in range(1050):
            await svc.update_profile("default", f"gone-{i}", {"name": f"Gone {i} quenwhistle"}, create=True)
            await svc.delete_profile("default", f"gone-{i}")
        page, _ = await svc.list_profiles("default", query="w29x99")
        assert [p.id for p in page] == ["keep-29"]
        assert (await svc.list_profiles("default", query="quenwhistle"))[0] == []
    assert integrity_check(config.db_path) == "ok"


# ---- a concurrent reader holds the checkpoint back ----------------------------------------


@contextmanager
def reader_of(db: str) -> Iterator[sqlite3.Connection]:
    """A second connection in an open read transaction, as a second server process,
    ``export`` or a backup tool would hold one: the WAL can't be checkpointed past it."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("BEGIN")
        assert con.execute("SELECT count(*) FROM profiles").fetchone()[0] > 0
        yield con
    finally:
        con.close()


async def test_a_reader_during_the_delete_makes_it_wal_pending_and_the_next_write_finishes_it(
    connect: Any, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "ERASURE_CHECKPOINT_SECONDS", 0.5)
    api = MessagesAPI(when_empty="echo")
    async with connect(server_kwargs={"llm": anthropic_llm(api)}) as client:
        await _seed_victim(client)
        with reader_of(config.db_path) as reader:
            result = await client.call_tool("delete_profile", {"profile": VICTIM})
            assert result.structured_content["erased"] == {
                "revisions": 4,
                "data_items": 1,
                "wal_pending": True,
            }
            held = pii(config.db_path).hits
            assert held, "the reader should have kept the erased bytes on disk"
            reader.execute("COMMIT")  # the read ends; the connection stays open
            assert pii(config.db_path).hits == held  # nothing finishes it by itself
            await client.call_tool("update_profile", {"profile": "bystander-00", "patch": {"name": "Next"}})
            after = pii(config.db_path)
            assert after.hits == {}, after.hits
            assert after.bytes + after.inflated > 500_000 and after.values == 40 + 2 * 80 + 2, after.summary()
    print(f"\nwal_pending erasure: PII in {sorted(held)} while read, 0 hits after the next write")


@pytest.mark.parametrize("opportunity", ["close", "tick"])
async def test_a_pending_erasure_finishes_on_close_or_on_the_periodic_tick(
    connect: Any, config: Config, monkeypatch: pytest.MonkeyPatch, opportunity: str
) -> None:
    monkeypatch.setattr(store, "ERASURE_CHECKPOINT_SECONDS", 0.3)
    monkeypatch.setattr(runtime, "ERASURE_TICK_SECONDS", 0.05 if opportunity == "tick" else 3600)
    api = MessagesAPI(when_empty="echo")
    async with connect(server_kwargs={"llm": anthropic_llm(api)}) as client:
        await _seed_victim(client)
    with reader_of(config.db_path) as reader:
        async with open_app(config, worker=False) as app:
            result = await app.service.delete_profile("default", VICTIM)
            assert result.wal_pending and app.store.wal_pending
            reader.execute("COMMIT")
            if opportunity == "tick":
                with anyio.fail_after(10):
                    while app.store.wal_pending:
                        await anyio.sleep(0.05)
                assert pii(config.db_path).hits == {}
            else:
                assert pii(config.db_path).hits != {}
        # closed, with the reader's connection still open (so SQLite's own last-close
        # checkpoint did not run): the store's close finished the erasure
        assert pii(config.db_path).hits == {}
    assert integrity_check(config.db_path) == "ok"
