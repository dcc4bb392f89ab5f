"""Compact storage (migrations 007 and 008): revisions are stored compressed in a rowid table
and current documents compressed; a database written before them is migrated in place, and
every old version, the current document and revert stay exact."""

from __future__ import annotations

import sqlite3
import zlib
from contextlib import closing
from typing import Any

from mcp_profiles.config import Config
from mcp_profiles.store import unpack

REVISIONS_001 = """CREATE TABLE revisions (
    profile_pk  INTEGER NOT NULL REFERENCES profiles (pk) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    namespace   TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    reason      TEXT,
    changed_at  TEXT    NOT NULL,
    diff        TEXT    NOT NULL,
    snapshot    TEXT    NOT NULL,
    PRIMARY KEY (profile_pk, version)
) WITHOUT ROWID"""


async def _write_three_versions(connect: Any) -> list[dict[str, Any]]:
    async with connect() as client:
        await client.call_tool("update_profile", {"profile": "u1", "create": True, "patch": {"name": "One"}})
        await client.call_tool(
            "update_profile", {"profile": "u1", "patch": {"attributes": {"work.role": "x"}}}
        )
        await client.call_tool("update_profile", {"profile": "u1", "patch": {"name": "Three"}})
        history = await client.call_tool("profile_history", {"profile": "u1"})
    versions: list[dict[str, Any]] = history.structured_content["versions"]  # type: ignore[index]
    return versions


def _as_before_007(db: str) -> dict[int, str]:
    """Rewrite the file as a pre-007 database: TEXT diffs and snapshots, WITHOUT ROWID."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT * FROM revisions ORDER BY version").fetchall()
        conn.execute("DROP TABLE revisions")
        conn.execute(REVISIONS_001)
        conn.executemany(
            "INSERT INTO revisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(*r[:6], unpack(r[6]), unpack(r[7])) for r in rows],
        )
        docs = conn.execute("SELECT pk, document FROM profiles").fetchall()
        conn.executemany("UPDATE profiles SET document = ? WHERE pk = ?", [(unpack(d), pk) for pk, d in docs])
        conn.execute("DELETE FROM schema_migrations WHERE version IN (7, 8)")
        conn.execute("DROP TABLE extraction_batches")  # what else 008 adds, so it can run again
        conn.execute("ALTER TABLE data_items DROP COLUMN batch_requests")
        conn.commit()
        return {int(r[1]): unpack(r[7]) for r in rows}


async def test_history_is_compressed_and_old_databases_migrate_in_place(config: Config, connect: Any) -> None:
    before = await _write_three_versions(connect)
    with closing(sqlite3.connect(config.db)) as conn:
        assert {t for (t,) in conn.execute("SELECT DISTINCT typeof(snapshot) FROM revisions")} == {"blob"}
        table = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'revisions'").fetchone()[0]
        assert "WITHOUT ROWID" not in table
    async with connect() as client:
        served = await client.read_resource("profile://u1")
        current = (await client.call_tool("get_profile", {"profile": "u1"})).structured_content
    snapshots = _as_before_007(config.db)
    with closing(sqlite3.connect(config.db)) as conn:
        assert conn.execute("SELECT typeof(document) FROM profiles").fetchone() == ("text",)
    async with connect() as client:  # opening migrates: rows compressed, table rebuilt
        assert await client.read_resource("profile://u1") == served
        assert (await client.call_tool("get_profile", {"profile": "u1"})).structured_content == current
        history = (await client.call_tool("profile_history", {"profile": "u1"})).structured_content
        assert history is not None and history["versions"] == before
        reverted = await client.call_tool("revert_profile", {"profile": "u1", "version": 1})
        doc = reverted.structured_content["profile"]  # type: ignore[index]
        assert doc["name"] == "One" and doc["attributes"] == {} and doc["version"] == 4
    with closing(sqlite3.connect(config.db)) as conn:
        rows = conn.execute(
            "SELECT version, typeof(diff), typeof(snapshot), snapshot FROM revisions"
        ).fetchall()
        assert {(r[1], r[2]) for r in rows} == {("blob", "blob")}
        assert {r[0]: zlib.decompress(r[3]).decode() for r in rows if r[0] <= 3} == snapshots
        table = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'revisions'").fetchone()[0]
        assert "WITHOUT ROWID" not in table
        assert conn.execute("SELECT count(*) FROM schema_migrations WHERE version IN (7, 8)").fetchone() == (
            2,
        )
        assert conn.execute("SELECT DISTINCT typeof(document) FROM profiles").fetchall() == [("blob",)]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # the primary key still holds
        assert (
            conn.execute(
                "SELECT count(*) FROM sqlite_schema WHERE tbl_name = 'revisions' AND type = 'index'"
            ).fetchone()[0]
            >= 1
        )
