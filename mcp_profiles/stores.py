"""Which store a ``--db`` value opens: a ``postgresql://`` URL the PostgreSQL store, anything
else a SQLite file. Every command (serve, the CLI, export/import, process) opens its
database here, so a URL selects PostgreSQL everywhere at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .contract import Store
from .pgstore import is_postgres_url
from .store import ProfileStore

__all__ = ["is_postgres_url", "open_store"]


@asynccontextmanager
async def open_store(target: str) -> AsyncIterator[Store]:
    """Open (creating and migrating as needed) the database ``target`` names.

    Raises:
        Invalid: a PostgreSQL URL without the driver installed, or a database not reachable.
    """
    if is_postgres_url(target):
        from .pgstore import PgStore

        async with PgStore.open(target) as pg:
            yield pg
    else:
        async with ProfileStore.open(target) as sqlite:
            yield sqlite
