"""Which store a ``--db`` value opens: a ``postgresql://`` URL the PostgreSQL store, anything
else a SQLite file. Every command (serve, the CLI, export/import, process) opens its
database here, so a URL selects PostgreSQL everywhere at once. The driver is imported only
when a URL asks for it: SQLite users do not pay for it at start-up."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .contract import Store
from .store import ProfileStore

__all__ = ["is_postgres_url", "open_store", "redact_url"]


def is_postgres_url(target: str) -> bool:
    """Whether a ``--db`` value names a PostgreSQL database rather than a SQLite file."""
    return target.startswith(("postgresql://", "postgres://"))


def redact_url(target: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", target)


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
