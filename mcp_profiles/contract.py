"""The store contract: what the service layer may ask of a database, in any backend.

Two implementations keep the same methods: ``store.py`` (SQLite, the embedded default)
and ``pgstore.py`` (PostgreSQL, for several replicas on one database). Everything above
the store (service, jobs, CLI) is typed against these protocols, so a method one backend
lacks is a type error, and the store tests run against both (tests/conftest.py).

The rules every backend keeps:
- a write transaction commits when its block ends and rolls back if it raises, so a
  failed call writes nothing;
- ``locate`` inside a write transaction holds the profile against other writers until
  commit, and ``update_profile`` is still conditional on the version read
  (``UPDATE … WHERE version = …``), so no update is ever lost;
- every read and write is scoped to a namespace; nothing crosses tenants, full-text
  ranking included;
- an erased profile is gone from every query at commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

from .models import Connection, Kind, Profile, ProfileSummary, Revision
from .store import DataItem, ItemHeader

__all__ = ["ChangeFeed", "Deliver", "ReadOps", "Store", "WriteOps"]

# (namespace, profile id, listed): a change another replica committed.
Deliver = Callable[[str, str, bool], Awaitable[None]]


class ReadOps(Protocol):
    """Reads, inside one read (or write) transaction."""

    async def locate(self, ns: str, ref: str) -> tuple[int, Profile] | None: ...
    async def document_json(self, ns: str, ref: str) -> str | None: ...
    async def profile_by_key(self, pk: int) -> Profile | None: ...
    async def get_profile(self, ns: str, ref: str) -> Profile | None: ...
    async def alias_owner(self, ns: str, alias: str) -> str | None: ...
    async def count_profiles(self, ns: str) -> int: ...
    async def refs_starting_with(
        self, ns: str, prefix: str, kind: Kind | None, limit: int
    ) -> tuple[list[tuple[str, str | None]], int]: ...
    async def item_headers(
        self, ns: str, pk: int, ids: Sequence[str], statuses: Sequence[str], limit: int
    ) -> list[ItemHeader]: ...
    async def item_counts(self, ns: str, pk: int) -> dict[str, int]: ...
    async def list_profiles(
        self,
        ns: str,
        *,
        kind: Kind | None = None,
        tag: str | None = None,
        query: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[ProfileSummary], str | None]: ...
    async def history(self, ns: str, pk: int, limit: int) -> list[Revision]: ...
    async def snapshot(self, pk: int, version: int) -> Profile | None: ...
    async def connection(self, ns: str, connection_id: str) -> Connection | None: ...
    async def connections(self, ns: str) -> list[Connection]: ...
    async def connection_users(self, ns: str, connection_id: str) -> list[str]: ...
    async def assistant_page(
        self, ns: str, *, capability: str | None, text: str | None, skip: int, take: int
    ) -> tuple[int, list[Profile]]: ...
    async def items_by_id(self, ids: Sequence[str]) -> list[DataItem]: ...
    async def item(self, ns: str, item_id: str) -> DataItem | None: ...
    async def item_by_sha(self, pk: int, sha256: str) -> DataItem | None: ...
    async def items_for(self, ns: str, pk: int, statuses: Iterable[str]) -> list[DataItem]: ...
    async def failed_item_ids(self, ns: str, pk: int | None = None) -> list[str]: ...
    async def queued_profiles(self, limit: int = 100) -> list[tuple[str, int]]: ...
    async def stats(self, ns: str) -> dict[str, Any]: ...
    async def token_usage_by_profile(self, ns: str, limit: int = 20) -> list[dict[str, Any]]: ...
    async def export_rows(self, ns: str, pk: int) -> dict[str, Any]: ...
    async def namespaces(self) -> list[str]: ...


class WriteOps(ReadOps, Protocol):
    """Reads and writes inside one write transaction."""

    erased: bool

    async def insert_profile(self, ns: str, profile: Profile) -> int: ...
    async def update_profile(
        self, ns: str, pk: int, profile: Profile, expected_version: int, *, previous: Profile | None = None
    ) -> None: ...
    async def add_revision(
        self,
        ns: str,
        pk: int,
        profile: Profile,
        *,
        actor: str,
        reason: str | None,
        changes: list[dict[str, Any]],
    ) -> None: ...
    async def delete_profile(self, pk: int) -> dict[str, int]: ...
    async def add_connection(self, ns: str, conn: Connection) -> None: ...
    async def update_connection(self, ns: str, conn: Connection) -> bool: ...
    async def remove_connection(self, ns: str, connection_id: str) -> bool: ...
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
    ) -> None: ...
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
    ) -> None: ...
    async def claim_items(self, ns: str, pk: int, owner: str, at: float, limit: int = 100) -> list[str]: ...
    async def processing_claims(self) -> list[tuple[str, str | None, float | None]]: ...
    async def requeue(self, ids: Sequence[str]) -> int: ...


class Store(Protocol):
    """An open database: transactions, its schema version, and where it is."""

    @property
    def path(self) -> str: ...

    # An erasure whose old bytes a reader still holds in SQLite's WAL (``erased.wal_pending``);
    # always False on PostgreSQL, whose WAL is described in the README instead.
    wal_pending: bool

    async def finish_erasure(self) -> bool: ...
    def read(self, *, snapshot: bool = True) -> AbstractAsyncContextManager[ReadOps]: ...
    def write(self) -> AbstractAsyncContextManager[WriteOps]: ...
    async def schema_version(self) -> int: ...
    async def compact(self) -> dict[str, Any]: ...


@runtime_checkable
class ChangeFeed(Protocol):
    """A store that carries change notifications between processes (PostgreSQL's
    LISTEN/NOTIFY). SQLite has none: one process serves one file."""

    async def publish_change(self, ns: str, profile_id: str, *, listed: bool) -> None: ...
    async def follow_changes(self, deliver: Deliver) -> None: ...
