"""``mcp-profiles copy``: a whole database moved between backends (SQLite ↔ PostgreSQL).

Each namespace goes through the export format and the import path (``exchange.py``, the
service's ``import_records``), which a round-trip test proves lossless: documents, every
kept revision and every raw data item with its state. Connections go first, since assistant
profiles name them. Profiles are written in batches, one transaction each, with progress
after every batch; afterwards both sides are counted and every profile's version compared.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .contract import Store
from .errors import Conflict, ProfilesError
from .exchange import parse_export
from .service import MAX_LIST, ProfileService
from .stores import open_store

__all__ = ["CopyReport", "copy_database"]

Progress = Callable[[int, int, str], Awaitable[None]]


@dataclass
class CopyReport:
    """What was copied, and whether the target holds the same as the source."""

    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return not self.mismatches


async def _census(svc: ProfileService, ns: str) -> dict[str, Any]:
    """Counts and every profile's version: what must match on both sides."""
    versions: dict[str, int] = {}
    cursor = None
    while True:
        page, cursor = await svc.list_profiles(ns, limit=MAX_LIST, cursor=cursor)
        versions.update({p.id: p.version for p in page})
        if cursor is None:
            break
    stats = await svc.stats(ns)
    connections = len(await svc.list_connections(ns))
    return {
        "profiles": stats["profiles"],
        "revisions": stats["versions"],
        "items": dict(sorted(stats["items"].items())),
        "connections": connections,
        "versions": versions,
    }


async def _copy_namespace(
    src: ProfileService, dst: ProfileService, ns: str, done: int, total: int, progress: Progress, batch: int
) -> int:
    for conn in await src.list_connections(ns):
        async with dst.store.write() as tx:
            await tx.add_connection(ns, conn)
    lines: list[str] = []

    async def flush() -> None:
        nonlocal done
        records = parse_export("\n".join(lines).encode(), dst.config.limits)
        await dst.import_records(ns, records)
        done += len(records)
        lines.clear()
        await progress(done, total, ns)

    async for record in src.export(ns):
        lines.append(json.dumps(record, ensure_ascii=False))
        if len(lines) >= batch:
            await flush()
    if lines:
        await flush()
    return done


async def copy_database(
    source: str, target: str, config: Config, progress: Progress, *, batch: int = 200
) -> CopyReport:
    """Copy every namespace of ``source`` into the empty database ``target``.

    Raises:
        Conflict: the target already holds profiles or connections.
        Invalid: a database cannot be opened.
    """
    report = CopyReport()
    async with open_store(source) as src_store, open_store(target) as dst_store:
        src = _service(src_store, config)
        dst = _service(dst_store, config)
        async with dst_store.read() as tx:
            if await tx.namespaces():
                raise Conflict("copy: the target database is not empty; copy into a new database")
        async with src_store.read() as tx:
            namespaces = await tx.namespaces()
        before = {ns: await _census(src, ns) for ns in namespaces}
        total = sum(c["profiles"] for c in before.values())
        done = 0
        for ns in namespaces:
            try:
                done = await _copy_namespace(src, dst, ns, done, total, progress, batch)
            except ProfilesError as e:
                e.message = f"namespace {ns!r}: {e.message}"
                raise
        for ns in namespaces:
            after = await _census(dst, ns)
            report.namespaces[ns] = {k: v for k, v in after.items() if k != "versions"}
            for key in ("profiles", "revisions", "items", "connections"):
                if after[key] != before[ns][key]:
                    report.mismatches.append(
                        f"{ns}: {key} {before[ns][key]} in the source, {after[key]} copied"
                    )
            differ = [p for p, v in before[ns]["versions"].items() if after["versions"].get(p) != v]
            if differ:
                report.mismatches.append(
                    f"{ns}: versions differ for {len(differ)} profile(s), e.g. {differ[0]!r}"
                )
        report.profiles = done
    return report


def _service(store: Store, config: Config) -> ProfileService:
    return ProfileService(store, config)
