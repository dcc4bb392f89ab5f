"""What only the PostgreSQL store has to show: migrations under an advisory lock, writers in
several processes' pools, SKIP LOCKED claims, LISTEN/NOTIFY between replicas, cancellation,
and what erasure and ``compact`` leave on disk. The contract itself is tested on both
stores by the ``backends`` modules (test_store, test_server, test_upsert, test_cli)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated, ServerEvent

from mcp_profiles.config import Config
from mcp_profiles.models import Connection, Profile
from mcp_profiles.pgstore import PgStore, _migrations, _ts_query
from mcp_profiles.runtime import open_app
from mcp_profiles.service import ProfileService
from tests.helpers import psql
from tests.pgcluster import Cluster


async def test_replicas_starting_at_once_migrate_once(pg_url: str) -> None:
    versions: list[int] = []

    async def start() -> None:
        async with PgStore.open(pg_url, max_connections=2) as store:
            versions.append(await store.schema_version())

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(start)
    latest = max(v for v, _ in _migrations())
    assert versions == [latest] * 8
    rows = psql(pg_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [int(r[0]) for r in rows] == [v for v, _ in _migrations()]


def test_search_terms_follow_the_sqlite_rules() -> None:
    assert _ts_query("Zoë café") == "'zoe' & 'cafe':*"
    assert _ts_query("snake_case x") == "'snake' & 'case' & 'x':*"
    assert _ts_query("Zoë café", "A") == "'zoe':A & 'cafe':*A"
    with pytest.raises(Exception, match="at least one letter"):
        _ts_query("!!! ---")


async def test_search_matches_prefixes_without_diacritics_in_one_namespace(pg_url: str) -> None:
    config = Config(db=pg_url)
    async with PgStore.open(pg_url) as store:
        svc = ProfileService(store, config)
        await svc.update_profile("a", "zoe", {"name": "Zoë Ångström", "summary": "runs a café"}, create=True)
        await svc.update_profile("b", "zoe", {"name": "Zoë B"}, create=True)
        for query, hits in (("zoe ang", ["zoe"]), ("CAFE", ["zoe"]), ("zoe b", []), ("ngstr", [])):
            page, _ = await svc.list_profiles("a", query=query)
            assert [p.id for p in page] == hits, query
        plan = psql(
            pg_url,
            "SET enable_seqscan = off; EXPLAIN SELECT id FROM profiles "
            "WHERE search @@ to_tsquery('simple', 'zoe:*')",
        )
        assert "profiles_search" in " ".join(r[0] for r in plan)


async def test_sixteen_writers_in_two_pools_lose_no_update(pg_url: str) -> None:
    config = Config(db=pg_url)
    acknowledged: list[int] = []
    async with PgStore.open(pg_url, max_connections=8) as one, PgStore.open(pg_url, max_connections=8) as two:
        first = ProfileService(one, config)
        services = [first, ProfileService(two, config)]

        async def writer(w: int) -> None:
            for n in range(5):  # the first writes race to create the profile: all of them land
                result = await services[w % 2].update_profile(
                    "ns", "hot", {"attributes": {f"work.w{w}n{n}": f"value {w} {n}"}}, create=True
                )
                acknowledged.append(result.profile.version)

        async with anyio.create_task_group() as tg:
            for w in range(16):
                tg.start_soon(writer, w)
        final = await first.get_profile("ns", "hot")
    assert len(final.attributes) == 80  # no write lost
    assert sorted(acknowledged) == list(range(1, 81))  # every version acknowledged once
    assert psql(pg_url, "SELECT count(*) FROM revisions")[0][0] == "80"


async def test_two_claimers_never_take_the_same_item(pg_url: str) -> None:
    async with PgStore.open(pg_url) as one, PgStore.open(pg_url) as two:
        async with one.write() as tx:
            doc = Profile(id="u", version=1, created_at="t", updated_at="t")
            pk = await tx.insert_profile("ns", doc)
            for i in range(40):
                await tx.add_item(f"d{i}", "ns", pk, f"sha{i}", "data", None, "t")
        claimed: dict[str, list[str]] = {}

        async def claim(name: str, store: PgStore) -> None:
            taken: list[str] = []
            for _ in range(10):
                async with store.write() as tx:
                    ids = await tx.claim_items("ns", pk, name, 1.0, limit=3)
                    await anyio.sleep(0.01)  # hold the row locks while the other claims
                taken += ids
            claimed[name] = taken

        async with anyio.create_task_group() as tg:
            tg.start_soon(claim, "one", one)
            tg.start_soon(claim, "two", two)
    both = claimed["one"] + claimed["two"]
    assert len(both) == len(set(both)) == 40
    assert claimed["one"] and claimed["two"]


async def test_a_change_through_one_replica_reaches_the_other(pg_url: str) -> None:
    config = Config(db=pg_url)
    heard: list[ServerEvent] = []
    async with open_app(config, worker=False) as one, open_app(config, worker=False) as two:
        two.bus.add_listener("default", heard.append)
        two.bus.add_listener("other", heard.append)
        await anyio.sleep(0.3)  # the listener's connection is up
        await one.service.update_profile("default", "alice", {"name": "Alice"}, create=True)
        with anyio.fail_after(10):
            while len(heard) < 2:
                await anyio.sleep(0.02)
        big = {f"work.k{i}": "y" * 1000 for i in range(9)}  # a change of 9 KB, notified by id
        await one.service.update_profile("default", "alice", {"attributes": big})
        with anyio.fail_after(10):
            while len(heard) < 3:
                await anyio.sleep(0.02)
    assert heard == [
        ResourceUpdated(uri="profile://alice"),
        ResourcesListChanged(),
        ResourceUpdated(uri="profile://alice"),
    ]


async def test_cancelled_calls_leave_no_transaction_open(pg_url: str, pg_cluster: Cluster) -> None:
    import random

    config = Config(db=pg_url)
    rng = random.Random(7)
    async with PgStore.open(pg_url, max_connections=2) as store:
        svc = ProfileService(store, config)
        await svc.update_profile("ns", "u", {"name": "U"}, create=True)
        for i in range(120):
            with anyio.move_on_after(rng.uniform(0, 0.004)):
                if i % 2:
                    await svc.update_profile("ns", "u", {"attributes": {f"work.k{i}": i}})
                else:
                    await svc.history("ns", "u", 5)
        await anyio.sleep(0.1)
        idle = psql(
            pg_cluster.url(), "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
        )
        assert idle == [["0"]]
        result = await svc.update_profile("ns", "u", {"name": "after"})
        assert result.profile.name == "after"
        assert psql(pg_url, "SELECT count(*) FROM revisions") == [[str(result.profile.version)]]


def _hits(folder: Path, marker: bytes) -> dict[str, int]:
    """Files under ``folder`` that hold ``marker``, by kind (WAL or table and index files)."""
    found = {"wal": 0, "tables": 0}
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            try:
                if marker in path.read_bytes():
                    found["wal" if "pg_wal" in root else "tables"] += 1
            except OSError:
                continue
    return found


async def test_erasure_and_compact_what_bytes_remain(pg_url: str, pg_cluster: Cluster) -> None:
    """Gone from queries at commit; still in table and index files until ``compact``;
    in WAL until its segments are recycled. The README states these figures."""
    marker = "Quixotic" + os.urandom(6).hex()
    config = Config(db=pg_url)
    async with PgStore.open(pg_url) as store:
        svc = ProfileService(store, config)
        await svc.update_profile(
            "ns", "gone", {"name": marker, "attributes": {"work.role": marker}}, create=True
        )
        await svc.update_profile("ns", "stays", {"name": "Stays"}, create=True)
        psql(pg_cluster.url(), "CHECKPOINT")
        before = _hits(pg_cluster.data, marker.encode())
        erased = await svc.delete_profile("ns", "gone")
        assert erased.deleted
        page, _ = await svc.list_profiles("ns", query=marker)
        assert page == [] and psql(
            pg_url, f"SELECT count(*) FROM revisions WHERE snapshot LIKE '%{marker}%'"
        ) == [["0"]]
        psql(pg_cluster.url(), "CHECKPOINT")
        after_delete = _hits(pg_cluster.data, marker.encode())
        result: dict[str, Any] = await store.compact()
        psql(pg_cluster.url(), "CHECKPOINT")
        after_compact = _hits(pg_cluster.data, marker.encode())
        assert (await svc.get_profile("ns", "stays")).name == "Stays"
    assert before["tables"] > 0 and after_delete["tables"] > 0  # DELETE alone leaves the bytes
    assert after_compact["tables"] == 0  # VACUUM FULL wrote clean files
    assert after_compact["wal"] > 0  # WAL still holds them: the documented limit
    assert result["backend"] == "postgresql" and result["bytes_after"] <= result["bytes_before"]


def test_copy_sqlite_to_postgresql_and_back_is_lossless(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mcp_profiles.cli import main

    source = str(tmp_path / "source.sqlite3")

    async def seed() -> None:
        async with open_app(Config(db=source), worker=False) as app:
            for ns in ("default", "tenant-b"):
                await app.service.add_connection(ns, "anthropic-main", "anthropic", api_key_env="KEY")
                await app.service.add_connection(ns, "oa", "openai", alias="openai-main", is_active=False)
                await app.service.update_connection(
                    ns, "oa", name="OA", alias="oa-2", api_key_env=None, settings={"t": 1}, is_active=False
                )
                for i in range(7):
                    await app.service.update_profile(
                        ns, f"p{i}", {"name": f"P {i}", "tags": ["t"]}, create=True
                    )
                    await app.service.update_profile(ns, f"p{i}", {"attributes": {"work.role": f"r{i}"}})
            await app.extractor.submit("default", "p1", "raw data kept as a pending item", None, None)

    anyio.run(seed)
    assert main(["copy", "--from", source, "--to", pg_url]) == 0
    out, err = capsys.readouterr()
    assert "default: 7 profiles, 14 versions, pending 1, 2 connections" in out
    assert "copied 7/14 profiles (namespace default)" in err and "verified" in err
    back = str(tmp_path / "back.sqlite3")
    assert main(["copy", "--from", pg_url, "--to", back]) == 0
    capsys.readouterr()
    for ns in ("default", "tenant-b"):
        dumps = []
        for db in (source, pg_url, back):
            assert main(["export", "--db", db, "--namespace", ns]) == 0
            dumps.append(capsys.readouterr().out)
        assert dumps[0] == dumps[1] == dumps[2] and dumps[0].count("\n") == 7

    async def connections(db: str) -> list[Connection]:
        async with open_app(Config(db=db), worker=False) as app:
            return await app.service.list_connections("tenant-b")

    found = [anyio.run(connections, db) for db in (source, pg_url, back)]
    assert found[0] == found[1] == found[2]  # alias, state, version and time survive both copies
    assert (found[0][1].alias, found[0][1].is_active, found[0][1].version) == ("oa-2", False, 2)
    assert main(["copy", "--from", source, "--to", pg_url]) == 1  # never into a database in use
    assert "not empty" in capsys.readouterr().err
    assert main(["compact", "--db", pg_url, "--json"]) == 0
    assert '"backend": "postgresql"' in capsys.readouterr().out


async def test_one_tenants_data_has_no_effect_on_anothers_search_order(pg_cluster: Cluster) -> None:
    """The SQLite regression test (test_http), on PostgreSQL: the same orders, whatever
    another namespace stores."""
    from tests.test_http import TOKENS, _search_order_of_b

    runs = {}
    for flood in (None, "alpine", "hiking"):
        config = Config(db=pg_cluster.create_schema(), tokens=TOKENS)
        runs[flood] = await _search_order_of_b(config, flood)
    assert runs["alpine"] == runs[None] == runs["hiking"], runs
    assert runs[None] == [["b4", "b1", "b2", "b3", "b5"]] * 3


def test_a_url_without_the_driver_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mcp_profiles import pgstore
    from mcp_profiles.cli import main

    monkeypatch.setattr(pgstore, "asyncpg", None)
    assert main(["list", "--db", "postgresql://app:s3cret@db.invalid/profiles"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'mcp-profiles[postgres]'" in err and "s3cret" not in err


def test_an_unreachable_database_is_an_invalid_setting_without_its_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from mcp_profiles.cli import main

    url = f"postgresql://app:s3cret@/profiles?host={tmp_path}"  # no server listens there
    assert main(["stats", "--db", url]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("mcp-profiles: invalid: cannot open postgresql://app:***@/profiles")
        and "s3cret" not in err
    )
