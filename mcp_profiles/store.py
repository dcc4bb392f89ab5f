"""ProfileStore: the only module that speaks SQL.

One aiosqlite connection in autocommit mode, serialised by a lock; every write runs in an
explicit ``BEGIN IMMEDIATE`` transaction (:meth:`ProfileStore.write`) that rolls back on
any exception, so a failed call writes nothing. Document updates are conditional on the
version read (``UPDATE … WHERE version = ?``): two processes on one file can never lose
each other's updates. The interface speaks in models and namespaces, not rows, so another
backend (PostgreSQL) can implement the same methods.

Migrations are numbered ``.sql`` files in ``migrations/``, each applied together with its
``schema_migrations`` row in one transaction on open.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sqlite3
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from .chunking import estimate_tokens
from .errors import Conflict, Invalid
from .models import Connection, Kind, Profile, ProfileSummary, Revision

__all__ = ["DataItem", "ProfileStore", "ReadTx", "WriteTx", "create_private"]

# busy_timeout first: switching to WAL needs a lock another process opening the same
# file may hold for a moment.
_BUSY_TIMEOUT_MS = 10000
_PRAGMAS = (
    f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA secure_delete=ON",
)
_SUMMARY_COLS = "id, kind, alias, name, summary, version, updated_at"
# After an erasure the truncating checkpoint is retried this long (pauses growing to 0.2 s)
# while another connection's read holds it back; then the answer says ``wal_pending``.
ERASURE_CHECKPOINT_SECONDS = 2.0
_CHECKPOINT_PAUSES = (0.01, 0.02, 0.05, 0.1, 0.2)

log = logging.getLogger("mcp_profiles")


@dataclass
class DataItem:
    """A raw input and its processing state (the job)."""

    id: str
    namespace: str
    profile_pk: int
    profile_id: str
    sha256: str
    content: str
    input_type: str | None
    status: str
    error: str | None
    attempts: int
    usage: dict[str, int]
    result: dict[str, Any] | None
    created_at: str
    updated_at: str
    next_attempt_at: float | None = None
    bytes: int = 0
    content_deleted_at: str | None = None


# A data item's columns as both stores select them (``d``: data_items, ``p``: profiles), in
# the order :func:`_item` reads them.
_ITEM_COLS = (
    "d.id, d.namespace, d.profile_pk, p.id, d.sha256, d.content, d.input_type, d.status, d.error, "
    "d.attempts, d.input_tokens, d.output_tokens, d.cache_read_tokens, d.cache_write_tokens, d.requests, "
    "d.result, d.created_at, d.updated_at, d.bytes, d.content_deleted_at, d.next_attempt_at"
)


def _item(r: Sequence[Any]) -> DataItem:
    """A row of :data:`_ITEM_COLS` as a :class:`DataItem`."""
    return DataItem(
        id=r[0],
        namespace=r[1],
        profile_pk=r[2],
        profile_id=r[3],
        sha256=r[4],
        content=r[5],
        input_type=r[6],
        status=r[7],
        error=r[8],
        attempts=r[9],
        usage={
            "input_tokens": r[10],
            "output_tokens": r[11],
            "cache_read_input_tokens": r[12],
            "cache_creation_input_tokens": r[13],
            "requests": r[14],
        },
        result=json.loads(r[15]) if r[15] else None,
        created_at=r[16],
        updated_at=r[17],
        bytes=r[18],
        content_deleted_at=r[19],
        next_attempt_at=r[20],
    )


@dataclass
class ItemHeader:
    """What a data item is, without its content (for listing)."""

    id: str
    input_type: str | None
    status: str
    error: str | None
    created_at: str


@dataclass
class _Stats:
    profiles: int = 0
    versions: int = 0
    items: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)


def create_private(path: Path) -> None:
    """Create a database file readable by its owner only (0600), in folders of its own (0700).

    The modes are set explicitly, whatever the umask. SQLite gives the ``-wal`` and ``-shm``
    files the mode of the database file. Folders and files that already exist are left as
    they are: their owner chose their modes.
    """
    missing = []
    folder = path.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue  # another process made it first
        os.chmod(folder, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def pack(text: str) -> bytes:
    """A revision's diff or snapshot as stored: zlib-compressed UTF-8 JSON.

    Snapshots and diffs are about 2 KB of repetitive JSON each; compressed they are about a
    third of that, and two revision rows fit on a page where one used to. Decompressing a
    few kilobytes costs microseconds, and only history reads and reverts pay it.
    """
    return zlib.compress(text.encode(), 6)


def unpack(value: str | bytes) -> str:
    """The JSON text of a stored diff or snapshot, compressed (BLOB) or from before 007 (TEXT)."""
    return zlib.decompress(value).decode() if isinstance(value, bytes) else value


async def _compress_revisions(db: aiosqlite.Connection, batch: int = 2000) -> None:
    """Migration 007, in place and in the migration's transaction (a crash leaves the file as
    it was): the table becomes an ordinary rowid table, then every TEXT diff and snapshot is
    compressed.

    A WITHOUT ROWID row keeps at most about 1,000 bytes on its page (a quarter of a 4 KiB
    page) and spills the rest to an overflow page of its own, so a compressed 1.2 KB
    revision still took a whole page; a rowid table keeps rows up to about 4 KB inline. The
    table is rebuilt from its own definition, so columns added by other migrations survive.
    """
    async with db.execute(
        "SELECT type, name, sql FROM sqlite_schema WHERE tbl_name = 'revisions' AND sql IS NOT NULL"
    ) as cur:
        schema = [(str(r[0]), str(r[1]), str(r[2])) for r in await cur.fetchall()]
    table_sql = next(sql for kind, _, sql in schema if kind == "table")
    if re.search(r"\)\s*WITHOUT\s+ROWID\s*$", table_sql, re.IGNORECASE):
        rowid_sql = re.sub(r"\)\s*WITHOUT\s+ROWID\s*$", ")", table_sql, flags=re.IGNORECASE)
        rowid_sql = re.sub(r"^CREATE TABLE\s+\"?revisions\"?", "CREATE TABLE revisions_007", rowid_sql)
        await db.execute(rowid_sql)
        await db.execute("INSERT INTO revisions_007 SELECT * FROM revisions")
        await db.execute("DROP TABLE revisions")
        await db.execute("ALTER TABLE revisions_007 RENAME TO revisions")
        for kind, _, sql in schema:
            if kind in ("index", "trigger"):
                await db.execute(sql)
    last: tuple[int, int] = (-1, -1)
    while True:
        async with db.execute(
            "SELECT profile_pk, version, diff, snapshot FROM revisions WHERE (profile_pk, version) > (?, ?) "
            "AND (typeof(diff) = 'text' OR typeof(snapshot) = 'text') ORDER BY profile_pk, version LIMIT ?",
            (*last, batch),
        ) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return
        await db.executemany(
            "UPDATE revisions SET diff = ?, snapshot = ? WHERE profile_pk = ? AND version = ?",
            [(pack(unpack(r[2])), pack(unpack(r[3])), r[0], r[1]) for r in rows],
        )
        last = (int(rows[-1][0]), int(rows[-1][1]))


async def _compress_documents(db: aiosqlite.Connection, batch: int = 2000) -> None:
    """Migration 008, in place: compress every current document.

    A document is about 2 KB of JSON, so only one row fit on a 4 KiB page and the profiles
    table took about 4 KB per profile; compressed, four rows share a page.
    """
    last = -1
    while True:
        async with db.execute(
            "SELECT pk, document FROM profiles WHERE pk > ? AND typeof(document) = 'text' ORDER BY pk LIMIT ?",
            (last, batch),
        ) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return
        await db.executemany(
            "UPDATE profiles SET document = ? WHERE pk = ?", [(pack(str(r[1])), r[0]) for r in rows]
        )
        last = int(rows[-1][0])


# Steps a migration needs beyond SQL, run after its statements in the same transaction.
_PYTHON_STEPS: dict[int, Callable[[aiosqlite.Connection], Awaitable[None]]] = {
    7: _compress_revisions,
    8: _compress_documents,
}


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("mcp_profiles") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d+)_.*\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(script: str) -> list[str]:
    """Split a migration script into complete SQL statements (triggers included)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()
    ):
        raise ValueError(f"migration ends with an incomplete statement: {pending[:80]!r}")
    return statements


