"""PgStore: the store contract (contract.py) on PostgreSQL, for several replicas on one database.

The same methods as the SQLite ``ProfileStore``, mapped natively:
- a pool of asyncpg connections (asyncpg over psycopg 3: measured, see bench/pg_drivers.py);
  every write is one READ COMMITTED transaction, and ``locate`` inside it takes the profile's
  row lock (``FOR UPDATE``), so writers of one profile queue up as they do on SQLite, and
  the update is still conditional on the version (``UPDATE … WHERE version = $n``). Locks
  are taken in one order, a profile before its data items, so transactions never deadlock
  on one profile;
- full-text search through a ``tsvector`` column with a GIN index, filled with the words
  the SQLite tokenizer would find (lowercased, diacritics removed); every word of a query
  must match, the last as a prefix. ``ts_rank`` reads only the row itself, so no tenant's
  data weighs on another's ranking;
- queue claims with ``FOR UPDATE SKIP LOCKED``: two replicas never claim the same item;
- change notifications between replicas with ``LISTEN``/``NOTIFY`` on a dedicated connection
  (payloads carry ids only, well under PostgreSQL's 8,000-byte limit);
- erasure deletes everything of a profile in one transaction. Dead tuples stay in table,
  index and WAL files until rewritten or recycled: ``compact`` (VACUUM FULL) rewrites the
  tables; see the README's erasure guarantees.

Migrations are numbered ``.sql`` files in ``migrations_pg/``, each applied in a transaction
that first takes a transaction-level advisory lock, so replicas starting at once migrate once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import anyio

from .chunking import estimate_tokens
from .contract import Deliver
from .errors import Conflict, Invalid
from .models import Connection, Kind, Profile, ProfileSummary, Revision
from .store import (
    _CONNECTION_COLS,
    _ITEM_COLS,
    DataItem,
    ItemHeader,
    _connection,
    _decode_cursor,
    _encode_cursor,
    _item,
)
from .stores import redact_url

try:
    import asyncpg
except ImportError:  # pragma: no cover - exercised only without the extra
    asyncpg = None

__all__ = ["CHANNEL", "PgStore"]

log = logging.getLogger("mcp_profiles")

CHANNEL = "mcp_profiles_changes"  # followed by the schema's name: one feed per deployment
MAX_PAYLOAD = 7900  # PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more
_MIGRATION_LOCK = 0x6D6370726F66  # 'mcprof': one advisory lock key for every replica
_SUMMARY_COLS = ("id", "kind", "alias", "name", "summary", "version", "updated_at")


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("mcp_profiles") / "migrations_pg"
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d+)_.*\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _words(text: str) -> list[str]:
    """Words as SQLite's ``unicode61 remove_diacritics 2`` tokenizer finds them: runs of
    letters and digits, lowercased, without diacritics."""
    folded = "".join(
        c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c)
    )
    return re.findall(r"[^\W_]+", folded)


def _document_words(*texts: str) -> str:
    return " ".join(w for t in texts for w in _words(t) if len(w.encode()) < 2000)


def _ts_query(text: str, weight: str = "") -> str:
    """Free text as a ``to_tsquery('simple', …)`` string: every word, the last as a prefix;
    with ``weight`` "A", every word must be found in the name or alias.

    Raises:
        Invalid: no letter or digit (the rule the SQLite store applies).
    """
    raw = re.findall(r"\w+", text)
    if not raw:
        raise Invalid("query: needs at least one letter or digit")
    words = [w for part in raw[:16] for w in _words(part)]
    if not words:
        raise Invalid("query: needs at least one letter or digit")
    terms = [f"'{w}'" + (f":{weight}" if weight else "") for w in words]
    terms[-1] = f"'{words[-1]}':*{weight}"
    return " & ".join(terms)


def _status_count(status: str) -> int:
    """The row count of an asyncpg command tag (``UPDATE 3`` → 3)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PgStore:
    """Profiles, revisions, data items and connections in one PostgreSQL database."""

    def __init__(self, pool: Any, url: str) -> None:
        self._pool = pool
        self._url = url
        self.path = redact_url(url)
        self.origin = uuid.uuid4().hex
        self.channel = CHANNEL
        # SQLite's "erased bytes still in the WAL because a reader holds them": PostgreSQL's
        # WAL keeps erased bytes until its segments are recycled, whoever reads (README).
        self.wal_pending = False

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, max_connections: int = 10) -> AsyncIterator[PgStore]:
        """Connect (a pool of up to ``max_connections``) and migrate.

        Raises:
            Invalid: the driver is not installed, or the database cannot be reached.
        """
        if asyncpg is None:
            raise Invalid("a postgresql:// database needs the driver: pip install 'mcp-profiles[postgres]'")
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=max_connections, command_timeout=60, server_settings={}
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise Invalid(f"cannot open {redact_url(url)}: {e}") from None
        try:
            store = cls(pool, url)
            await store._migrate()
            store.channel = f"{CHANNEL}:{await pool.fetchval('SELECT current_schema()')}"[:63]
            yield store
        finally:
            await pool.close()

    async def _migrate(self) -> None:
        """Apply missing migrations, each in a transaction holding the advisory lock, which
        also decides inside the lock whether the migration is still needed."""
        for version, sql in _migrations():
            async with self._pool.acquire() as con, con.transaction():
                await con.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                await con.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                if await con.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", version):
                    continue
                await con.execute(sql)
                await con.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)

    async def schema_version(self) -> int:
        """Highest applied migration."""
        value = await self._pool.fetchval("SELECT max(version) FROM schema_migrations")
        return int(value or 0)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection, taken and given back shielded from cancellation: a
        cancelled request must not leave a connection inside a transaction."""
        with anyio.CancelScope(shield=True):
            con = await self._pool.acquire()
        try:
            yield con
        finally:
            with anyio.CancelScope(shield=True):
                await self._pool.release(con)

    @asynccontextmanager
    async def _transaction(self, **options: Any) -> AsyncIterator[Any]:
        async with self._connection() as con:
            tr = con.transaction(**options)
            with anyio.CancelScope(shield=True):
                await tr.start()
            try:
                yield con
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await tr.rollback()
                raise
            with anyio.CancelScope(shield=True):
                await tr.commit()

    @asynccontextmanager
    async def read(self, *, snapshot: bool = True) -> AsyncIterator[PgReadTx]:
        """A read view: one REPEATABLE READ read-only transaction, or with ``snapshot=False``
        none (each statement is consistent on its own)."""
        if not snapshot:
            async with self._connection() as con:
                yield PgReadTx(con)
            return
        async with self._transaction(isolation="repeatable_read", readonly=True) as con:
            yield PgReadTx(con)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[PgWriteTx]:
        """A write transaction: commits when the block ends, rolls back if it raises."""
        async with self._transaction() as con:
            yield PgWriteTx(con)

    async def finish_erasure(self) -> bool:
        """Nothing to finish: an erasure is complete at commit as far as queries go."""
        return True

    async def compact(self) -> dict[str, Any]:
        """Rewrite every table and its indexes (VACUUM FULL), so the bytes of deleted rows
        leave the table and index files; returns the sizes before and after. WAL still holds
        them until its segments are recycled (see the README)."""
        tables = ("profiles", "profile_tags", "revisions", "data_items", "connections", "extraction_batches")
        size_sql = "SELECT sum(pg_total_relation_size(t::regclass))::bigint FROM unnest($1::text[]) AS t"
        async with self._pool.acquire() as con:
            before = int(await con.fetchval(size_sql, list(tables)) or 0)
            await con.execute(f"VACUUM (FULL, ANALYZE) {', '.join(tables)}")
            # The rewritten tables' old files are truncated at commit and unlinked at the next
            # checkpoint: ask for one now when this role may (superuser or pg_checkpoint).
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
                await con.execute("CHECKPOINT")
            after = int(await con.fetchval(size_sql, list(tables)) or 0)
        return {"backend": "postgresql", "tables": list(tables), "bytes_before": before, "bytes_after": after}

    # ---- changes between replicas ------------------------------------------------

    async def publish_change(self, ns: str, profile_id: str, *, listed: bool) -> None:
        """Tell every other process on this database that a profile changed (after commit)."""
        payload = json.dumps({"o": self.origin, "n": ns, "p": profile_id, "l": listed}, ensure_ascii=False)
        if len(payload.encode()) > MAX_PAYLOAD:
            log.warning("change of a profile in a namespace too long to notify; other replicas miss it")
            return
        try:
            await self._pool.execute("SELECT pg_notify($1, $2)", self.channel, payload)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("change notification not sent to other replicas", exc_info=True)

    async def follow_changes(self, deliver: Deliver, *, retry_seconds: float = 1.0) -> None:
        """Hand changes committed by other processes to ``deliver`` until cancelled.

        One dedicated connection LISTENs (a pooled one could be handed to a transaction).
        NOTIFY is not replayed: after a lost connection, changes made meanwhile are missed,
        so the loop reconnects and says so in the log.
        """
        send, receive = anyio.create_memory_object_stream[str](1000)

        def on_notify(_con: Any, _pid: int, _channel: str, payload: str) -> None:
            try:
                send.send_nowait(payload)
            except anyio.WouldBlock:
                log.warning("change notifications arrive faster than they are delivered; one dropped")

        async def pump() -> None:
            async with receive:
                await relay()

        async def relay() -> None:
            async for payload in receive:
                try:
                    event = json.loads(payload)
                    if event.get("o") == self.origin:
                        continue
                    await deliver(str(event["n"]), str(event["p"]), bool(event.get("l")))
                except Exception:  # a malformed payload or a failing listener must not stop the feed
                    log.exception("change notification not delivered")

        async with send, anyio.create_task_group() as tg:
            tg.start_soon(pump)
            while True:
                lost = anyio.Event()
                try:
                    con = await asyncpg.connect(self._url)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    log.warning("cannot LISTEN for changes of other replicas; retrying", exc_info=True)
                    await anyio.sleep(retry_seconds)
                    continue
                try:
                    con.add_termination_listener(lambda _c, lost=lost: lost.set())
                    await con.add_listener(self.channel, on_notify)
                    await lost.wait()
                    log.warning("lost the connection that listens for other replicas' changes; reconnecting")
                finally:
                    with anyio.CancelScope(shield=True):
                        await con.close(timeout=5)
                await anyio.sleep(retry_seconds)


class PgReadTx:
    """Read operations; :class:`PgWriteTx` adds the writes on top."""

    _lock = ""  # a write transaction locks the profile rows it reads

    def __init__(self, con: Any) -> None:
        self._con = con

    async def locate(self, ns: str, ref: str) -> tuple[int, Profile] | None:
        """Find a profile by id, else by alias; returns (internal key, document)."""
        row = await self._con.fetchrow(  # one round trip: an id match wins over an alias match
            "SELECT pk, document FROM profiles WHERE namespace = $1 AND (id = $2 OR alias = $2) "
            f"ORDER BY id = $2 DESC LIMIT 1{self._lock}",
            ns,
            ref,
        )
        if row is None:
            return None
        return int(row[0]), Profile.model_validate_json(row[1])

    async def document_json(self, ns: str, ref: str) -> str | None:
        """The stored JSON text of a profile named by id or alias, not parsed."""
        value = await self._con.fetchval(
            "SELECT document FROM profiles WHERE namespace = $1 AND (id = $2 OR alias = $2) "
            "ORDER BY id = $2 DESC LIMIT 1",
            ns,
            ref,
        )
        return str(value) if value is not None else None

    async def profile_by_key(self, pk: int) -> Profile | None:
        """The document behind an internal key (None once deleted)."""
        value = await self._con.fetchval(f"SELECT document FROM profiles WHERE pk = $1{self._lock}", pk)
        return Profile.model_validate_json(value) if value is not None else None

    async def get_profile(self, ns: str, ref: str) -> Profile | None:
        """The document of a profile named by id or alias."""
        found = await self.locate(ns, ref)
        return found[1] if found else None

    async def alias_owner(self, ns: str, alias: str) -> str | None:
        """Id of the profile that holds ``alias`` (as alias or as id), if any."""
        value = await self._con.fetchval(
            "SELECT id FROM profiles WHERE namespace = $1 AND (alias = $2 OR id = $2) LIMIT 1", ns, alias
        )
        return str(value) if value is not None else None

    async def refs_starting_with(
        self, ns: str, prefix: str, kind: Kind | None, limit: int
    ) -> tuple[list[tuple[str, str | None]], int]:
        """(id, alias) of profiles whose id or alias starts with ``prefix`` (any case), by id,
        and how many there are in all: what an argument completion offers."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = "namespace = $1 AND (id ILIKE $2 OR alias ILIKE $2)"
        params: list[Any] = [ns, pattern]
        if kind:
            where += " AND kind = $3"
            params.append(kind)
        rows = await self._con.fetch(
            f"SELECT id, alias FROM profiles WHERE {where} ORDER BY id LIMIT ${len(params) + 1}",
            *params,
            limit,
        )
        total = await self._con.fetchval(f"SELECT count(*) FROM profiles WHERE {where}", *params)
        return [(str(r[0]), r[1]) for r in rows], int(total)

    async def item_headers(
        self, ns: str, pk: int, ids: Sequence[str], statuses: Sequence[str], limit: int
    ) -> list[ItemHeader]:
        """Items of one profile without their content, oldest first: those named in ``ids``,
        and the first ``limit`` in one of ``statuses``."""
        cols = "id, input_type, status, error, created_at, seq"
        rows: list[Any] = []
        if ids:
            rows += await self._con.fetch(
                f"SELECT {cols} FROM data_items WHERE namespace = $1 AND profile_pk = $2 AND id = ANY($3::text[])",
                ns,
                pk,
                list(ids),
            )
        if statuses:
            rows += await self._con.fetch(
                f"SELECT {cols} FROM data_items WHERE namespace = $1 AND profile_pk = $2 "
                "AND status = ANY($3::text[]) ORDER BY seq LIMIT $4",
                ns,
                pk,
                list(statuses),
                limit,
            )
        unique = {r[0]: r for r in rows}
        return [ItemHeader(*tuple(r)[:5]) for r in sorted(unique.values(), key=lambda r: r[5])]

    async def item_counts(self, ns: str, pk: int) -> dict[str, int]:
        """How many data items one profile has in each state."""
        rows = await self._con.fetch(
            "SELECT status, count(*) FROM data_items WHERE namespace = $1 AND profile_pk = $2 GROUP BY status",
            ns,
            pk,
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def count_profiles(self, ns: str) -> int:
        """Profiles in a namespace (for the per-namespace limit)."""
        return int(await self._con.fetchval("SELECT count(*) FROM profiles WHERE namespace = $1", ns))

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
        """A page of profiles, by id (or by relevance with ``query``), and the next cursor."""
        params: list[Any] = [ns]

        def arg(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        where = ["p.namespace = $1"]
        if kind:
            where.append(f"p.kind = {arg(kind)}")
        cols = ", ".join(f"p.{c}" for c in _SUMMARY_COLS)
        if query:
            offset = int(_decode_cursor(cursor, int)) if cursor else 0
            if tag:
                where.append(
                    f"EXISTS (SELECT 1 FROM profile_tags t WHERE t.profile_pk = p.pk AND t.tag = {arg(tag)})"
                )
            # The order uses only each row itself (as on SQLite): a match in the name or alias
            # (their words carry weight A) first, then by id.
            q, named = arg(_ts_query(query)), arg(_ts_query(query, "A"))
            sql = (
                f"SELECT {cols} FROM profiles p WHERE p.search @@ to_tsquery('simple', {q}) AND "
                f"{' AND '.join(where)} ORDER BY NOT p.search @@ to_tsquery('simple', {named}), p.id "
                f"LIMIT {arg(limit + 1)} OFFSET {arg(offset)}"
            )
            rows = await self._con.fetch(sql, *params)
            nxt = _encode_cursor(offset + limit) if len(rows) > limit else None
        else:
            after = str(_decode_cursor(cursor, str)) if cursor else ""
            if tag:
                sql = (
                    f"SELECT {cols} FROM profile_tags t JOIN profiles p ON p.pk = t.profile_pk "
                    f"WHERE t.namespace = $1 AND t.tag = {arg(tag)} AND t.id > {arg(after)} AND "
                    f"{' AND '.join(where)} ORDER BY t.id LIMIT {arg(limit + 1)}"
                )
            else:
                sql = (
                    f"SELECT {cols} FROM profiles p WHERE {' AND '.join(where)} AND p.id > {arg(after)} "
                    f"ORDER BY p.id LIMIT {arg(limit + 1)}"
                )
            rows = await self._con.fetch(sql, *params)
            nxt = _encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
        return [
            ProfileSummary.model_validate(dict(zip(_SUMMARY_COLS, r, strict=True))) for r in rows[:limit]
        ], nxt

    async def history(self, ns: str, pk: int, limit: int) -> list[Revision]:
        """Newest versions first."""
        rows = await self._con.fetch(
            "SELECT version, actor, reason, changed_at, diff FROM revisions "
            "WHERE profile_pk = $1 ORDER BY version DESC LIMIT $2",
            pk,
            limit,
        )
        return [
            Revision(version=r[0], actor=r[1], reason=r[2], changed_at=r[3], changes=json.loads(r[4]))
            for r in rows
        ]

    async def snapshot(self, pk: int, version: int) -> Profile | None:
        """The document as it was at ``version``."""
        value = await self._con.fetchval(
            "SELECT snapshot FROM revisions WHERE profile_pk = $1 AND version = $2", pk, version
        )
        return Profile.model_validate_json(value) if value is not None else None

    async def connection(self, ns: str, connection_id: str) -> Connection | None:
        """One connection, or None."""
        row = await self._con.fetchrow(
            f"SELECT {_CONNECTION_COLS} FROM connections WHERE namespace = $1 AND id = $2",
            ns,
            connection_id,
        )
        return _connection(row) if row else None

    async def connections(self, ns: str) -> list[Connection]:
        """All connections of a namespace, by id."""
        rows = await self._con.fetch(
            f"SELECT {_CONNECTION_COLS} FROM connections WHERE namespace = $1 ORDER BY id",
            ns,
        )
        return [_connection(r) for r in rows]

    async def connection_users(self, ns: str, connection_id: str) -> list[str]:
        """Ids of assistant profiles that use a connection (checked before removal)."""
        rows = await self._con.fetch(
            "SELECT id FROM profiles WHERE namespace = $1 AND kind = 'assistant' "
            "AND document::jsonb ->> 'connection_id' = $2 ORDER BY id LIMIT 20",
            ns,
            connection_id,
        )
        return [str(r[0]) for r in rows]

    async def assistant_page(
        self, ns: str, *, capability: str | None, text: str | None, skip: int, take: int
    ) -> tuple[int, list[Profile]]:
        """Assistant profiles by id, filtered by capability and by a case-insensitive
        substring of id, alias or name; the total that match and the page ``skip``/``take``."""
        params: list[Any] = [ns]
        where = ["namespace = $1", "kind = 'assistant'"]
        if capability:
            params.append(capability)
            where.append(f"document::jsonb ->> 'capability' = ${len(params)}")
        if text:
            params.append(text.lower())
            n = f"${len(params)}"
            where.append(
                f"(strpos(lower(id), {n}) > 0 OR strpos(lower(coalesce(alias, '')), {n}) > 0 "
                f"OR strpos(lower(coalesce(name, '')), {n}) > 0)"
            )
        cond = " AND ".join(where)
        total = await self._con.fetchval(f"SELECT count(*) FROM profiles WHERE {cond}", *params)
        rows = await self._con.fetch(
            f"SELECT document FROM profiles WHERE {cond} ORDER BY id LIMIT ${len(params) + 1} "
            f"OFFSET ${len(params) + 2}",
            *params,
            take,
            skip,
        )
        return int(total), [Profile.model_validate_json(r[0]) for r in rows]

    async def items_by_id(self, ids: Sequence[str]) -> list[DataItem]:
        """Items by id, in the order they were submitted."""
        return await self._items("d.id = ANY($1::text[])", [list(ids)]) if ids else []

    async def item(self, ns: str, item_id: str) -> DataItem | None:
        """A data item (job) by id."""
        rows = await self._items("d.namespace = $1 AND d.id = $2", [ns, item_id])
        return rows[0] if rows else None

    async def item_by_sha(self, pk: int, sha256: str) -> DataItem | None:
        """The item already holding this exact data for this profile, if any."""
        rows = await self._items("d.profile_pk = $1 AND d.sha256 = $2", [pk, sha256])
        return rows[0] if rows else None

    async def items_for(self, ns: str, pk: int, statuses: Iterable[str]) -> list[DataItem]:
        """Items of one profile in the given states, oldest first."""
        return await self._items(
            "d.namespace = $1 AND d.profile_pk = $2 AND d.status = ANY($3::text[])", [ns, pk, list(statuses)]
        )

    async def failed_item_ids(self, ns: str, pk: int | None = None) -> list[str]:
        """Ids of failed items, of one profile or of the whole namespace."""
        if pk is None:
            rows = await self._con.fetch(
                "SELECT id FROM data_items WHERE namespace = $1 AND status = 'failed' ORDER BY seq", ns
            )
        else:
            rows = await self._con.fetch(
                "SELECT id FROM data_items WHERE namespace = $1 AND profile_pk = $2 AND status = 'failed' "
                "ORDER BY seq",
                ns,
                pk,
            )
        return [str(r[0]) for r in rows]

    async def queued_profiles(self, due: float | None = None, limit: int = 100) -> list[tuple[str, int]]:
        """(namespace, profile key) pairs with pending items (due by ``due``, when given),
        oldest first."""
        rows = await self._con.fetch(
            "SELECT namespace, profile_pk, min(seq) AS first FROM data_items WHERE status = 'pending' "
            "AND ($1::float8 IS NULL OR next_attempt_at IS NULL OR next_attempt_at <= $1) "
            "GROUP BY namespace, profile_pk ORDER BY first LIMIT $2",
            due,
            limit,
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    async def open_batches(self, ns: str, model: str) -> dict[str, list[str]]:
        """Batches sent and not yet read, by id: the custom ids of their requests."""
        rows = await self._con.fetch(
            "SELECT id, custom_ids FROM extraction_batches WHERE namespace = $1 AND model = $2 "
            "AND status = 'submitted' ORDER BY created_at",
            ns,
            model,
        )
        return {str(r[0]): list(json.loads(r[1])) for r in rows}

    async def next_attempt(self) -> float | None:
        """The earliest time a pending item waits for (a retry), if any."""
        value = await self._con.fetchval(
            "SELECT min(next_attempt_at) FROM data_items WHERE status = 'pending' AND next_attempt_at IS NOT NULL"
        )
        return float(value) if value is not None else None

    async def pending_load(self, ns: str, pk: int) -> tuple[int, str | None]:
        """Tokens of a profile's pending items, and when the oldest was submitted (no content read)."""
        row = await self._con.fetchrow(
            "SELECT coalesce(sum(tokens), 0), min(created_at) FROM data_items "
            "WHERE namespace = $1 AND profile_pk = $2 AND status = 'pending'",
            ns,
            pk,
        )
        return int(row[0]), row[1]

    async def _items(self, where: str, params: Sequence[Any], tail: str = "") -> list[DataItem]:
        rows = await self._con.fetch(
            f"SELECT {_ITEM_COLS} FROM data_items d JOIN profiles p ON p.pk = d.profile_pk "
            f"WHERE {where} ORDER BY d.seq{tail}",
            *params,
        )
        return [_item(r) for r in rows]

    # ---- data lifecycle (list_data, forget_data, retention) ---------------------------

    async def data_page(
        self, ns: str, pk: int, *, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[DataItem], str | None]:
        """A page of a profile's data items in the order they arrived, and the next cursor."""
        after = int(_decode_cursor(cursor, int)) if cursor else 0
        params: list[Any] = [ns, pk, after]
        where = "d.namespace = $1 AND d.profile_pk = $2 AND d.seq > $3"
        if status is not None:
            params.append(status)
            where += " AND d.status = $4"
        items = await self._items(where, [*params, limit + 1], f" LIMIT ${len(params) + 1}")
        if len(items) <= limit:
            return items, None
        seq = await self._con.fetchval("SELECT seq FROM data_items WHERE id = $1", items[limit - 1].id)
        return items[:limit], _encode_cursor(int(seq))

    async def existing_items(self, pk: int, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are data items of this profile (a forgotten item is not)."""
        rows = await self._con.fetch(
            "SELECT id FROM data_items WHERE profile_pk = $1 AND id = ANY($2::text[])", pk, list(set(ids))
        )
        return {str(r[0]) for r in rows}

    async def revisions_citing(
        self, pk: int, data_id: str
    ) -> list[tuple[int, list[dict[str, Any]], Profile | None, str | None]]:
        """(version, diff, snapshot, summary) of every kept version, oldest first. The
        snapshot is parsed only where forgetting ``data_id`` may change it: it names the item,
        or holds an extracted summary without recorded provenance."""
        rows = await self._con.fetch(
            "SELECT version, diff, CASE WHEN strpos(snapshot, $1) > 0 OR (strpos(snapshot, "
            '\'"summary_source":"extracted"\') > 0 AND strpos(snapshot, \'"summary_data_ids":["\') = 0) '
            "THEN snapshot END, snapshot::jsonb ->> 'summary' FROM revisions WHERE profile_pk = $2 "
            "ORDER BY version",
            f'"{data_id}"',
            pk,
        )
        return [
            (int(r[0]), json.loads(r[1]), Profile.model_validate_json(r[2]) if r[2] else None, r[3])
            for r in rows
        ]

    async def version_range(self, pk: int) -> tuple[int, int] | None:
        """The oldest and newest version history still holds."""
        row = await self._con.fetchrow(
            "SELECT min(version), max(version) FROM revisions WHERE profile_pk = $1", pk
        )
        return (int(row[0]), int(row[1])) if row and row[0] is not None else None

    async def claim_holds(self, ns: str, profile_id: str, pk: int, ids: Sequence[str], owner: str) -> bool:
        """Whether every item is still there, still claimed by ``owner``, and belongs to
        profile ``profile_id`` of namespace ``ns`` under key ``pk``: the check a result
        must pass, inside its write transaction, before it may touch the profile. In a write
        transaction the items are locked until commit, so no requeue can slip in between."""
        if not ids:
            return False
        rows = await self._con.fetch(
            "SELECT d.id FROM data_items d JOIN profiles p ON p.pk = d.profile_pk WHERE d.id = ANY($1::text[]) "
            "AND d.namespace = $2 AND d.profile_pk = $3 AND d.status = 'processing' AND d.claimed_by = $4 "
            f"AND p.namespace = $2 AND p.id = $5{' FOR UPDATE OF d' if self._lock else ''}",
            list(ids),
            ns,
            pk,
            owner,
            profile_id,
        )
        return len(rows) == len(set(ids))

    async def stats(self, ns: str) -> dict[str, Any]:
        """Counts and token totals for ``mcp-profiles stats``."""
        profiles = await self._con.fetchval("SELECT count(*) FROM profiles WHERE namespace = $1", ns)
        versions = await self._con.fetchval("SELECT count(*) FROM revisions WHERE namespace = $1", ns)
        items = {
            str(r[0]): int(r[1])
            for r in await self._con.fetch(
                "SELECT status, count(*) FROM data_items WHERE namespace = $1 GROUP BY status", ns
            )
        }
        row = await self._con.fetchrow(
            "SELECT coalesce(sum(requests),0), coalesce(sum(input_tokens),0), coalesce(sum(output_tokens),0), "
            "coalesce(sum(cache_read_tokens),0), coalesce(sum(cache_write_tokens),0), "
            "coalesce(sum(batch_requests),0) FROM data_items WHERE namespace = $1",
            ns,
        )
        names = (
            "requests",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "batch_requests",
        )
        tokens = {k: int(v) for k, v in zip(names, row, strict=True)}
        return {"profiles": int(profiles), "versions": int(versions), "items": items, "usage": tokens}

    async def token_usage_by_profile(self, ns: str, limit: int = 20) -> list[dict[str, Any]]:
        """Per-profile token sums, heaviest first."""
        rows = await self._con.fetch(
            "SELECT p.id, count(d.id), sum(d.requests), sum(d.input_tokens), sum(d.output_tokens), "
            "sum(d.cache_read_tokens), sum(d.cache_write_tokens) FROM data_items d "
            "JOIN profiles p ON p.pk = d.profile_pk WHERE d.namespace = $1 GROUP BY p.id "
            "ORDER BY sum(d.input_tokens) DESC, p.id LIMIT $2",
            ns,
            limit,
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
        return [{k: (v if k == "id" else int(v)) for k, v in zip(keys, r, strict=True)} for r in rows]

    async def namespaces(self) -> list[str]:
        """Every namespace that holds a profile or a connection (for ``mcp-profiles copy``)."""
        rows = await self._con.fetch(
            "SELECT namespace FROM profiles UNION SELECT namespace FROM connections ORDER BY 1"
        )
        return [str(r[0]) for r in rows]

    async def export_rows(self, ns: str, pk: int) -> dict[str, Any]:
        """Everything kept about one profile: revisions with snapshots, and raw data items."""
        revs = await self._con.fetch(
            "SELECT version, actor, reason, changed_at, diff, snapshot FROM revisions "
            "WHERE profile_pk = $1 ORDER BY version",
            pk,
        )
        items = await self._items("d.profile_pk = $1", [pk])
        return {
            "revisions": [
                {
                    "version": r[0],
                    "actor": r[1],
                    "reason": r[2],
                    "changed_at": r[3],
                    "changes": json.loads(r[4]),
                    "snapshot": json.loads(r[5]),
                }
                for r in revs
            ],
            "data_items": [
                {
                    k: v
                    for k, v in item.__dict__.items()
                    if k not in ("profile_pk", "namespace", "next_attempt_at")  # a retry's schedule stays
                }
                for item in items
            ],
        }


class PgWriteTx(PgReadTx):
    """Writes inside one READ COMMITTED transaction; profile rows read are locked."""

    _lock = " FOR UPDATE"

    def __init__(self, con: Any) -> None:
        super().__init__(con)
        self.erased = False

    async def locate(self, ns: str, ref: str) -> tuple[int, Profile] | None:
        """As a read, but a miss takes a lock on the name until commit and looks again: of two
        replicas creating the same profile at once, the second waits for the first and then
        updates what it created (on SQLite, writers are serialised anyway)."""
        found = await super().locate(ns, ref)
        if found is not None:
            return found
        await self._con.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{ns}\x1f{ref}")
        return await super().locate(ns, ref)

    async def insert_profile(self, ns: str, profile: Profile) -> int:
        """Insert a new profile; returns its internal key (never one a deleted profile had)."""
        try:
            pk = await self._con.fetchval(
                "INSERT INTO profiles (namespace, id, alias, kind, name, summary, version, created_at, "
                "updated_at, document, search) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                f"{_SEARCH_SQL.format(names='$11', rest='$12')}) RETURNING pk",
                ns,
                profile.id,
                profile.alias,
                profile.kind,
                profile.name,
                profile.summary,
                profile.version,
                profile.created_at,
                profile.updated_at,
                profile.model_dump_json(),
                *_search(profile),
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"profile {profile.id!r} or alias {profile.alias!r} already exists") from None
        await self._tags(int(pk), ns, profile, new=True)
        return int(pk)

    async def update_profile(
        self, ns: str, pk: int, profile: Profile, expected_version: int, *, previous: Profile | None = None
    ) -> None:
        """Replace the document if it is still at ``expected_version``.

        Raises:
            Conflict: another writer got there first, or the alias is taken.
        """
        try:
            status = await self._con.execute(
                "UPDATE profiles SET alias = $1, name = $2, summary = $3, version = $4, updated_at = $5, "
                f"document = $6, search = {_SEARCH_SQL.format(names='$7', rest='$8')} WHERE pk = $9 AND version = $10",
                profile.alias,
                profile.name,
                profile.summary,
                profile.version,
                profile.updated_at,
                profile.model_dump_json(),
                *_search(profile),
                pk,
                expected_version,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"alias {profile.alias!r} is already taken") from None
        if _status_count(status) != 1:
            raise Conflict(f"profile {profile.id!r} changed while it was being updated; retry")
        if previous is None or previous.tags != profile.tags:
            await self._tags(pk, ns, profile, new=False)

    async def _tags(self, pk: int, ns: str, profile: Profile, *, new: bool) -> None:
        if not new:
            await self._con.execute("DELETE FROM profile_tags WHERE profile_pk = $1", pk)
        if profile.tags:
            await self._con.executemany(
                "INSERT INTO profile_tags (namespace, tag, id, profile_pk) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT DO NOTHING",
                [(ns, t, profile.id, pk) for t in profile.tags],
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
        """Record a version: who, why, the diff and the full snapshot."""
        await self._con.execute(
            "INSERT INTO revisions (profile_pk, version, namespace, actor, reason, changed_at, diff, snapshot) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            pk,
            profile.version,
            ns,
            actor,
            reason,
            profile.updated_at,
            json.dumps(changes, ensure_ascii=False),
            profile.model_dump_json(),
        )

    async def delete_profile(self, pk: int) -> dict[str, int]:
        """Erase a profile with its tags, revisions and data items, in this transaction."""
        counts = {}
        for table in ("revisions", "data_items"):
            counts[table] = int(
                await self._con.fetchval(f"SELECT count(*) FROM {table} WHERE profile_pk = $1", pk)
            )
        await self._con.execute("DELETE FROM profiles WHERE pk = $1", pk)  # the rest cascades
        self.erased = True
        return counts

    async def delete_item(self, item_id: str) -> bool:
        """Delete one data item row (content, result, usage); False when it did not exist."""
        status = await self._con.execute("DELETE FROM data_items WHERE id = $1", item_id)
        self.erased = self.erased or _status_count(status) == 1
        return _status_count(status) == 1

    async def rewrite_revision(
        self, pk: int, version: int, changes: list[dict[str, Any]], snapshot: Profile | None
    ) -> None:
        """Replace a version's diff, and its snapshot when given (forgetting rewrites history)."""
        await self._con.execute(
            "UPDATE revisions SET diff = $1, snapshot = coalesce($2, snapshot) WHERE profile_pk = $3 AND version = $4",
            json.dumps(changes, ensure_ascii=False),
            snapshot.model_dump_json() if snapshot is not None else None,
            pk,
            version,
        )
        self.erased = True

    async def item_results(self, pk: int) -> list[tuple[str, dict[str, Any]]]:
        """(id, result) of a profile's items that have one."""
        rows = await self._con.fetch(
            "SELECT id, result FROM data_items WHERE profile_pk = $1 AND result IS NOT NULL ORDER BY seq", pk
        )
        return [(str(r[0]), json.loads(r[1])) for r in rows]

    async def replace_item_result(self, item_id: str, result: dict[str, Any]) -> None:
        """Overwrite an item's result (forgetting another item scrubs it)."""
        await self._con.execute(
            "UPDATE data_items SET result = $1 WHERE id = $2", json.dumps(result), item_id
        )
        self.erased = True

    async def rebuild_search_index(self) -> None:
        """Nothing to rebuild: each row's ``tsvector`` is rewritten with the row, and no
        query reads a dead version (its bytes stay in the files until ``compact``)."""
        self.erased = True

    async def delete_contents(self, ids: Sequence[str], at: str) -> int:
        """Delete the raw content of processed items, keeping id, sha256, status, size and usage."""
        status = await self._con.execute(
            "UPDATE data_items SET content = '', content_deleted_at = $1 "
            "WHERE id = ANY($2::text[]) AND status = 'done' AND content_deleted_at IS NULL",
            at,
            list(ids),
        )
        count = _status_count(status)
        self.erased = self.erased or count > 0
        return count

    async def expire_contents(self, processed_before: str, at: str) -> int:
        """Delete the raw content of every item processed before a time (never pending,
        processing or failed items: their data is still needed)."""
        status = await self._con.execute(
            "UPDATE data_items SET content = '', content_deleted_at = $1 "
            "WHERE status = 'done' AND content_deleted_at IS NULL AND updated_at <= $2",
            at,
            processed_before,
        )
        count = _status_count(status)
        self.erased = self.erased or count > 0
        return count

    async def prune_revisions(self, keep: int, older_than: str | None) -> int:
        """Delete versions beyond the newest ``keep`` of each profile, and (with
        ``older_than``) versions made before then; a profile's current version always stays."""
        status = await self._con.execute(
            "DELETE FROM revisions r USING profiles p WHERE p.pk = r.profile_pk AND r.version < p.version "
            "AND (r.version <= p.version - $1 OR r.changed_at < $2)",
            keep,
            older_than or "",
        )
        count = _status_count(status)
        self.erased = self.erased or count > 0
        return count

    async def set_content_deleted(self, item_id: str, at: str | None) -> None:
        """Record when an imported item's content was deleted by retention."""
        await self._con.execute("UPDATE data_items SET content_deleted_at = $1 WHERE id = $2", at, item_id)

    async def add_connection(self, ns: str, conn: Connection) -> None:
        """Insert a connection; an existing id is a conflict."""
        try:
            await self._con.execute(
                "INSERT INTO connections (namespace, id, name, provider_id, api_key_env, settings, created_at, "
                "alias, is_active, version, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
            )
        except asyncpg.UniqueViolationError as e:
            if e.constraint_name == "connections_alias":
                raise Conflict(f"alias {conn.alias!r} is already used by another connection") from None
            raise Conflict(f"connection {conn.id!r} already exists; remove it first to change it") from None

    async def update_connection(self, ns: str, conn: Connection) -> bool:
        """Replace a connection's name, key variable, settings, alias, state and version;
        False when it is gone."""
        try:
            status = await self._con.execute(
                "UPDATE connections SET name = $1, api_key_env = $2, settings = $3, alias = $4, is_active = $5, "
                "version = $6, updated_at = $7 WHERE namespace = $8 AND id = $9",
                conn.name,
                conn.api_key_env,
                json.dumps(conn.settings),
                conn.alias,
                conn.is_active,
                conn.version,
                conn.updated_at,
                ns,
                conn.id,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"alias {conn.alias!r} is already used by another connection") from None
        return _status_count(status) == 1

    async def remove_connection(self, ns: str, connection_id: str) -> bool:
        """Delete a connection; False when it did not exist."""
        status = await self._con.execute(
            "DELETE FROM connections WHERE namespace = $1 AND id = $2", ns, connection_id
        )
        return _status_count(status) == 1

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
        size: int | None = None,
        tokens: int | None = None,
    ) -> None:
        """Store raw data as a pending job, before any model is called, with its token
        estimate (computed when not given). ``size`` (bytes) is given by an import of an item
        whose content retention already deleted.

        Raises:
            Conflict: an item with this id already exists (an import into the same database).
        """
        try:
            await self._con.execute(
                "INSERT INTO data_items (id, namespace, profile_pk, sha256, content, input_type, status, "
                "attempts, created_at, updated_at, tokens, bytes) "
                "VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $8, $9, $10)",
                item_id,
                ns,
                pk,
                sha256,
                content,
                input_type,
                attempts,
                at,
                estimate_tokens(content) if tokens is None else tokens,
                len(content.encode("utf-8", "surrogatepass")) if size is None else size,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"data item {item_id!r} already exists in this database (imported before, perhaps into "
                "another namespace); import into a fresh database"
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
        rows = []
        for i, item_id in enumerate(ids):
            u = usage[i] if usage else {}
            rows.append(
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
                    owner,
                )
            )
        await self._con.executemany(
            "UPDATE data_items SET status = $1, error = $2, result = coalesce($3, result), updated_at = $4, "
            "attempts = attempts + $5, requests = requests + $6, input_tokens = input_tokens + $7, "
            "output_tokens = output_tokens + $8, cache_read_tokens = cache_read_tokens + $9, "
            "cache_write_tokens = cache_write_tokens + $10, batch_requests = batch_requests + $11 WHERE id = $12 "
            "AND ($13::text IS NULL OR (status = 'processing' AND claimed_by = $13))",
            rows,
        )

    async def claim_items(
        self,
        ns: str,
        pk: int,
        owner: str,
        at: float,
        *,
        max_tokens: int | None = None,
        due: float | None = None,
        limit: int = 100,
    ) -> list[str]:
        """Mark a profile's oldest pending items (due by ``due``, when given) ``processing`` by
        ``owner``, as many as fit in ``max_tokens`` (always at least one); returns their ids,
        oldest submitted first. Rows another replica is claiming right now are skipped, not
        waited on. The profile is locked first, as every write transaction does (the profile,
        then its items), so a claim and a forget_data cannot deadlock."""
        await self._con.execute("SELECT 1 FROM profiles WHERE pk = $1 FOR UPDATE", pk)
        rows = await self._con.fetch(
            # Materialised CTEs, not ``WHERE id IN (SELECT … LIMIT n)``: the planner may run such
            # a subquery more than once and claim more than ``limit`` rows.
            "WITH candidates AS MATERIALIZED (SELECT id, seq, tokens FROM data_items WHERE namespace = $3 "
            "AND profile_pk = $4 AND status = 'pending' AND ($6::float8 IS NULL OR next_attempt_at IS NULL "
            "OR next_attempt_at <= $6) ORDER BY seq LIMIT $5 FOR UPDATE SKIP LOCKED), "
            "picked AS MATERIALIZED (SELECT id FROM (SELECT id, tokens, sum(tokens) OVER (ORDER BY seq) AS running "
            "FROM candidates) c WHERE $7::bigint IS NULL OR running <= $7 OR running = tokens) "
            "UPDATE data_items d SET status = 'processing', claimed_by = $1, claimed_at = $2 "
            "FROM picked WHERE d.id = picked.id AND d.status = 'pending' RETURNING d.id, d.seq",
            owner,
            at,
            ns,
            pk,
            limit,
            due,
            max_tokens,
        )
        return [str(r[0]) for r in sorted(rows, key=lambda r: r[1])]

    async def claim_item(self, ns: str, item_id: str, owner: str, at: float) -> bool:
        """Claim one pending item by id (a result the client's model sent for it); its
        profile is locked first (the profile, then its items)."""
        await self._con.execute(
            "SELECT 1 FROM profiles p JOIN data_items d ON d.profile_pk = p.pk "
            "WHERE d.namespace = $1 AND d.id = $2 FOR UPDATE OF p",
            ns,
            item_id,
        )
        status = await self._con.execute(
            "UPDATE data_items SET status = 'processing', claimed_by = $1, claimed_at = $2 "
            "WHERE namespace = $3 AND id = $4 AND status = 'pending'",
            owner,
            at,
            ns,
            item_id,
        )
        return _status_count(status) == 1

    async def renew_claim(self, owner: str, at: float) -> bool:
        """Extend the lease of ``owner``'s claim; False when it holds no item any more."""
        status = await self._con.execute(
            "UPDATE data_items SET claimed_at = $1 WHERE status = 'processing' AND claimed_by = $2", at, owner
        )
        return _status_count(status) > 0

    async def retry_later(
        self, item_id: str, owner: str, *, at: str, error: str, next_attempt_at: float, usage: dict[str, int]
    ) -> None:
        """Put an item ``owner`` holds back in the queue after a failed attempt, not to be
        tried before ``next_attempt_at``; the error stays readable until then."""
        await self.set_items_status(
            [item_id], "pending", at=at, error=error, usage=[usage], attempt=True, owner=owner
        )
        await self._con.execute(
            "UPDATE data_items SET claimed_by = NULL, claimed_at = NULL, next_attempt_at = $1 "
            "WHERE id = $2 AND status = 'pending' AND claimed_by = $3",
            next_attempt_at,
            item_id,
            owner,
        )

    async def add_batch(self, ns: str, batch_id: str, model: str, custom_ids: Sequence[str], at: str) -> None:
        """Remember a sent Message Batch and the requests in it."""
        await self._con.execute(
            "INSERT INTO extraction_batches (id, namespace, model, custom_ids, status, created_at) "
            "VALUES ($1, $2, $3, $4, 'submitted', $5)",
            batch_id,
            ns,
            model,
            json.dumps(list(custom_ids)),
            at,
        )

    async def end_batch(self, batch_id: str, at: str) -> None:
        """A batch whose results were read: never waited for again."""
        await self._con.execute(
            "UPDATE extraction_batches SET status = 'ended', ended_at = $1 WHERE id = $2", at, batch_id
        )

    async def processing_claims(self) -> list[tuple[str, str | None, float | None]]:
        """(item id, owner, claimed at) of every item being processed, locked until commit so
        that a requeue decided on them cannot race the owner's completion."""
        rows = await self._con.fetch(
            "SELECT id, claimed_by, claimed_at FROM data_items WHERE status = 'processing' "
            "ORDER BY seq FOR UPDATE SKIP LOCKED"
        )
        return [(str(r[0]), r[1], r[2]) for r in rows]

    async def requeue(self, ids: Sequence[str], *, owner: str | None = None) -> int:
        """Put items back to ``pending`` (their owner died, or a failed item is retried).
        With ``owner``, only the items that owner still holds."""
        await self._con.execute(
            "UPDATE data_items SET status = 'pending', claimed_by = NULL, claimed_at = NULL, error = NULL, "
            "next_attempt_at = NULL WHERE id = ANY($1::text[]) "
            "AND ($2::text IS NULL OR (status = 'processing' AND claimed_by = $2))",
            list(ids),
            owner,
        )
        return len(ids)


# Name and alias words carry weight A, so a query can ask whether it matches there.
_SEARCH_SQL = "setweight(to_tsvector('simple', {names}), 'A') || to_tsvector('simple', {rest})"


def _search(profile: Profile) -> tuple[str, str]:
    """The words of (name and alias, summary and attribute values)."""
    return (
        _document_words(profile.name or "", profile.alias or ""),
        _document_words(profile.summary or "", profile.search_text()),
    )
