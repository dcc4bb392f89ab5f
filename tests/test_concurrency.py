"""No lost updates: concurrent writers on one session, and two server processes on one file.

Every writer sets its own attribute, so a lost update shows up as a missing key; every
acknowledged write must also have its own version number and its own revision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from mcp_profiles.config import Config
from mcp_profiles.store import _migrations
from tests.helpers import table_counts, text
from tests.procs.common import (
    document,
    integrity_check,
    server_command,
    subprocess_env,
    versions_consistent,
)

WRITERS = 16


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_concurrent_updates_on_one_session_lose_nothing(
    connect: Any, config: Config, mode: str
) -> None:
    async with connect(mode=mode) as client:
        created = await client.call_tool("update_profile", {"profile": "hot", "create": True, "patch": {}})
        assert created.structured_content["profile"]["version"] == 1
        versions: list[int] = []

        async def writer(i: int) -> None:
            result = await client.call_tool(
                "update_profile", {"profile": "hot", "patch": {"attributes": {f"load.writer_{i:02d}": i}}}
            )
            assert not result.is_error, text(result)
            assert result.structured_content["changed"] == [f"attributes.load.writer_{i:02d}"]
            versions.append(result.structured_content["profile"]["version"])

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for i in range(WRITERS):
                    tg.start_soon(writer, i)
        doc = (await client.call_tool("get_profile", {"profile": "hot"})).structured_content
        history = (
            await client.call_tool("profile_history", {"profile": "hot", "limit": 200})
        ).structured_content

    # every acknowledged write has its own version: none overwrote another
    assert sorted(versions) == list(range(2, WRITERS + 2))
    assert {f"load.writer_{i:02d}" for i in range(WRITERS)} == set(doc["attributes"])
    assert doc["version"] == 1 + WRITERS
    assert [v["version"] for v in history["versions"]] == list(range(WRITERS + 1, 0, -1))
    assert integrity_check(config.db_path) == "ok"
    assert versions_consistent(config.db_path) == {"hot": (WRITERS + 1, WRITERS + 1)}


async def test_stale_writers_racing_on_expected_version_get_conflict(connect: Any, config: Config) -> None:
    """Compare-and-swap: of eight writers holding the same version, exactly one wins."""
    async with connect() as client:
        await client.call_tool("update_profile", {"profile": "cas", "create": True, "patch": {"name": "v1"}})
        await client.call_tool("update_profile", {"profile": "cas", "patch": {"name": "v2"}})
        seen = (await client.call_tool("get_profile", {"profile": "cas"})).structured_content["version"]
        assert seen == 2
        before = table_counts(config.db_path)
        outcomes: dict[int, Any] = {}

        async def writer(i: int) -> None:
            outcomes[i] = await client.call_tool(
                "update_profile",
                {"profile": "cas", "patch": {"name": f"writer {i}"}, "expected_version": seen},
            )

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(writer, i)
        doc = (await client.call_tool("get_profile", {"profile": "cas"})).structured_content

    winners = [i for i, r in outcomes.items() if not r.is_error]
    losers = [r for r in outcomes.values() if r.is_error]
    assert len(winners) == 1 and len(losers) == 7
    assert doc["name"] == f"writer {winners[0]}" and doc["version"] == 3
    for r in losers:
        assert text(r).startswith("conflict:"), text(r)
        assert "is at version 3, not 2" in text(r)  # names the current version
    after = table_counts(config.db_path)
    assert after["revisions"] == before["revisions"] + 1  # the losers wrote nothing


async def test_two_server_processes_on_one_file_lose_no_update(tmp_path: Path) -> None:
    """Two ``mcp-profiles serve`` processes, started together on a fresh file (both migrate
    it), each with ten concurrent writers making three edits apiece on one profile."""
    db = tmp_path / "shared.sqlite3"
    command, args = server_command("serve")
    params = StdioServerParameters(command=command, args=args, env=subprocess_env(MCP_PROFILES_DB=str(db)))
    per_process, rounds = 10, 3
    acked: list[tuple[str, int]] = []

    async def session(name: str, client: Client, start: anyio.Event) -> None:
        await start.wait()

        async def writer(w: int) -> None:
            for r in range(rounds):
                key = f"load.{name}_w{w:02d}_r{r}"
                result = await client.call_tool(
                    "update_profile", {"profile": "shared", "create": True, "patch": {"attributes": {key: r}}}
                )
                assert not result.is_error, text(result)
                acked.append((key, result.structured_content["profile"]["version"]))

        async with anyio.create_task_group() as tg:
            for w in range(per_process):
                tg.start_soon(writer, w)

    with anyio.fail_after(60):
        async with Client(params) as a, Client(params) as b:
            start = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(session, "a", a, start)
                tg.start_soon(session, "b", b, start)
                start.set()
            # then a compare-and-swap race across the two processes: exactly one wins
            current = (await a.call_tool("get_profile", {"profile": "shared"})).structured_content["version"]
            race: list[Any] = []

            async def cas(client: Client, who: str) -> None:
                race.append(
                    await client.call_tool(
                        "update_profile",
                        {"profile": "shared", "patch": {"name": who}, "expected_version": current},
                    )
                )

            async with anyio.create_task_group() as tg:
                for i in range(4):
                    tg.start_soon(cas, a, f"a{i}")
                    tg.start_soon(cas, b, f"b{i}")

    total = 2 * per_process * rounds
    assert len(acked) == total
    # the first write of all created the profile (version 1); each other one added a version
    assert sorted(v for _, v in acked) == list(range(1, total + 1))
    assert sum(not r.is_error for r in race) == 1
    assert all(text(r).startswith("conflict:") for r in race if r.is_error)
    doc = document(db, "shared")
    assert {k for k, _ in acked} == set(doc["attributes"])
    assert doc["version"] == total + 1
    assert integrity_check(db) == "ok"
    assert versions_consistent(db) == {"shared": (total + 1, total + 1)}


def test_fresh_file_opened_by_many_processes_at_once_is_migrated_once(tmp_path: Path) -> None:
    """Regression: migrations decided outside their transaction, so a second process
    opening a fresh file re-ran them ("duplicate column name: claimed_by")."""
    import subprocess
    import sys

    for attempt in range(3):
        db = tmp_path / f"fresh{attempt}.sqlite3"
        code = (
            "import anyio, sys\n"
            "from mcp_profiles.store import ProfileStore\n"
            "async def main():\n"
            "    async with ProfileStore.open(sys.argv[1]) as s:\n"
            "        print(await s.schema_version())\n"
            "anyio.run(main)\n"
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(db)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=subprocess_env(),
            )
            for _ in range(4)
        ]
        versions = set()
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            versions.add(out.strip())
        assert versions == {str(max(v for v, _ in _migrations()))}
        assert integrity_check(db) == "ok"