def _fts_query(text: str) -> str:
    """Turn free text into an FTS5 query: every word must match, the last as a prefix."""
    words = re.findall(r"\w+", text)
    if not words:
        raise Invalid("query: needs at least one letter or digit")
    quoted = ['"' + w.replace('"', '""') + '"' for w in words[:16]]
    quoted[-1] += "*"
    return " ".join(quoted)


def _encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, kind: type[int] | type[str]) -> Any:
    """The position a cursor holds: an offset (search) or the last id (listing).

    Raises:
        Invalid: the cursor is not one this server returned for this kind of listing.
    """
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        value = None
    if kind is int:
        ok = type(value) is int and 0 <= value < 2**31
    else:
        ok = type(value) is str
    if not ok:
        raise Invalid("cursor: not a cursor this server returned")
    return value


class ProfileStore:
    """Profiles, revisions, data items and connections in one SQLite file."""

    def __init__(self, db: aiosqlite.Connection, path: str) -> None:
        self._db = db
        # fast_acquire: an uncontended lock is taken without a trip through the event loop
        self._lock = anyio.Lock(fast_acquire=True)
        self.path = path
        # An erasure whose pre-erasure pages are still in the WAL (or the erased pages not
        # yet overwritten in the main file): finished by the next write, tick or close.
        self.wal_pending = False

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str | Path) -> AsyncIterator[ProfileStore]:
        """Open (creating and migrating as needed) the database at ``path``."""
        path = str(path)
        if path != ":memory:":
            path = str(Path(path).expanduser())
            create_private(Path(path))
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            for pragma in _PRAGMAS:
                await db.execute(pragma)
            store = cls(db, path)
            await store._migrate()
            # A process that died with an erasure pending left it in the WAL: finish it now.
            await store._try_truncate()
            yield store
            if store.wal_pending:
                with anyio.CancelScope(shield=True):
                    await store._compact_after_erasure()
                if store.wal_pending:
                    log.warning("closing with erased data still in %s-wal: another connection reads it", path)
        finally:
            await db.close()

    async def _migrate(self) -> None:
        """Apply missing migrations, each in its own ``BEGIN IMMEDIATE`` transaction.

        Whether a migration is applied is decided inside the transaction that applies it,
        so several processes opening a fresh file at once apply each migration once.
        """
        await self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
        )
        for version, sql in _migrations():
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                async with self._db.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                ) as cur:
                    applied = await cur.fetchone() is not None
                if not applied:
                    for statement in _statements(sql):
                        await self._db.execute(statement)
                    if version in _PYTHON_STEPS:
                        await _PYTHON_STEPS[version](self._db)
                    await self._db.execute(
                        "INSERT INTO schema_migrations VALUES (?, datetime('now'))", (version,)
                    )
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def schema_version(self) -> int:
        """Highest applied migration."""
        async with self._db.execute("SELECT max(version) FROM schema_migrations") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # ---- reads ------------------------------------------------------------------

    @asynccontextmanager
    async def read(self, *, snapshot: bool = True) -> AsyncIterator[ReadTx]:
        """A consistent read view (one read transaction). ``snapshot=False`` skips the
        explicit transaction, two trips to the database thread, for reads of one statement
        (each statement is consistent on its own)."""
        async with self._lock:
            if not snapshot:
                yield ReadTx(self._db)
                return
            await self._control("BEGIN")
            try:
                yield ReadTx(self._db)
            finally:
                await self._control("COMMIT")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[WriteTx]:
        """A write transaction: commits when the block ends, rolls back if it raises."""
        async with self._lock:
            conn = _TxConnection(self._db, "BEGIN IMMEDIATE")
            tx = WriteTx(conn)
            try:
                yield tx
                with anyio.CancelScope(shield=True):  # as _control: never leave it open
                    await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
        if tx.erased:
            await self._compact_after_erasure()
        elif self.wal_pending:
            await self.finish_erasure()

    async def _control(self, statement: str) -> None:
        """BEGIN, COMMIT or ROLLBACK, shielded from cancellation.

        A cancelled request (a client's ``notifications/cancelled``, a dropped HTTP
        connection) must not leave the shared connection inside a transaction: the
        database thread runs the statement anyway, and nothing would ever end it.
        """
        with anyio.CancelScope(shield=True):
            await self._db.execute(statement)

    async def _compact_after_erasure(self) -> None:
        """Copy the erasure into the main file and empty the WAL, which still holds the
        pages as they were before it: retried for ``ERASURE_CHECKPOINT_SECONDS`` while
        another connection's read transaction holds the checkpoint back (a second server,
        ``export``, a backup), then left to :meth:`finish_erasure` with ``wal_pending`` set.
        """
        deadline = anyio.current_time() + ERASURE_CHECKPOINT_SECONDS
        pauses = iter(_CHECKPOINT_PAUSES)
        while not await self._try_truncate():
            left = deadline - anyio.current_time()
            if left <= 0:
                self.wal_pending = True
                log.warning("erased data stays in %s-wal until a reader finishes; retried later", self.path)
                return
            await anyio.sleep(min(next(pauses, _CHECKPOINT_PAUSES[-1]), left))
        self.wal_pending = False

    async def finish_erasure(self) -> bool:
        """One more truncating checkpoint if an erasure is pending; True when none is."""
        if self.wal_pending and await self._try_truncate():
            self.wal_pending = False
        return not self.wal_pending

    async def _try_truncate(self) -> bool:
        """One ``wal_checkpoint(TRUNCATE)`` that does not wait for readers; True when it
        completed (every frame in the main file, the WAL empty). Never raises for a busy or
        locked file: it runs after a write has committed, which must not then fail."""
        async with self._lock:
            with anyio.CancelScope(shield=True):  # never leave busy_timeout at 0
                await self._db.execute("PRAGMA busy_timeout=0")
                try:
                    rows = list(await self._db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)"))
                except sqlite3.OperationalError:
                    rows = []
                finally:
                    await self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        return bool(rows) and int(rows[0][0]) == 0

    async def checkpoint(self) -> tuple[int, int, int]:
        """Checkpoint and truncate the WAL; returns (busy, wal frames, checkpointed)."""
        async with self._lock, self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
            row = await cur.fetchone()
        if row is None:  # SQLite always answers this pragma with one row
            raise RuntimeError("wal_checkpoint returned no row")
        return int(row[0]), int(row[1]), int(row[2])

    async def compact(self) -> dict[str, Any]:
        """Rewrite the file (VACUUM) and empty the WAL: free pages go back to the file system.
        ``secure_delete`` already zeroes erased content, so this is about size, not erasure."""
        size = self._file_bytes()
        async with self._lock:
            await self._db.execute("VACUUM")
            await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"backend": "sqlite", "bytes_before": size, "bytes_after": self._file_bytes()}

    def _file_bytes(self) -> int:
        files = (Path(self.path + suffix) for suffix in ("", "-wal", "-shm"))
        return sum(f.stat().st_size for f in files if self.path != ":memory:" and f.exists())

    async def integrity_check(self) -> str:
        """``ok`` when SQLite finds nothing wrong."""
        async with self._lock, self._db.execute("PRAGMA integrity_check") as cur:
            rows = await cur.fetchall()
        return "\n".join(str(r[0]) for r in rows)


