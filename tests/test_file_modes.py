"""Personal data on disk is readable by its owner only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_profiles.cli import main
from mcp_profiles.store import ProfileStore


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_database_wal_shm_and_new_folders_are_private(tmp_path: Path, umask_022: None) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    db = home / "data" / "nested" / "profiles.sqlite3"
    async with ProfileStore.open(db) as store:
        async with store.write() as tx:
            await tx.add_connection("default", _connection())
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert wal.exists() and shm.exists()  # the connection is open: WAL mode keeps both
        assert {p.name: oct(mode(p)) for p in (db, wal, shm)} == {
            "profiles.sqlite3": "0o600",
            "profiles.sqlite3-wal": "0o600",
            "profiles.sqlite3-shm": "0o600",
        }
    assert oct(mode(home / "data")) == oct(mode(home / "data" / "nested")) == "0o700"
    assert oct(mode(home)) == "0o755"  # a folder that already existed keeps its mode


def test_cli_database_and_export_are_private(capsys: Any, tmp_path: Path, umask_022: None) -> None:
    db = tmp_path / "new" / "p.sqlite3"
    assert main(["update", "alice", "--create", "--patch", '{"name": "Alice"}', "--db", str(db)]) == 0
    out = tmp_path / "backup.jsonl"
    out.write_text("an older backup, world-readable\n")
    out.chmod(0o644)
    assert main(["export", "-o", str(out), "--db", str(db)]) == 0
    capsys.readouterr()
    assert '"alice"' in out.read_text()
    assert (oct(mode(db)), oct(mode(db.parent)), oct(mode(out))) == ("0o600", "0o700", "0o600")


def _connection() -> Any:
    from mcp_profiles.models import Connection

    return Connection(id="c1", provider_id="anthropic", created_at="2026-01-01T00:00:00Z")
