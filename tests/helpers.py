"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import sqlite3
import subprocess
from typing import TYPE_CHECKING, Any

import anyio
from mcp.types import CallToolResult

from mcp_profiles.config import Config
from mcp_profiles.service import ProfileService
from mcp_profiles.stores import is_postgres_url, open_store
from tests.pgcluster import psql_command

if TYPE_CHECKING:
    from mcp import Client

# A 2025-11 initialize request and the headers streamable HTTP wants, for raw HTTP tests.
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def add_connection(config: Config, connection_id: str = "anthropic-main", ns: str = "default") -> None:
    """Connections are managed by people (CLI), so tests seed them through the service."""
    async with open_store(config.db_path) as store:
        await ProfileService(store, config).add_connection(ns, connection_id, "anthropic", api_key_env="KEY")


def text(result: CallToolResult) -> str:
    """The first text block of a tool result."""
    block: Any = result.content[0]
    return str(block.text)


def table_counts(db_path: str) -> dict[str, int]:
    """Row counts of every table: proof that a failed call wrote nothing. Read with the
    database's own client (``sqlite3``, ``psql``), not with the store under test."""
    if is_postgres_url(db_path):
        return {k: int(v) for k, v in psql(db_path, _PG_COUNTS)}
    con = sqlite3.connect(db_path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        con.close()


async def next_events(sub: Any, n: int, *, linger: float = 0.0) -> list[Any]:
    """The next ``n`` events of a subscription (what arrives within 5 s), then whatever else
    arrives within ``linger`` seconds (so that duplicates show)."""
    events: list[Any] = []
    with anyio.move_on_after(5):
        async for event in sub:
            events.append(event)
            if len(events) == n:
                break
    if linger:
        with anyio.move_on_after(linger):
            async for event in sub:
                events.append(event)  # noqa: PERF401 - a cancelled comprehension loses what it collected
    return events


async def all_pages(client: Client, tool: str, args: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """Every ``key`` entry of a paged tool's pages, following next_cursor to the end."""
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = (
            await client.call_tool(tool, {**args, **({"cursor": cursor} if cursor else {})})
        ).structured_content
        assert page is not None
        seen += page[key]
        cursor = page["next_cursor"]
        if not cursor:
            return seen


_PG_COUNTS = (
    "SELECT table_name, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I', "
    "table_name), false, true, '')))[1]::text FROM information_schema.tables WHERE table_schema = current_schema()"
)


def psql(url: str, statement: str) -> list[list[str]]:
    """Rows of one statement run by ``psql`` on a PostgreSQL URL, as text fields."""
    out = subprocess.run(
        [*psql_command(url), "-c", statement], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [line.split("\x1f") for line in out.splitlines() if line]


def rows(db: str, sql: str) -> list[list[str]]:
    """Rows of a query read with the database's own client (``sqlite3`` or ``psql``), every
    value as text: for tests that look at the stored data without the store under test."""
    if is_postgres_url(db):
        return psql(db, sql)
    con = sqlite3.connect(db)
    try:
        return [[str(v) for v in r] for r in con.execute(sql)]
    finally:
        con.close()