@dataclass
class _Step:
    """A statement of a write transaction, run on the database thread with its neighbours."""

    sql: str
    params: Any
    many: bool = False
    one_row: str | None = None  # Conflict message when it does not change exactly one row
    unique: str | None = None  # Conflict message for a UNIQUE violation


@dataclass
class _Cursor:
    rowcount: int
    lastrowid: int | None
    rows: list[Any]


class _TxConnection:
    """The connection as a write transaction sees it: one hop to the database thread per
    round trip that needs an answer, not one per statement.

    ``BEGIN IMMEDIATE`` waits for the first statement; writes whose answer is not needed
    (``defer``) wait for the next statement or for ``commit``, which sends them with the
    ``COMMIT``. An ``update_profile`` is then two hops (begin + read, writes + commit)
    instead of about seven. Each hop is a thread switch and a wake-up of the event loop,
    which on a loaded machine costs more than the SQL itself.
    """

    def __init__(self, db: aiosqlite.Connection, begin: str) -> None:
        self._raw = db
        self._begin: str | None = begin
        self._pending: list[_Step] = []

    def defer(self, step: _Step) -> None:
        self._pending.append(step)

    async def _run(self, steps: list[_Step], *, commit: bool = False) -> _Cursor:
        if self._begin is not None:
            steps = [_Step(self._begin, ()), *steps]
            self._begin = None
        steps, self._pending = [*self._pending, *steps], []
        if commit:
            steps.append(_Step("COMMIT", ()))
        raw = self._raw

        def run() -> _Cursor:
            conn: sqlite3.Connection = raw._conn  # noqa: SLF001 (aiosqlite runs this on its thread)
            cur: sqlite3.Cursor | None = None
            for step in steps:
                try:
                    cur = (
                        conn.executemany(step.sql, step.params)
                        if step.many
                        else conn.execute(step.sql, step.params)
                    )
                except sqlite3.IntegrityError as e:
                    if step.unique is not None and "UNIQUE" in str(e):
                        raise Conflict(step.unique) from None
                    raise
                if step.one_row is not None and cur.rowcount != 1:
                    raise Conflict(step.one_row)
            if cur is None:
                return _Cursor(0, None, [])
            return _Cursor(cur.rowcount, cur.lastrowid, cur.fetchall())

        result: _Cursor = await raw._execute(run)  # type: ignore[no-untyped-call]  # one queued call, one hop
        return result

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        return await self._run([_Step(sql, params)])

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> _Cursor:
        return await self._run([_Step(sql, list(params), many=True)])

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return (await self._run([_Step(sql, params)])).rows

    async def commit(self) -> None:
        """Send what is pending with the COMMIT; a transaction that ran nothing costs nothing."""
        if self._begin is not None and not self._pending:
            return
        await self._run([], commit=True)

    async def rollback(self) -> None:
        """End the transaction if the database thread began it, shielded from cancellation.

        The state is read on the database thread, behind whatever was already sent: a hop
        cancelled while queued (its ``BEGIN IMMEDIATE`` not yet run) still begins the
        transaction later, so asking ``in_transaction`` from here could miss it and leave
        the shared connection open for the next writer.
        """
        if self._begin is not None:
            return  # nothing was sent: no transaction to end
        self._pending = []
        raw = self._raw

        def run() -> None:
            conn: sqlite3.Connection = raw._conn  # noqa: SLF001 (aiosqlite runs this on its thread)
            if conn.in_transaction:
                conn.execute("ROLLBACK")

        with anyio.CancelScope(shield=True):
            await raw._execute(run)  # type: ignore[no-untyped-call]


