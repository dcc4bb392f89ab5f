"""Shared by the reliability tests: the server command, ports, and database checks.

Everything here reads the database file with the standard ``sqlite3`` module, apart from
the server under test, so a check never trusts the code it is checking.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

from mcp_profiles.store import unpack

ROOT = Path(__file__).resolve().parents[2]
PROCS = Path(__file__).resolve().parent


def server_command(*args: str) -> tuple[str, list[str]]:
    """The installed ``mcp-profiles`` command (or ``python -m mcp_profiles``) with ``args``."""
    exe = shutil.which("mcp-profiles")
    if exe:
        return exe, list(args)
    return sys.executable, ["-m", "mcp_profiles", *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    """A clean environment for a child process: no API key, no tokens, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_PROFILES_", "ANTHROPIC_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connect_ro(db: str | Path) -> sqlite3.Connection:
    """A read-only connection that does not take part in the server's transactions."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)


def integrity_check(db: str | Path) -> str:
    """``PRAGMA integrity_check`` plus FTS5's own check of the search index."""
    con = sqlite3.connect(str(db), isolation_level=None)
    try:
        result = "\n".join(str(r[0]) for r in con.execute("PRAGMA integrity_check"))
        con.execute("INSERT INTO profiles_fts(profiles_fts, rank) VALUES ('integrity-check', 1)")
        return result
    finally:
        con.close()


def versions_consistent(db: str | Path) -> dict[str, tuple[int, int]]:
    """Per profile: (version, revisions). Asserts every version has exactly its revision
    and that the newest revision's snapshot is the stored document (no half-applied write)."""
    con = connect_ro(db)
    try:
        out = {}
        for pk, pid, version, document in con.execute("SELECT pk, id, version, document FROM profiles"):
            revs = [
                r[0]
                for r in con.execute(
                    "SELECT version FROM revisions WHERE profile_pk = ? ORDER BY version", (pk,)
                )
            ]
            assert revs == list(range(1, version + 1)), (pid, version, revs)
            (snapshot,) = con.execute(
                "SELECT snapshot FROM revisions WHERE profile_pk = ? AND version = ?", (pk, version)
            ).fetchone()
            assert json.loads(unpack(snapshot)) == json.loads(unpack(document)), pid
            out[pid] = (version, len(revs))
        return out
    finally:
        con.close()


def document(db: str | Path, profile_id: str, namespace: str = "default") -> dict[str, Any]:
    """The stored document of one profile, read directly from the file."""
    con = connect_ro(db)
    try:
        row = con.execute(
            "SELECT document FROM profiles WHERE namespace = ? AND id = ?", (namespace, profile_id)
        ).fetchone()
        assert row is not None, profile_id
        return dict(json.loads(unpack(row[0])))
    finally:
        con.close()


def database_files(db: str | Path) -> list[Path]:
    """The database file and every companion SQLite may write (WAL, shared memory, journal)."""
    base = Path(db)
    return [p for p in (base, *(Path(f"{base}{s}") for s in ("-wal", "-shm", "-journal"))) if p.exists()]
