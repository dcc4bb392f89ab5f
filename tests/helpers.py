"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import sqlite3
from typing import Any

from mcp.types import CallToolResult

from mcp_profiles.config import Config
from mcp_profiles.service import ProfileService
from mcp_profiles.store import ProfileStore


async def add_connection(config: Config, connection_id: str = "anthropic-main", ns: str = "default") -> None:
    """Connections are managed by people (CLI), so tests seed them through the service."""
    async with ProfileStore.open(config.db_path) as store:
        await ProfileService(store, config).add_connection(ns, connection_id, "anthropic", api_key_env="KEY")


def text(result: CallToolResult) -> str:
    """The first text block of a tool result."""
    block: Any = result.content[0]
    return str(block.text)


def table_counts(db_path: str) -> dict[str, int]:
    """Row counts of every table: proof that a failed call wrote nothing."""
    con = sqlite3.connect(db_path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        con.close()
