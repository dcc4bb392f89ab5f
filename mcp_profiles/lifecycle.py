"""The data lifecycle: list a profile's data items, forget one, and prune by retention.

Forgetting takes one write transaction: the item's row (content, result, usage), every
extracted fact only it supports, the evidence it gave to facts others support too, an
extracted summary it contributed to, and the same values in every kept revision snapshot
and diff (history keeps a marker instead) and in other items' job results. The search
index is rebuilt and the WAL checkpointed after the commit, as for ``delete_profile``, so
with ``secure_delete`` no byte of what was removed stays in the database files.

An item being extracted cannot be forgotten (``conflict``): the extraction would cite it
again. Extraction, for its part, applies only what the items still present support.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from .config import Config
from .contract import Store
from .errors import Conflict, Invalid, NotFound
from .forgetting import forget_in_profile, scrub_changes, scrub_result
from .merge import normalize_text
from .models import Profile, now
from .patching import diff
from .service import located
from .store import DataItem

__all__ = ["DATA_STATUSES", "DataPage", "ForgetOutcome", "Lifecycle", "PruneCounts"]

DATA_STATUSES = ("pending", "processing", "done", "failed")


class Announce(Protocol):
    """Tells subscribers that a profile changed (``ProfileService.announce``)."""

    def __call__(self, ns: str, profile_id: str, *, listed: bool) -> Awaitable[None]: ...


MAX_PAGE = 200


@dataclass
class DataPage:
    """A page of data items, each with the attribute keys whose evidence cites it."""

    items: list[tuple[DataItem, list[str]]]
    next_cursor: str | None


@dataclass
class ForgetOutcome:
    """What forgetting one data item removed."""

    profile_id: str
    data_id: str
    version: int
    facts: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    summary: bool = False
    revisions: int = 0
    job_results: int = 0
    wal_pending: bool = False


@dataclass
class PruneCounts:
    """What one retention sweep deleted."""

    data_contents: int = 0
    revisions: int = 0
    wal_pending: bool = False


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check(ref: str, what: str) -> None:
    if not isinstance(ref, str) or not ref or len(ref) > 128:
        raise Invalid(f"{what}: must be 1-128 characters")


class Lifecycle:
    """list_data, forget_data and the retention sweep over one store."""

    def __init__(self, store: Store, config: Config, announce: Announce | None = None) -> None:
        self.store = store
        self.config = config
        self.announce = announce

    async def list_data(
        self, ns: str, ref: str, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> DataPage:
        """A profile's data items, oldest first, with the facts each one supports."""
        _check(ref, "profile")
        if status is not None and status not in DATA_STATUSES:
            raise Invalid(f"status: must be one of {', '.join(DATA_STATUSES)}")
        if not 1 <= limit <= MAX_PAGE:
            raise Invalid(f"limit: must be between 1 and {MAX_PAGE}")
        async with self.store.read() as tx:
            pk, profile = await located(tx, ns, ref)
            items, nxt = await tx.data_page(ns, pk, status=status, limit=limit, cursor=cursor or None)
        cited: dict[str, list[str]] = {}
        for key, attr in sorted(profile.attributes.items()):
            for data_id in dict.fromkeys(e.data_id for e in attr.evidence):
                cited.setdefault(data_id, []).append(key)
        return DataPage([(item, cited.get(item.id, [])) for item in items], nxt)

    async def forget_data(self, ns: str, ref: str, data_id: str, *, actor: str = "agent") -> ForgetOutcome:
        """Erase one data item and everything derived only from it.

        Raises:
            NotFound: no such profile, or it has no such item (perhaps forgotten already).
            Conflict: the item is being extracted right now.
        """
        _check(ref, "profile")
        _check(data_id, "data_id")
        at = now()
        async with self.store.write() as tx:
            pk, current = await located(tx, ns, ref)
            item = await tx.item(ns, data_id)
            if item is None or item.profile_pk != pk:
                raise NotFound(
                    f"profile {current.id!r} has no data item {data_id!r} (list_data shows its items; "
                    "a forgotten item is gone)"
                )
            if item.status == "processing":
                raise Conflict(
                    f"data item {data_id!r} is being extracted right now; forget it once get_job "
                    "reports done or failed"
                )
            new, gone = forget_in_profile(current, data_id)
            history = await tx.revisions_citing(pk, data_id)
            summaries = {gone.summary} if gone.summary else set()
            known = {new.summary} if new.summary else set()
            snapshots: dict[int, Profile] = {}
            for version, _, snap, summary in history:
                if snap is None:
                    known.update([summary] if summary else [])
                    continue
                clean_snap, removed = forget_in_profile(snap, data_id)
                if clean_snap is not snap:
                    snapshots[version] = clean_snap
                summaries.update([removed.summary] if removed.summary else [])
                known.update([clean_snap.summary] if clean_snap.summary else [])
            outcome = ForgetOutcome(current.id, data_id, current.version, gone.facts, gone.trimmed)
            outcome.summary = gone.summary is not None
            for version, changes, _, _ in history:
                clean = scrub_changes(changes, data_id, summaries, known)
                if clean != changes or version in snapshots:
                    await tx.rewrite_revision(pk, version, clean, snapshots.get(version))
                    outcome.revisions += 1
            if gone.changed:
                new.version, new.updated_at = current.version + 1, at
                await tx.update_profile(ns, pk, new, current.version, previous=current)
                changes = scrub_changes(diff(current, new), data_id, summaries, known | {new.summary or ""})
                await tx.add_revision(
                    ns, pk, new, actor=actor, reason=f"forget data {data_id}", changes=changes
                )
                await tx.rebuild_search_index()
                outcome.version = new.version
            batch = (item.result or {}).get("version")
            folded = normalize_text(item.content)
            for other_id, result in await tx.item_results(pk):
                if other_id == data_id:
                    continue
                shared = batch is not None and result.get("version") == batch
                clean_result = scrub_result(result, data_id, folded, summaries, known, shared_batch=shared)
                if clean_result != result:
                    await tx.replace_item_result(other_id, clean_result)
                    outcome.job_results += 1
            await tx.delete_item(data_id)
        outcome.wal_pending = self.store.wal_pending
        if self.announce is not None and gone.changed:
            await self.announce(ns, current.id, listed=False)
        return outcome

    async def prune(self, at: datetime | None = None) -> PruneCounts:
        """Delete raw content past ``keep_data_days`` and versions past the version limits,
        in every namespace of the database."""
        at = at or datetime.now(UTC)
        config = self.config
        versions_before = (
            _iso(at - timedelta(days=config.keep_versions_days)) if config.keep_versions_days else None
        )
        async with self.store.write() as tx:
            contents = 0
            if config.keep_data_days is not None:
                cutoff = _iso(at - timedelta(days=config.keep_data_days))
                contents = await tx.expire_contents(cutoff, _iso(at))
            revisions = await tx.prune_revisions(config.keep_versions, versions_before)
        return PruneCounts(contents, revisions, self.store.wal_pending)


def item_fields(item: DataItem, facts: list[str]) -> dict[str, Any]:
    """One row of ``list_data``."""
    return {
        "data_id": item.id,
        "input_type": item.input_type,
        "status": item.status,
        "received_at": item.created_at,
        "bytes": item.bytes,
        "content_kept": item.content_deleted_at is None,
        "facts": facts,
    }
