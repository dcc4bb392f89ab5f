"""Crash safety: SIGKILL in the middle of a burst of writes, and in the middle of an extraction.

After every kill the file must pass ``integrity_check`` (and FTS5's own check), hold every
write the killed process acknowledged, and show no half-applied change: each profile at
version N has exactly the revisions 1..N, the newest one equal to the stored document.
Accepted data items interrupted mid-extraction are requeued and processed on restart.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from mcp_profiles.config import Config
from mcp_profiles.runtime import open_app
from tests.fakes import MessagesAPI, anthropic_llm
from tests.procs.common import (
    PROCS,
    connect_ro,
    document,
    integrity_check,
    server_command,
    subprocess_env,
    versions_consistent,
)

pytestmark = pytest.mark.slow

CHAT = "User: I'm {name}, I work as a {job} in {city}.\nAssistant: Noted.\nUser: I prefer {pref} answers.\n"


@contextmanager
def _spawn(*args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=PROCS.parents[1],
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:  # the test failed before killing it
            proc.kill()
            proc.communicate(timeout=30)


def _kill(proc: subprocess.Popen[str]) -> list[str]:
    """SIGKILL, reap (a zombie would still look alive to the requeue check), return the
    lines it printed but we had not read yet."""
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return out.splitlines()


def _check_acks(db: Path, acks: list[tuple[str, str, int]], *, in_order: bool = True) -> None:
    """Every acknowledged write is present, and no version was acknowledged twice.

    ``in_order``: acknowledgements were read from one sequential writer, so they arrive in
    commit order. Concurrent requests on one session may be answered in any order."""
    by_profile: dict[str, list[int]] = defaultdict(list)
    docs: dict[str, dict[str, Any]] = {}
    for profile, key, version in acks:
        doc = docs.setdefault(profile, document(db, profile))
        assert key in doc["attributes"], f"acknowledged write {key} of {profile} v{version} is lost"
        assert doc["version"] >= version
        by_profile[profile].append(version)
    for versions in by_profile.values():
        assert len(set(versions)) == len(versions), "a version was acknowledged twice"
        if in_order:
            assert versions == sorted(versions)


def test_sigkill_during_a_burst_of_writes_loses_no_acknowledged_write(tmp_path: Path) -> None:
    db = tmp_path / "burst.sqlite3"
    rng = random.Random(4)
    kills, acks = 8, []
    for run in range(kills):
        with _spawn(str(PROCS / "writer.py"), str(db), str(run)) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            target = rng.randint(5, 120)
            seen = 0
            while seen < target:
                line = proc.stdout.readline()
                assert line.startswith("ack "), line
                _, profile, key, version = line.split()
                acks.append((profile, key, int(version)))
                seen += 1
            for line in _kill(proc):  # printed after a commit returned: acknowledged too
                if line.startswith("ack "):
                    _, profile, key, version = line.split()
                    acks.append((profile, key, int(version)))
        assert integrity_check(db) == "ok"
        versions_consistent(db)
        _check_acks(db, acks)
    totals = versions_consistent(db)
    assert sum(v for v, _ in totals.values()) >= len(acks)
    print(f"\n{kills} kills, {len(acks)} acknowledged writes, all present; versions {totals}")


def _child_pid(marker: str) -> int:
    """The pid of our child process whose command line contains ``marker`` (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmdline and int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            return int(entry.name)
    raise AssertionError(f"no child process with {marker!r}")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the server's pid in /proc")
async def test_sigkill_of_the_stdio_server_mid_burst(tmp_path: Path) -> None:
    """The real ``mcp-profiles serve`` killed while eight clients' writes are in flight."""
    db = tmp_path / "stdio-burst.sqlite3"
    rng = random.Random(7)
    acks: list[tuple[str, str, int]] = []
    for run in range(3):
        command, args = server_command("serve", "--db", str(db))
        params = StdioServerParameters(command=command, args=args, env=subprocess_env())
        target = len(acks) + rng.randint(10, 60)
        killed = False

        async def writer(client: Client, w: int, pid: int, run: int = run, target: int = target) -> None:
            nonlocal killed
            for n in range(10_000):
                key = f"burst.s{run}_w{w}_n{n:04d}"
                profile = f"stdio-{w % 3}"
                try:
                    result = await client.call_tool(
                        "update_profile",
                        {"profile": profile, "create": True, "patch": {"attributes": {key: n}}},
                    )
                except MCPError:
                    return  # the server is gone; this write was never acknowledged
                assert not result.is_error
                acks.append((profile, key, result.structured_content["profile"]["version"]))
                if len(acks) >= target and not killed:
                    killed = True
                    os.kill(pid, signal.SIGKILL)

        with anyio.fail_after(60):
            try:
                async with Client(params) as client:
                    pid = _child_pid(str(db))
                    async with anyio.create_task_group() as tg:
                        for w in range(8):
                            tg.start_soon(writer, client, w, pid)
            except* MCPError:
                pass  # closing a client whose server was killed
        assert killed
        assert integrity_check(db) == "ok"
        versions_consistent(db)
        _check_acks(db, acks, in_order=False)  # eight writers share one session
    print(f"\n3 kills of the stdio server, {len(acks)} acknowledged writes, all present")


def test_sigkill_during_extraction_resumes_every_item_on_restart(tmp_path: Path) -> None:
    db = tmp_path / "extract.sqlite3"
    kills = 5
    submitted: list[str] = []
    for run in range(kills):
        data = tmp_path / f"chat{run}.txt"
        data.write_text(
            CHAT.format(name=f"Person{run}", job=f"job{run}", city=f"City{run}", pref="short"), "utf-8"
        )
        profile = f"extract-{run % 2}"
        with _spawn(str(PROCS / "extractor.py"), str(db), profile, str(data)) as proc:
            assert proc.stdout is not None
            first = proc.stdout.readline().split()
            assert first[:1] == ["submitted"] and first[2] == "False", first
            submitted.append(first[1])
            # the worker requeues the items of earlier killed runs (their owner is dead), then
            # calls the model with one profile's pending items; kill it inside that call
            line = proc.stdout.readline()
            assert line.startswith("llm "), line
            in_flight = set(line.split()[1:])
            assert in_flight
            _kill(proc)
        con = connect_ro(db)
        states = dict(con.execute("SELECT id, status FROM data_items").fetchall())
        con.close()
        assert set(states) == set(submitted)  # every accepted item is kept
        for item_id, status in states.items():  # killed with the claim held; the rest wait
            assert status == ("processing" if item_id in in_flight else "pending"), (item_id, status)
        assert integrity_check(db) == "ok"
        versions_consistent(db)

    async def restart() -> MessagesAPI:
        api = MessagesAPI(when_empty="echo")
        async with open_app(Config(db=str(db)), llm=anthropic_llm(api)) as app:
            with anyio.fail_after(30):
                while True:
                    statuses = [(await app.extractor.job("default", j)).status for j in submitted]
                    if all(s == "done" for s in statuses):
                        break
                    assert "failed" not in statuses
                    await anyio.sleep(0.02)
        return api

    api = anyio.run(restart)
    assert len(api.requests) >= 1
    con = connect_ro(db)
    states = dict(con.execute("SELECT status, count(*) FROM data_items GROUP BY status").fetchall())
    con.close()
    assert states == {"done": kills}
    assert integrity_check(db) == "ok"
    totals = versions_consistent(db)
    for run in range(2):  # each profile got the extracted fact from its data
        assert "basic_info.fake_note" in document(db, f"extract-{run}")["attributes"]
    print(f"\n{kills} kills mid-extraction, {kills} items resumed and done; versions {totals}")
