"""A throwaway PostgreSQL cluster from the machine's own binaries (Debian's ``postgresql``).

``initdb`` into a temporary folder, then ``pg_ctl start`` with a Unix socket in that folder,
no TCP listener and ``fsync=off``. Both run as the ``postgres`` user when we are root,
because ``initdb`` refuses root. Used by the test fixture and by the bench scripts, so
neither needs a database someone else set up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

HOW_TO_ENABLE = (
    "PostgreSQL tests need the server binaries (initdb, pg_ctl): install Debian's 'postgresql' "
    "package (apt-get install -y postgresql) or put a PostgreSQL bin folder on PATH"
)


def pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest version."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for folder in reversed(versions):
        if (Path(folder) / "initdb").exists():
            return Path(folder)
    return None


class Cluster:
    """One running server; ``url(db)`` names a database in it by its Unix socket."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="mcp-profiles-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "log"
        self._as_postgres = os.geteuid() == 0
        self.user = "postgres" if self._as_postgres else os.environ.get("USER", "postgres")

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> Cluster:
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        os.chmod(self.root, 0o755)  # the socket folder must be reachable by the tests
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8",
            "--locale=C.UTF-8",
        )  # fmt: skip
        options = (
            f"-k {self.root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start", "-o", options
        )
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{db}?host={self.root}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        subprocess.run(
            [*psql_command(self.url()), "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True,
            timeout=120,
        )  # fmt: skip
        return self.url(name)

    def create_schema(self, db: str = "postgres", prefix: str = "t") -> str:
        """A new empty schema in ``db``; returns a URL whose connections use it (libpq's
        ``options=-csearch_path=…``). Much cheaper than a database per test."""
        import asyncpg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"

        async def create() -> None:
            con = await asyncpg.connect(self.url(db))
            try:
                await con.execute(f'CREATE SCHEMA "{name}"')
            finally:
                await con.close()

        # in a thread of its own, so that async tests (inside a running loop) can call it too
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, create()).result()
        return f"{self.url(db)}&options=-csearch_path%3D{name}"


def psql_command(url: str) -> list[str]:
    """``psql`` on a URL, unaligned with unit-separated fields and no headers."""
    bindir = pg_bin()
    exe = str(bindir / "psql") if bindir else "psql"
    return [exe, "-X", "-q", "-At", "-F", "\x1f", "-v", "ON_ERROR_STOP=1", "-d", url]
