"""The SQLite store: migrations, pragmas, indexed lookups, transactions."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mcp_profiles.errors import Conflict
from mcp_profiles.models import Connection, Profile
from mcp_profiles.store import ProfileStore, _migrations, _statements
from mcp_profiles.stores import is_postgres_url, open_store
from tests.helpers import psql, rows

pytestmark = pytest.mark.backends  # the contract's tests run on SQLite and on PostgreSQL (conftest)


@pytest.mark.sqlite_only
async def test_blank_database_is_migrated_with_a_record_per_migration(tmp_path: Path) -> None:
    db = tmp_path / "new" / "p.sqlite3"
    async with ProfileStore.open(db) as store:
        assert await store.schema_version() == max(v for v, _ in _migrations())
    con = sqlite3.connect(db)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table')")}
    assert {"profiles", "revisions", "data_items", "connections", "profile_tags", "profiles_fts"} <= tables
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in con.execute("SELECT version FROM schema_migrations")] == [
        v for v, _ in _migrations()
    ]


@pytest.mark.sqlite_only
async def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    async with ProfileStore.open(db):
        pass
    async with ProfileStore.open(db) as store:
        assert await store.schema_version() == max(v for v, _ in _migrations())
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(_migrations())


@pytest.mark.sqlite_only
async def test_pragmas_are_set_on_open(tmp_path: Path) -> None:
    async with ProfileStore.open(tmp_path / "p.sqlite3") as store:
        async with store.read() as tx:
            values = {
                name: (await tx._one(f"PRAGMA {name}", ()))[0]  # type: ignore[index]
                for name in ("foreign_keys", "secure_delete", "synchronous", "busy_timeout")
            }
    assert values == {"foreign_keys": 1, "secure_delete": 1, "synchronous": 1, "busy_timeout": 10000}


@pytest.mark.sqlite_only
async def test_lookups_by_id_and_alias_use_indexes(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    async with ProfileStore.open(db):
        pass
    con = sqlite3.connect(db)
    for sql, args in (
        ("SELECT pk FROM profiles WHERE namespace = ? AND id = ?", ("d", "x")),
        ("SELECT pk FROM profiles WHERE namespace = ? AND alias = ?", ("d", "x")),
        (
            "SELECT id FROM profiles p WHERE p.namespace = ? AND p.kind = ? AND p.id > ? ORDER BY p.id LIMIT 5",
            ("d", "user", ""),
        ),
        (
            "SELECT id FROM profile_tags WHERE namespace = ? AND tag = ? AND id > ? ORDER BY id LIMIT 5",
            ("d", "t", ""),
        ),
    ):
        plan = " ".join(str(r[-1]) for r in con.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert "USING" in plan and "SCAN profiles" not in plan, plan


async def test_failed_write_rolls_back_everything(db_target: str) -> None:
    async with open_store(db_target) as store:
        with pytest.raises(RuntimeError):
            async with store.write() as tx:
                doc = Profile(id="a", version=1, created_at="t", updated_at="t")
                pk = await tx.insert_profile("ns", doc)
                await tx.add_revision("ns", pk, doc, actor="t", reason=None, changes=[])
                raise RuntimeError("boom")
        async with store.read() as tx:
            assert await tx.get_profile("ns", "a") is None


async def test_version_check_refuses_a_stale_update(db_target: str) -> None:
    async with open_store(db_target) as store:
        doc = Profile(id="a", version=1, created_at="t", updated_at="t")
        async with store.write() as tx:
            pk = await tx.insert_profile("ns", doc)
        with pytest.raises(Conflict):
            async with store.write() as tx:
                await tx.update_profile("ns", pk, doc.model_copy(update={"version": 3}), expected_version=2)


async def test_namespaces_are_separate(db_target: str) -> None:
    async with open_store(db_target) as store:
        async with store.write() as tx:
            await tx.insert_profile("a", Profile(id="x", name="A", version=1, created_at="t", updated_at="t"))
            await tx.insert_profile("b", Profile(id="x", name="B", version=1, created_at="t", updated_at="t"))
        async with store.read() as tx:
            assert (await tx.get_profile("a", "x")).name == "A"  # type: ignore[union-attr]
            assert (await tx.get_profile("b", "x")).name == "B"  # type: ignore[union-attr]
            page, _ = await tx.list_profiles("a", query="B")
            assert page == []


@pytest.mark.sqlite_only
async def test_a_write_cancelled_while_its_begin_is_queued_leaves_no_transaction(tmp_path: Path) -> None:
    """The first hop of a write carries its ``BEGIN IMMEDIATE``. Cancelled while that hop
    waits behind other work on the database thread, it still runs afterwards; the rollback
    must see that, or the next writer gets 'cannot start a transaction within a transaction'."""
    import time

    import anyio

    from mcp_profiles.config import Config
    from mcp_profiles.service import ProfileService

    async with ProfileStore.open(tmp_path / "p.sqlite3") as store:
        await ProfileService(store, Config(db=str(tmp_path / "p.sqlite3"))).update_profile(
            "ns", "u", {"name": "U"}, create=True
        )
        db = store._db

        async def occupy_the_database_thread() -> None:
            await db._execute(time.sleep, 0.3)

        async with anyio.create_task_group() as tg:
            tg.start_soon(occupy_the_database_thread)
            await anyio.sleep(0.05)  # the thread is now busy sleeping
            with anyio.move_on_after(0.05) as scope:
                async with store.write() as tx:
                    await tx.locate("ns", "u")  # queued behind the sleep: cancelled there
            assert scope.cancelled_caught
        assert not db.in_transaction
        async with store.write() as tx:  # the next writer can begin
            assert await tx.locate("ns", "u") is not None


@pytest.mark.sqlite_only
async def test_cancelled_calls_never_leave_the_connection_in_a_transaction(tmp_path: Path) -> None:
    import random

    import anyio

    from mcp_profiles.config import Config
    from mcp_profiles.service import ProfileService

    config = Config(db=str(tmp_path / "p.sqlite3"))
    rng = random.Random(7)
    async with ProfileStore.open(config.db_path) as store:
        svc = ProfileService(store, config)
        await svc.update_profile("ns", "u", {"name": "U"}, create=True)
        completed = 0
        for i in range(200):
            with anyio.move_on_after(rng.uniform(0, 0.003)):
                if i % 2:
                    await svc.update_profile("ns", "u", {"attributes": {f"work.k{i}": i}})
                    completed += 1
                else:
                    await svc.history("ns", "u", 5)
        assert not store._db.in_transaction
        result = await svc.update_profile("ns", "u", {"name": "after"})
        assert result.profile.name == "after"
        assert await store.integrity_check() == "ok"
        async with store.read() as tx:
            profile = await tx.get_profile("ns", "u")
            assert profile is not None
            revisions = await tx.history("ns", 1, 200)
        assert len(revisions) == profile.version  # every committed version has its revision


AT = "2026-11-03T00:00:00Z"


def _as_before_009(db: str) -> None:
    """Make ``db`` a database migrated up to, not including, the connection columns, holding a
    connection written the old way: its API fields under ``settings."$meta"``."""
    meta = {"alias": "main", "is_active": False, "version": 3, "updated_at": "2026-11-02T10:00:00Z"}
    settings = json.dumps({"temperature": 0.5, "$meta": meta}).replace("'", "''")
    insert = (
        "INSERT INTO connections (namespace, id, name, provider_id, api_key_env, settings, created_at) "
        f"VALUES ('default', 'c1', 'Main', 'openai', 'OPENAI_KEY', '{settings}', '2026-11-01T09:00:00Z')"
    )
    plain = (
        "INSERT INTO connections (namespace, id, name, provider_id, settings, created_at) "
        "VALUES ('default', 'c2', NULL, 'anthropic', '{}', '2026-11-01T09:00:00Z')"
    )
    if is_postgres_url(db):
        psql(
            db,
            "DROP INDEX connections_alias; ALTER TABLE connections DROP COLUMN alias, DROP COLUMN is_active, "
            f"DROP COLUMN version, DROP COLUMN updated_at; DELETE FROM schema_migrations WHERE version = 2; "
            f"{insert}; {plain}",
        )
        return
    con = sqlite3.connect(db)
    with con:
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
        for version, script in _migrations():
            if version < 9:
                for statement in _statements(script):
                    con.execute(statement)
                con.execute("INSERT INTO schema_migrations VALUES (?, '2026-11-01T00:00:00Z')", (version,))
        con.execute(insert)
        con.execute(plain)
    con.close()


async def test_connection_fields_kept_under_meta_survive_the_migration(db_target: str) -> None:
    if is_postgres_url(db_target):
        async with open_store(db_target):
            pass
    _as_before_009(db_target)
    async with open_store(db_target) as store:
        async with store.read() as tx:
            main, plain = await tx.connections("default")
        assert main == Connection(
            id="c1",
            name="Main",
            provider_id="openai",
            api_key_env="OPENAI_KEY",
            settings={"temperature": 0.5},
            created_at="2026-11-01T09:00:00Z",
            alias="main",
            is_active=False,
            version=3,
            updated_at="2026-11-02T10:00:00Z",
        )
        assert (plain.alias, plain.is_active, plain.version, plain.updated_at) == (None, True, 1, None)
        # the alias is unique per namespace in the database itself, not only in the service
        with pytest.raises(Conflict, match="alias 'main'"):
            async with store.write() as wtx:
                await wtx.add_connection(
                    "default", Connection(id="c3", provider_id="x", alias="main", created_at=AT)
                )
        async with store.write() as wtx:  # another namespace may use it
            await wtx.add_connection(
                "other", Connection(id="c3", provider_id="x", alias="main", created_at=AT)
            )
    stored = rows(db_target, "SELECT settings FROM connections WHERE id = 'c1'")
    assert json.loads(stored[0][0]) == {"temperature": 0.5}


async def test_connection_fields_are_written_to_their_columns(db_target: str) -> None:
    async with open_store(db_target) as store:
        async with store.write() as tx:
            await tx.add_connection(
                "default", Connection(id="c1", provider_id="openai", alias="a", version=2, created_at=AT)
            )
            updated = Connection(
                id="c1", provider_id="openai", alias="b", is_active=False, version=3, created_at=AT
            )
            assert await tx.update_connection(
                "default", updated.model_copy(update={"updated_at": "2026-11-03"})
            )
    assert rows(db_target, "SELECT alias, version, updated_at, settings FROM connections") == [
        ["b", "3", "2026-11-03", "{}"]
    ]