class ReadTx:
    """Read operations; :class:`WriteTx` adds the writes on top."""

    def __init__(self, db: aiosqlite.Connection | _TxConnection) -> None:
        self._db = db

    async def _one(self, sql: str, params: Sequence[Any]) -> Any:
        # One hop to the database thread (execute + fetch + close), not three.
        rows = await self._db.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return list(await self._db.execute_fetchall(sql, params))

    async def locate(self, ns: str, ref: str) -> tuple[int, Profile] | None:
        """Find a profile by id, else by alias; returns (internal key, document)."""
        row = await self._one(
            "SELECT pk, document FROM profiles WHERE namespace = ? AND id = ?", (ns, ref)
        ) or await self._one("SELECT pk, document FROM profiles WHERE namespace = ? AND alias = ?", (ns, ref))
        if row is None:
            return None
        return int(row[0]), Profile.model_validate_json(unpack(row[1]))

    async def document_json(self, ns: str, ref: str) -> str | None:
        """The stored JSON text of a profile named by id or alias, not parsed: every writer
        stores ``Profile.model_dump_json()`` (compressed since 008), so this is the served
        document as it is."""
        row = await self._one(
            "SELECT document FROM profiles WHERE namespace = ? AND id = ?", (ns, ref)
        ) or await self._one("SELECT document FROM profiles WHERE namespace = ? AND alias = ?", (ns, ref))
        return unpack(row[0]) if row else None

    async def profile_by_key(self, pk: int) -> Profile | None:
        """The document behind an internal key (None once deleted)."""
        row = await self._one("SELECT document FROM profiles WHERE pk = ?", (pk,))
        return Profile.model_validate_json(unpack(row[0])) if row else None

    async def get_profile(self, ns: str, ref: str) -> Profile | None:
        """The document of a profile named by id or alias."""
        found = await self.locate(ns, ref)
        return found[1] if found else None

    async def alias_owner(self, ns: str, alias: str) -> str | None:
        """Id of the profile that holds ``alias`` (as alias or as id), if any."""
        row = await self._one(
            "SELECT id FROM profiles WHERE namespace = ? AND (alias = ? OR id = ?) LIMIT 1",
            (ns, alias, alias),
        )
        return str(row[0]) if row else None

    async def refs_starting_with(
        self, ns: str, prefix: str, kind: Kind | None, limit: int
    ) -> tuple[list[tuple[str, str | None]], int]:
        """(id, alias) of profiles whose id or alias starts with ``prefix`` (any case), by id,
        and how many there are in all: what an argument completion offers."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = "namespace = ? AND (id LIKE ? ESCAPE '\\' OR alias LIKE ? ESCAPE '\\')"
        params: list[Any] = [ns, pattern, pattern]
        if kind:
            where += " AND kind = ?"
            params.append(kind)
        rows = await self._all(
            f"SELECT id, alias FROM profiles WHERE {where} ORDER BY id LIMIT ?", [*params, limit]
        )
        total = await self._one(f"SELECT count(*) FROM profiles WHERE {where}", params)
        return [(str(r[0]), r[1]) for r in rows], int(total[0]) if total else 0

    async def item_headers(
        self, ns: str, pk: int, ids: Sequence[str], statuses: Sequence[str], limit: int
    ) -> list[ItemHeader]:
        """Items of one profile without their content, oldest first: those named in ``ids``,
        and the first ``limit`` in one of ``statuses``."""
        cols = "id, input_type, status, error, created_at"
        rows: list[Any] = []
        if ids:
            rows += await self._all(
                f"SELECT {cols}, rowid FROM data_items WHERE namespace = ? AND profile_pk = ? "
                f"AND id IN ({','.join('?' * len(ids))})",
                (ns, pk, *ids),
            )
        if statuses:
            rows += await self._all(
                f"SELECT {cols}, rowid FROM data_items WHERE namespace = ? AND profile_pk = ? "
                f"AND status IN ({','.join('?' * len(statuses))}) ORDER BY rowid LIMIT ?",
                (ns, pk, *statuses, limit),
            )
        unique = {r[0]: r for r in rows}
        return [ItemHeader(*r[:5]) for r in sorted(unique.values(), key=lambda r: r[5])]

    async def item_counts(self, ns: str, pk: int) -> dict[str, int]:
        """How many data items one profile has in each state."""
        rows = await self._all(
            "SELECT status, count(*) FROM data_items WHERE namespace = ? AND profile_pk = ? GROUP BY status",
            (ns, pk),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def count_profiles(self, ns: str) -> int:
        """Profiles in a namespace (for the per-namespace limit)."""
        row = await self._one("SELECT count(*) FROM profiles WHERE namespace = ?", (ns,))
        return int(row[0]) if row else 0

    async def list_profiles(
        self,
        ns: str,
        *,
        kind: Kind | None = None,
        tag: str | None = None,
        query: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[ProfileSummary], str | None]:
        """A page of profiles, by id (with ``query``: name or alias matches first, then by id),
        and the next cursor."""
        where, params = ["p.namespace = ?"], [ns]
        if kind:
            where.append("p.kind = ?")
            params.append(kind)
        cols = ", ".join(f"p.{c}" for c in _SUMMARY_COLS.split(", "))
        if query:
            offset = int(_decode_cursor(cursor, int)) if cursor else 0
            if tag:
                where.append("EXISTS (SELECT 1 FROM profile_tags t WHERE t.profile_pk = p.pk AND t.tag = ?)")
                params.append(tag)
            # One index serves every namespace, so its statistics (bm25's document counts and
            # lengths) would let another tenant's words move this tenant's rows. The order uses
            # only each row itself: a match in the name or alias first, then by id.
            match = _fts_query(query)
            sql = (
                f"SELECT {cols} FROM profiles_fts f JOIN profiles p ON p.pk = f.rowid "
                f"WHERE profiles_fts MATCH ? AND {' AND '.join(where)} "
                "ORDER BY p.pk NOT IN (SELECT rowid FROM profiles_fts WHERE profiles_fts MATCH ?), p.id "
                "LIMIT ? OFFSET ?"
            )
            rows = await self._all(sql, [match, *params, f"{{name alias}} : ({match})", limit + 1, offset])
            nxt = _encode_cursor(offset + limit) if len(rows) > limit else None
        else:
            after = str(_decode_cursor(cursor, str)) if cursor else ""
            if tag:
                sql = (
                    f"SELECT {cols} FROM profile_tags t JOIN profiles p ON p.pk = t.profile_pk "
                    f"WHERE t.namespace = ? AND t.tag = ? AND t.id > ? AND {' AND '.join(where)} "
                    "ORDER BY t.id LIMIT ?"
                )
                rows = await self._all(sql, [ns, tag, after, *params, limit + 1])
            else:
                sql = f"SELECT {cols} FROM profiles p WHERE {' AND '.join(where)} AND p.id > ? ORDER BY p.id LIMIT ?"
                rows = await self._all(sql, [*params, after, limit + 1])
            nxt = _encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
        keys = _SUMMARY_COLS.split(", ")
        return [ProfileSummary.model_validate(dict(zip(keys, r, strict=True))) for r in rows[:limit]], nxt

    async def history(self, ns: str, pk: int, limit: int) -> list[Revision]:
        """Newest versions first."""
        rows = await self._all(
            "SELECT version, actor, reason, changed_at, diff FROM revisions "
            "WHERE profile_pk = ? ORDER BY version DESC LIMIT ?",
            (pk, limit),
        )
        return [
            Revision(version=r[0], actor=r[1], reason=r[2], changed_at=r[3], changes=json.loads(unpack(r[4])))
            for r in rows
        ]

    async def snapshot(self, pk: int, version: int) -> Profile | None:
        """The document as it was at ``version``."""
        row = await self._one(
            "SELECT snapshot FROM revisions WHERE profile_pk = ? AND version = ?", (pk, version)
        )
        return Profile.model_validate_json(unpack(row[0])) if row else None

    async def connection(self, ns: str, connection_id: str) -> Connection | None:
        """One connection, or None."""
        row = await self._one(
            f"SELECT {_CONNECTION_COLS} FROM connections WHERE namespace = ? AND id = ?",
            (ns, connection_id),
        )
        return _connection(row) if row else None

    async def connections(self, ns: str) -> list[Connection]:
        """All connections of a namespace, by id."""
        rows = await self._all(
            f"SELECT {_CONNECTION_COLS} FROM connections WHERE namespace = ? ORDER BY id",
            (ns,),
        )
        return [_connection(r) for r in rows]

    async def connection_users(self, ns: str, connection_id: str) -> list[str]:
        """Ids of assistant profiles that use a connection (checked before removal)."""
        # Documents are compressed (008), so SQL cannot look inside them; assistant profiles
        # are few, and this runs only before a connection is removed.
        rows = await self._all(
            "SELECT id, document FROM profiles WHERE namespace = ? AND kind = 'assistant' ORDER BY id",
            (ns,),
        )
        users = [str(r[0]) for r in rows if json.loads(unpack(r[1])).get("connection_id") == connection_id]
        return users[:20]

    async def assistant_page(
        self, ns: str, *, capability: str | None, text: str | None, skip: int, take: int
    ) -> tuple[int, list[Profile]]:
        """Assistant profiles by id, filtered by capability and by a case-insensitive
        substring of id, alias or name; the total that match and the page ``skip``/``take``."""
        where, params = ["namespace = ?", "kind = 'assistant'"], [ns]
        if text:
            where.append(
                "(instr(lower(id), ?) > 0 OR instr(lower(coalesce(alias, '')), ?) > 0 "
                "OR instr(lower(coalesce(name, '')), ?) > 0)"
            )
            params += [text.lower()] * 3
        cond = " AND ".join(where)
        if not capability:
            total = await self._one(f"SELECT count(*) FROM profiles WHERE {cond}", params)
            rows = await self._all(
                f"SELECT document FROM profiles WHERE {cond} ORDER BY id LIMIT ? OFFSET ?",
                [*params, take, skip],
            )
            return int(total[0]), [Profile.model_validate_json(unpack(r[0])) for r in rows]
        # Documents are compressed (008), so the capability is read here, not by SQL; assistant
        # profiles are few.
        rows = await self._all(f"SELECT document FROM profiles WHERE {cond} ORDER BY id", params)
        docs = [Profile.model_validate_json(unpack(r[0])) for r in rows]
        matching = [d for d in docs if d.capability == capability]
        return len(matching), matching[skip : skip + take]

    async def items_by_id(self, ids: Sequence[str]) -> list[DataItem]:
        """Items by id, in the order they were submitted (rowid: ``created_at`` has only
        second precision and ids are random, so neither orders items sent within a second)."""
        marks = ",".join("?" * len(ids))
        return await self._items(f"d.id IN ({marks})", tuple(ids)) if ids else []

    async def item(self, ns: str, item_id: str) -> DataItem | None:
        """A data item (job) by id."""
        rows = await self._items("d.namespace = ? AND d.id = ?", (ns, item_id))
        return rows[0] if rows else None

    async def item_by_sha(self, pk: int, sha256: str) -> DataItem | None:
        """The item already holding this exact data for this profile, if any."""
        rows = await self._items("d.profile_pk = ? AND d.sha256 = ?", (pk, sha256))
        return rows[0] if rows else None

    async def pending_load(self, ns: str, pk: int) -> tuple[int, str | None]:
        """Tokens of a profile's pending items, and when the oldest was submitted (no content read)."""
        row = await self._one(
            "SELECT coalesce(sum(tokens), 0), min(created_at) FROM data_items "
            "WHERE namespace = ? AND profile_pk = ? AND status = 'pending'",
            (ns, pk),
        )
        return (int(row[0]), row[1]) if row else (0, None)

    async def items_for(self, ns: str, pk: int, statuses: Iterable[str]) -> list[DataItem]:
        """Items of one profile in the given states, oldest first."""
        st = list(statuses)
        marks = ",".join("?" * len(st))
        return await self._items(
            f"d.namespace = ? AND d.profile_pk = ? AND d.status IN ({marks})", (ns, pk, *st)
        )

    async def claim_holds(self, ns: str, profile_id: str, pk: int, ids: Sequence[str], owner: str) -> bool:
        """Whether every item is still there, still claimed by ``owner``, and belongs to
        profile ``profile_id`` of namespace ``ns`` under key ``pk``: the check a result
        must pass, inside its write transaction, before it may touch the profile."""
        if not ids:
            return False
        marks = ",".join("?" * len(ids))
        row = await self._one(
            "SELECT count(*) FROM data_items d JOIN profiles p ON p.pk = d.profile_pk "
            f"WHERE d.id IN ({marks}) AND d.namespace = ? AND d.profile_pk = ? AND d.status = 'processing' "
            "AND d.claimed_by = ? AND p.namespace = ? AND p.id = ?",
            (*ids, ns, pk, owner, ns, profile_id),
        )
        return bool(row) and int(row[0]) == len(set(ids))

    async def failed_item_ids(self, ns: str, pk: int | None = None) -> list[str]:
        """Ids of failed items, of one profile or of the whole namespace."""
        if pk is None:
            rows = await self._all(
                "SELECT id FROM data_items WHERE namespace = ? AND status = 'failed'", (ns,)
            )
        else:
            rows = await self._all(
                "SELECT id FROM data_items WHERE namespace = ? AND profile_pk = ? AND status = 'failed'",
                (ns, pk),
            )
        return [str(r[0]) for r in rows]

    async def open_batches(self, ns: str, model: str) -> dict[str, list[str]]:
        """Batches sent and not yet read, by id: the custom ids of their requests."""
        rows = await self._all(
            "SELECT id, custom_ids FROM extraction_batches WHERE namespace = ? AND model = ? "
            "AND status = 'submitted' ORDER BY created_at",
            (ns, model),
        )
        return {str(r[0]): list(json.loads(r[1])) for r in rows}

    async def queued_profiles(self, due: float | None = None, limit: int = 100) -> list[tuple[str, int]]:
        """(namespace, profile key) pairs with pending items (due by ``due``, when given),
        oldest first."""
        rows = await self._all(
            "SELECT namespace, profile_pk, min(rowid) AS first FROM data_items "
            "WHERE status = 'pending' AND (? IS NULL OR next_attempt_at IS NULL OR next_attempt_at <= ?) "
            "GROUP BY namespace, profile_pk ORDER BY first LIMIT ?",
            (due, due, limit),
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    async def next_attempt(self) -> float | None:
        """The earliest time a pending item waits for (a retry), if any."""
        row = await self._one(
            "SELECT min(next_attempt_at) FROM data_items WHERE status = 'pending' AND next_attempt_at IS NOT NULL",
            (),
        )
        return float(row[0]) if row and row[0] is not None else None

    async def _items(self, where: str, params: Sequence[Any], tail: str = "") -> list[DataItem]:
        rows = await self._all(
            f"SELECT {_ITEM_COLS} FROM data_items d JOIN profiles p ON p.pk = d.profile_pk WHERE {where} "
            f"ORDER BY d.rowid{tail}",
            params,
        )
        return [_item(r) for r in rows]

    async def stats(self, ns: str) -> dict[str, Any]:
        """Counts and token totals for ``mcp-profiles stats``."""
        s = _Stats()
        row = await self._one("SELECT count(*) FROM profiles WHERE namespace = ?", (ns,))
        s.profiles = int(row[0]) if row else 0
        row = await self._one("SELECT count(*) FROM revisions WHERE namespace = ?", (ns,))
        s.versions = int(row[0]) if row else 0
        for status, n in await self._all(
            "SELECT status, count(*) FROM data_items WHERE namespace = ? GROUP BY status", (ns,)
        ):
            s.items[str(status)] = int(n)
        row = await self._one(
            "SELECT coalesce(sum(requests),0), coalesce(sum(input_tokens),0), coalesce(sum(output_tokens),0), "
            "coalesce(sum(cache_read_tokens),0), coalesce(sum(cache_write_tokens),0), "
            "coalesce(sum(batch_requests),0) FROM data_items WHERE namespace = ?",
            (ns,),
        )
        if row is None:  # an aggregate always yields one row
            raise RuntimeError("token usage query returned no row")
        names = (
            "requests",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "batch_requests",
        )
        s.tokens = {k: int(v) for k, v in zip(names, row, strict=True)}
        return {"profiles": s.profiles, "versions": s.versions, "items": s.items, "usage": s.tokens}

    async def token_usage_by_profile(self, ns: str, limit: int = 20) -> list[dict[str, Any]]:
        """Per-profile token sums, heaviest first."""
        rows = await self._all(
            "SELECT p.id, count(d.id), sum(d.requests), sum(d.input_tokens), sum(d.output_tokens), "
            "sum(d.cache_read_tokens), sum(d.cache_write_tokens) FROM data_items d "
            "JOIN profiles p ON p.pk = d.profile_pk WHERE d.namespace = ? GROUP BY p.id "
            "ORDER BY sum(d.input_tokens) DESC LIMIT ?",
            (ns, limit),
        )
        keys = (
            "id",
            "items",
            "requests",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        )
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def namespaces(self) -> list[str]:
        """Every namespace that holds a profile or a connection (for ``mcp-profiles copy``)."""
        rows = await self._all(
            "SELECT namespace FROM profiles UNION SELECT namespace FROM connections ORDER BY 1", ()
        )
        return [str(r[0]) for r in rows]

    async def export_rows(self, ns: str, pk: int) -> dict[str, Any]:
        """Everything kept about one profile: revisions with snapshots, and raw data items."""
        revs = await self._all(
            "SELECT version, actor, reason, changed_at, diff, snapshot FROM revisions "
            "WHERE profile_pk = ? ORDER BY version",
            (pk,),
        )
        items = await self._items("d.profile_pk = ?", (pk,))
        return {
            "revisions": [
                {
                    "version": r[0],
                    "actor": r[1],
                    "reason": r[2],
                    "changed_at": r[3],
                    "changes": json.loads(unpack(r[4])),
                    "snapshot": json.loads(unpack(r[5])),
                }
                for r in revs
            ],
            "data_items": [
                {
                    k: v
                    for k, v in item.__dict__.items()
                    if k not in ("profile_pk", "namespace", "next_attempt_at")
                }
                for item in items
            ],
        }

    # ---- data lifecycle (list_data, forget_data, retention) ---------------------------

    async def data_page(
        self, ns: str, pk: int, *, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[DataItem], str | None]:
        """A page of a profile's data items in the order they arrived, and the next cursor."""
        after = int(_decode_cursor(cursor, int)) if cursor else 0
        where, params = "d.namespace = ? AND d.profile_pk = ? AND d.rowid > ?", [ns, pk, after]
        if status is not None:
            where += " AND d.status = ?"
            params.append(status)
        items = await self._items(where, [*params, limit + 1], " LIMIT ?")
        if len(items) <= limit:
            return items, None
        row = await self._one("SELECT rowid FROM data_items WHERE id = ?", (items[limit - 1].id,))
        return items[:limit], _encode_cursor(int(row[0]))

    async def existing_items(self, pk: int, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are data items of this profile (a forgotten item is not)."""
        wanted = list(set(ids))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            rows = await self._all(
                f"SELECT id FROM data_items WHERE profile_pk = ? AND id IN ({','.join('?' * len(part))})",
                (pk, *part),
            )
            found.update(str(r[0]) for r in rows)
        return found

    async def revisions_citing(
        self, pk: int, data_id: str
    ) -> list[tuple[int, list[dict[str, Any]], Profile | None, str | None]]:
        """(version, diff, snapshot, summary) of every kept version, oldest first. The
        snapshot is parsed only where forgetting ``data_id`` may change it: it names the item,
        or holds an extracted summary without recorded provenance."""
        rows = await self._all(
            "SELECT version, diff, snapshot FROM revisions WHERE profile_pk = ? ORDER BY version", (pk,)
        )
        needle = f'"{data_id}"'
        out: list[tuple[int, list[dict[str, Any]], Profile | None, str | None]] = []
        for version, changes, stored in rows:
            text = unpack(stored)  # compressed (007): searched here rather than by SQL
            parse = needle in text or (
                '"summary_source":"extracted"' in text and '"summary_data_ids":["' not in text
            )
            doc = Profile.model_validate_json(text) if parse else None
            summary = doc.summary if doc is not None else json.loads(text).get("summary")
            out.append((int(version), json.loads(unpack(changes)), doc, summary))
        return out

    async def version_range(self, pk: int) -> tuple[int, int] | None:
        """The oldest and newest version history still holds."""
        row = await self._one("SELECT min(version), max(version) FROM revisions WHERE profile_pk = ?", (pk,))
        return (int(row[0]), int(row[1])) if row and row[0] is not None else None


class WriteTx(ReadTx):
    """Writes inside one ``BEGIN IMMEDIATE`` transaction."""

    _db: _TxConnection

    def __init__(self, db: _TxConnection) -> None:
        super().__init__(db)
        self.erased = False
        self._packed: tuple[Profile, bytes] | None = None

    def _pack_profile(self, profile: Profile) -> bytes:
        """The stored form of a document, made once per write (the row and its revision)."""
        if self._packed is None or self._packed[0] is not profile:
            self._packed = (profile, pack(profile.model_dump_json()))
        return self._packed[1]

    async def insert_profile(self, ns: str, profile: Profile) -> int:
        """Insert a new profile; returns its internal key, never one a deleted profile had."""
        try:
            cur = await self._db.execute(
                "INSERT INTO profiles (pk, namespace, id, alias, kind, name, summary, version, created_at, "
                "updated_at, document) VALUES ((SELECT last + 1 FROM profile_keys), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ns,
                    profile.id,
                    profile.alias,
                    profile.kind,
                    profile.name,
                    profile.summary,
                    profile.version,
                    profile.created_at,
                    profile.updated_at,
                    self._pack_profile(profile),
                ),
            )
        except sqlite3.IntegrityError as e:
            if "UNIQUE" not in str(e):
                raise
            raise Conflict(f"profile {profile.id!r} or alias {profile.alias!r} already exists") from None
        pk = cur.lastrowid
        if pk is None:  # an INSERT that succeeded always has a rowid
            raise RuntimeError("profile insert returned no rowid")
        await self._index(pk, ns, profile, new=True)
        return pk

    async def update_profile(
        self, ns: str, pk: int, profile: Profile, expected_version: int, *, previous: Profile | None = None
    ) -> None:
        """Replace the document if it is still at ``expected_version``. With ``previous`` (the
        document being replaced) the tag rows are rewritten only when the tags changed.

        The statements are sent with the next one that needs an answer, or with the commit.

        Raises:
            Conflict: another writer got there first, or the alias is taken (when sent).
        """
        self._db.defer(
            _Step(
                "UPDATE profiles SET alias = ?, name = ?, summary = ?, version = ?, updated_at = ?, document = ? "
                "WHERE pk = ? AND version = ?",
                (
                    profile.alias,
                    profile.name,
                    profile.summary,
                    profile.version,
                    profile.updated_at,
                    self._pack_profile(profile),
                    pk,
                    expected_version,
                ),
                one_row=f"profile {profile.id!r} changed while it was being updated; retry",
                unique=f"alias {profile.alias!r} is already taken",
            )
        )
        await self._index(
            pk, ns, profile, new=False, tags_changed=previous is None or previous.tags != profile.tags
        )

    async def _index(
        self, pk: int, ns: str, profile: Profile, *, new: bool, tags_changed: bool = True
    ) -> None:
        text = (profile.name or "", profile.alias or "", profile.summary or "", profile.search_text())
        if new:
            await self._db.execute(
                "INSERT INTO profiles_fts (rowid, name, alias, summary, attrs) VALUES (?, ?, ?, ?, ?)",
                (pk, *text),
            )
        else:  # one statement instead of DELETE + INSERT
            self._db.defer(
                _Step(
                    "UPDATE profiles_fts SET name = ?, alias = ?, summary = ?, attrs = ? WHERE rowid = ?",
                    (*text, pk),
                )
            )
        if not tags_changed:
            return
        if not new:
            self._db.defer(_Step("DELETE FROM profile_tags WHERE profile_pk = ?", (pk,)))
        if profile.tags:
            self._db.defer(
                _Step(
                    "INSERT OR IGNORE INTO profile_tags (namespace, tag, id, profile_pk) VALUES (?, ?, ?, ?)",
                    [(ns, t, profile.id, pk) for t in profile.tags],
                    many=True,
                )
            )

    async def add_revision(
        self,
        ns: str,
        pk: int,
        profile: Profile,
        *,
        actor: str,
        reason: str | None,
        changes: list[dict[str, Any]],
    ) -> None:
        """Record a version: who, why, the diff and the full snapshot (both compressed); sent
        with the next statement that needs an answer, or with the commit."""
        self._db.defer(
            _Step(
                "INSERT INTO revisions (profile_pk, version, namespace, actor, reason, changed_at, diff, snapshot) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pk,
                    profile.version,
                    ns,
                    actor,
                    reason,
                    profile.updated_at,
                    pack(json.dumps(changes, ensure_ascii=False)),
                    self._pack_profile(profile),
                ),
            )
        )

    async def delete_profile(self, pk: int) -> dict[str, int]:
        """Erase a profile with its revisions and data items; returns what was erased."""
        counts = {}
        for table in ("revisions", "data_items"):
            row = await self._one(f"SELECT count(*) FROM {table} WHERE profile_pk = ?", (pk,))
            counts[table] = int(row[0]) if row else 0
        await self._db.execute("DELETE FROM profiles_fts WHERE rowid = ?", (pk,))
        await self._db.execute("DELETE FROM profiles WHERE pk = ?", (pk,))
        # An FTS5 delete only adds tombstones, and they carry the deleted terms: rebuild the
        # index from the remaining rows, in this transaction (secure_delete zeroes the old
        # pages). Not 'optimize': on SQLite 3.40 every optimize adds a level to the index
        # structure, and after about a thousand the index is corrupt ("database disk image
        # is malformed") and every later write fails.
        await self._db.execute("INSERT INTO profiles_fts(profiles_fts) VALUES ('rebuild')")
        self.erased = True
        return counts

    async def add_connection(self, ns: str, conn: Connection) -> None:
        """Insert a connection; an existing id is a conflict."""
        try:
            await self._db.execute(
                "INSERT INTO connections (namespace, id, name, provider_id, api_key_env, settings, created_at, "
                "alias, is_active, version, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ns,
                    conn.id,
                    conn.name,
                    conn.provider_id,
                    conn.api_key_env,
                    json.dumps(conn.settings),
                    conn.created_at,
                    conn.alias,
                    conn.is_active,
                    conn.version,
                    conn.updated_at,
                ),
            )
        except sqlite3.IntegrityError as e:
            if "alias" in str(e):
                raise Conflict(f"alias {conn.alias!r} is already used by another connection") from None
            raise Conflict(f"connection {conn.id!r} already exists; remove it first to change it") from None

    async def update_connection(self, ns: str, conn: Connection) -> bool:
        """Replace a connection's name, key variable, settings, alias, state and version;
        False when it is gone."""
        try:
            cur = await self._db.execute(
                "UPDATE connections SET name = ?, api_key_env = ?, settings = ?, alias = ?, is_active = ?, "
                "version = ?, updated_at = ? WHERE namespace = ? AND id = ?",
                (
                    conn.name,
                    conn.api_key_env,
                    json.dumps(conn.settings),
                    conn.alias,
                    conn.is_active,
                    conn.version,
                    conn.updated_at,
                    ns,
                    conn.id,
                ),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"alias {conn.alias!r} is already used by another connection") from None
        return cur.rowcount == 1

    async def remove_connection(self, ns: str, connection_id: str) -> bool:
        """Delete a connection; False when it did not exist."""
        cur = await self._db.execute(
            "DELETE FROM connections WHERE namespace = ? AND id = ?", (ns, connection_id)
        )
        return cur.rowcount == 1

    async def add_item(
        self,
        item_id: str,
        ns: str,
        pk: int,
        sha256: str,
        content: str,
        input_type: str | None,
        at: str,
        *,
        attempts: int = 0,
        tokens: int | None = None,
        size: int | None = None,
    ) -> None:
        """Store raw data as a pending job, before any model is called, with its token
        estimate (computed when not given). ``size`` (bytes) is given by an import of an item
        whose content retention already deleted.

        Raises:
            Conflict: an item with this id already exists (an import into the same file).
        """
        try:
            await self._db.execute(
                "INSERT INTO data_items (id, namespace, profile_pk, sha256, content, input_type, status, "
                "attempts, created_at, updated_at, bytes, tokens) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                (
                    item_id,
                    ns,
                    pk,
                    sha256,
                    content,
                    input_type,
                    attempts,
                    at,
                    at,
                    len(content.encode("utf-8", "surrogatepass")) if size is None else size,
                    estimate_tokens(content) if tokens is None else tokens,
                ),
            )
        except sqlite3.IntegrityError:
            raise Conflict(
                f"data item {item_id!r} already exists in this database (imported before, perhaps into "
                "another namespace); import into a fresh database file"
            ) from None

    async def set_items_status(
        self,
        ids: Sequence[str],
        status: str,
        *,
        at: str,
        error: str | None = None,
        result: dict[str, Any] | None = None,
        usage: Sequence[dict[str, int]] | None = None,
        attempt: bool = False,
        owner: str | None = None,
    ) -> None:
        """Move items to a state, recording error, result and each item's share of usage.
        With ``owner``, only items still claimed by that owner move: a worker whose claim was
        taken over finishes nothing."""
        claim = " AND status = 'processing' AND claimed_by = ?" if owner is not None else ""
        for i, item_id in enumerate(ids):
            u = usage[i] if usage else {}
            await self._db.execute(
                "UPDATE data_items SET status = ?, error = ?, result = coalesce(?, result), updated_at = ?, "
                "attempts = attempts + ?, requests = requests + ?, input_tokens = input_tokens + ?, "
                "output_tokens = output_tokens + ?, cache_read_tokens = cache_read_tokens + ?, "
                f"cache_write_tokens = cache_write_tokens + ?, batch_requests = batch_requests + ? WHERE id = ?{claim}",
                (
                    status,
                    error,
                    json.dumps(result) if result is not None else None,
                    at,
                    int(attempt),
                    u.get("requests", 0),
                    u.get("input_tokens", 0),
                    u.get("output_tokens", 0),
                    u.get("cache_read_input_tokens", 0),
                    u.get("cache_creation_input_tokens", 0),
                    u.get("batch_requests", 0),
                    item_id,
                    *((owner,) if owner is not None else ()),
                ),
            )

    async def claim_items(
        self,
        ns: str,
        pk: int,
        owner: str,
        at: float,
        *,
        max_tokens: int,
        due: float | None = None,
        limit: int = 100,
    ) -> list[str]:
        """Mark a profile's oldest pending items (due by ``due``, when given) ``processing`` by
        ``owner``, as many as fit in ``max_tokens`` (always at least one); returns their ids,
        oldest submitted first."""
        rows = await self._all(
            "SELECT id FROM (SELECT id, tokens, sum(tokens) OVER (ORDER BY rowid) AS running "
            "FROM data_items WHERE namespace = ? AND profile_pk = ? AND status = 'pending' "
            "AND (? IS NULL OR next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY rowid LIMIT ?) "
            "WHERE running <= ? OR running = tokens",
            (ns, pk, due, due, limit, max_tokens),
        )
        ids = [str(r[0]) for r in rows]
        await self._db.executemany(
            "UPDATE data_items SET status = 'processing', claimed_by = ?, claimed_at = ? WHERE id = ?",
            [(owner, at, i) for i in ids],
        )
        return ids

    async def claim_item(self, ns: str, item_id: str, owner: str, at: float) -> bool:
        """Claim one pending item by id (a result the client's model sent for it)."""
        cur = await self._db.execute(
            "UPDATE data_items SET status = 'processing', claimed_by = ?, claimed_at = ? "
            "WHERE namespace = ? AND id = ? AND status = 'pending'",
            (owner, at, ns, item_id),
        )
        return cur.rowcount == 1

    async def add_batch(self, ns: str, batch_id: str, model: str, custom_ids: Sequence[str], at: str) -> None:
        """Remember a sent Message Batch and the requests in it."""
        await self._db.execute(
            "INSERT INTO extraction_batches (id, namespace, model, custom_ids, status, created_at) "
            "VALUES (?, ?, ?, ?, 'submitted', ?)",
            (batch_id, ns, model, json.dumps(list(custom_ids)), at),
        )

    async def end_batch(self, batch_id: str, at: str) -> None:
        """A batch whose results were read: never waited for again."""
        await self._db.execute(
            "UPDATE extraction_batches SET status = 'ended', ended_at = ? WHERE id = ?", (at, batch_id)
        )

    async def processing_claims(self) -> list[tuple[str, str | None, float | None]]:
        """(item id, owner, claimed at) of every item being processed."""
        rows = await self._all(
            "SELECT id, claimed_by, claimed_at FROM data_items WHERE status = 'processing'", ()
        )
        return [(str(r[0]), r[1], r[2]) for r in rows]

    async def requeue(self, ids: Sequence[str], *, owner: str | None = None) -> int:
        """Put items back to ``pending`` (their owner died, or a failed item is retried).
        With ``owner``, only the items that owner still holds."""
        claim = " AND status = 'processing' AND claimed_by = ?" if owner is not None else ""
        await self._db.executemany(
            "UPDATE data_items SET status = 'pending', claimed_by = NULL, claimed_at = NULL, error = NULL, "
            f"next_attempt_at = NULL WHERE id = ?{claim}",
            [(i, owner) if owner is not None else (i,) for i in ids],
        )
        return len(ids)

    async def retry_later(
        self, item_id: str, owner: str, *, at: str, error: str, next_attempt_at: float, usage: dict[str, int]
    ) -> None:
        """Put an item ``owner`` holds back in the queue after a failed attempt, not to be
        tried before ``next_attempt_at``; the error stays readable until then."""
        await self.set_items_status(
            [item_id], "pending", at=at, error=error, usage=[usage], attempt=True, owner=owner
        )
        await self._db.execute(
            "UPDATE data_items SET claimed_by = NULL, claimed_at = NULL, next_attempt_at = ? "
            "WHERE id = ? AND status = 'pending' AND claimed_by = ?",
            (next_attempt_at, item_id, owner),
        )

    async def renew_claim(self, owner: str, at: float) -> bool:
        """Extend the lease of ``owner``'s claim; False when it holds no item any more."""
        cur = await self._db.execute(
            "UPDATE data_items SET claimed_at = ? WHERE status = 'processing' AND claimed_by = ?", (at, owner)
        )
        return cur.rowcount > 0

    async def delete_item(self, item_id: str) -> bool:
        """Delete one data item row (content, result, usage); False when it did not exist."""
        cur = await self._db.execute("DELETE FROM data_items WHERE id = ?", (item_id,))
        self.erased = self.erased or cur.rowcount == 1
        return cur.rowcount == 1

    async def rewrite_revision(
        self, pk: int, version: int, changes: list[dict[str, Any]], snapshot: Profile | None
    ) -> None:
        """Replace a version's diff, and its snapshot when given (forgetting rewrites history)."""
        if snapshot is None:
            await self._db.execute(
                "UPDATE revisions SET diff = ? WHERE profile_pk = ? AND version = ?",
                (pack(json.dumps(changes, ensure_ascii=False)), pk, version),
            )
        else:
            await self._db.execute(
                "UPDATE revisions SET diff = ?, snapshot = ? WHERE profile_pk = ? AND version = ?",
                (
                    pack(json.dumps(changes, ensure_ascii=False)),
                    pack(snapshot.model_dump_json()),
                    pk,
                    version,
                ),
            )
        self.erased = True

    async def item_results(self, pk: int) -> list[tuple[str, dict[str, Any]]]:
        """(id, result) of a profile's items that have one."""
        rows = await self._all(
            "SELECT id, result FROM data_items WHERE profile_pk = ? AND result IS NOT NULL ORDER BY rowid",
            (pk,),
        )
        return [(str(r[0]), json.loads(r[1])) for r in rows]

    async def replace_item_result(self, item_id: str, result: dict[str, Any]) -> None:
        """Overwrite an item's result (forgetting another item scrubs it)."""
        await self._db.execute("UPDATE data_items SET result = ? WHERE id = ?", (json.dumps(result), item_id))
        self.erased = True

    async def rebuild_search_index(self) -> None:
        """Rebuild the full-text index from the stored rows: an FTS5 update leaves the old
        terms behind in tombstones, and erased values must not survive there."""
        await self._db.execute("INSERT INTO profiles_fts(profiles_fts) VALUES ('rebuild')")
        self.erased = True

    async def delete_contents(self, ids: Sequence[str], at: str) -> int:
        """Delete the raw content of processed items, keeping id, sha256, status, size and usage."""
        count = 0
        for item_id in ids:
            cur = await self._db.execute(
                "UPDATE data_items SET content = '', content_deleted_at = ? "
                "WHERE id = ? AND status = 'done' AND content_deleted_at IS NULL",
                (at, item_id),
            )
            count += cur.rowcount
        self.erased = self.erased or count > 0
        return count

    async def expire_contents(self, processed_before: str, at: str) -> int:
        """Delete the raw content of every item processed before a time (never pending,
        processing or failed items: their data is still needed)."""
        cur = await self._db.execute(
            "UPDATE data_items SET content = '', content_deleted_at = ? "
            "WHERE status = 'done' AND content_deleted_at IS NULL AND updated_at <= ?",
            (at, processed_before),
        )
        self.erased = self.erased or cur.rowcount > 0
        return int(cur.rowcount)

    async def prune_revisions(self, keep: int, older_than: str | None) -> int:
        """Delete versions beyond the newest ``keep`` of each profile, and (with
        ``older_than``) versions made before then; a profile's current version always stays."""
        cur = await self._db.execute(
            "DELETE FROM revisions WHERE version < (SELECT p.version FROM profiles p WHERE p.pk = revisions.profile_pk) "
            "AND (version <= (SELECT p.version FROM profiles p WHERE p.pk = revisions.profile_pk) - ? "
            "OR changed_at < ?)",
            (keep, older_than or ""),
        )
        self.erased = self.erased or cur.rowcount > 0
        return int(cur.rowcount)

    async def set_content_deleted(self, item_id: str, at: str | None) -> None:
        """Record when an imported item's content was deleted by retention."""
        await self._db.execute("UPDATE data_items SET content_deleted_at = ? WHERE id = ?", (at, item_id))


_CONNECTION_COLS = (
    "id, name, provider_id, api_key_env, settings, created_at, alias, is_active, version, updated_at"
)


def _connection(row: Any) -> Connection:
    return Connection(
        id=row[0],
        name=row[1],
        provider_id=row[2],
        api_key_env=row[3],
        settings=json.loads(row[4]),
        created_at=row[5],
        alias=row[6],
        is_active=bool(row[7]),
        version=row[8],
        updated_at=row[9],
    )
