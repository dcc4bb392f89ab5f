"""The operations, once: every adapter (MCP server, CLI) calls these and nothing else.

The service knows no protocol. It turns a request into a store transaction, applies the
pure document rules (``patching``), checks what needs the store (alias uniqueness, known
connections, per-namespace limits) and records a revision with every change — all in one
transaction, so a failed call leaves nothing behind.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from pydantic import ValidationError

from .bus import NamespacedBus, profile_uri
from .config import Config
from .contract import ChangeFeed, ReadOps, Store, WriteOps
from .errors import Conflict, Invalid, NotFound, ProfilesError, TooLarge
from .exchange import ImportRecord
from .models import PROFILE_ID_RE, Connection, Kind, Profile, ProfileSummary, Revision, now
from .patching import apply_patch, check_limits, check_rules, diff
from .prompts import prompt_cache_report

__all__ = ["ChangeResult", "DeleteResult", "ProfileService", "located"]

MAX_LIST = 200
MAX_HISTORY = 200


@dataclass
class ChangeResult:
    """The document after a write, the changed paths, and whether it was created."""

    profile: Profile
    changed: list[str]
    created: bool = False
    changes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DeleteResult:
    """What an erasure removed."""

    id: str
    deleted: bool
    erased: dict[str, int]
    # the erased pages are still in the WAL or main file because another connection reads
    wal_pending: bool = False


P = ParamSpec("P")
R = TypeVar("R", ChangeResult, DeleteResult)


def _announced(
    method: Callable[Concatenate[ProfileService, str, P], Awaitable[R]],
) -> Callable[Concatenate[ProfileService, str, P], Awaitable[R]]:
    """Announce the change a write method committed (after the commit, never on failure)."""

    @functools.wraps(method)
    async def wrapper(self: ProfileService, ns: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result = await method(self, ns, *args, **kwargs)
        if isinstance(result, DeleteResult):
            await self.announce(ns, result.id, listed=True)
        elif result.changed or result.created:  # an empty new profile changes no path but is new
            await self.announce(ns, result.profile.id, listed=result.created)
        return result

    return wrapper


def _check_ref(ref: str, what: str = "profile") -> None:
    if not isinstance(ref, str) or not ref or len(ref) > 128:
        raise Invalid(f"{what}: must be an id or alias of 1-128 characters")


async def located(tx: ReadOps, ns: str, ref: str) -> tuple[int, Profile]:
    """(internal key, document) of the profile ``ref`` names, by id or alias.

    Raises NotFound when no profile has this id or alias."""
    found = await tx.locate(ns, ref)
    if found is None:
        raise NotFound(f"profile {ref!r} does not exist")
    return found


class ProfileService:
    """Profile operations over one store; every method takes the caller's namespace.

    With a ``bus``, every committed change is announced on it (see ``bus.py``).
    """

    def __init__(self, store: Store, config: Config, bus: NamespacedBus | None = None) -> None:
        self.store = store
        self.config = config
        self.bus = bus

    async def announce(self, ns: str, profile_id: str, *, listed: bool) -> None:
        """Tell whoever listens that a profile changed (``listed``: it appeared or went)."""
        if self.bus is not None:
            await self.bus.announce(ns, profile_uri(profile_id), listed=listed)
        if isinstance(self.store, ChangeFeed):  # other replicas on the same database
            await self.store.publish_change(ns, profile_id, listed=listed)

    # ---- reads --------------------------------------------------------------------

    async def get_profile(self, ns: str, ref: str) -> Profile:
        """Raises NotFound when no profile has this id or alias."""
        _check_ref(ref)
        async with self.store.read(snapshot=False) as tx:
            profile = await tx.get_profile(ns, ref)
        if profile is None:
            raise NotFound(f"profile {ref!r} does not exist")
        return profile

    async def get_profile_json(self, ns: str, ref: str) -> str:
        """The document as JSON text, straight from the store (no parse and re-dump).

        Raises NotFound when no profile has this id or alias."""
        _check_ref(ref)
        async with self.store.read(snapshot=False) as tx:
            text = await tx.document_json(ns, ref)
        if text is None:
            raise NotFound(f"profile {ref!r} does not exist")
        return text

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
        """A page of profiles and the cursor of the next page (None at the end)."""
        if kind not in (None, "user", "assistant"):
            raise Invalid("kind: must be 'user' or 'assistant'")
        if not 1 <= limit <= MAX_LIST:
            raise Invalid(f"limit: must be between 1 and {MAX_LIST}")
        if query is not None and len(query) > 500:
            raise Invalid("query: at most 500 characters")
        async with self.store.read(snapshot=False) as tx:
            return await tx.list_profiles(
                ns, kind=kind, tag=tag or None, query=query or None, limit=limit, cursor=cursor or None
            )

    async def history(self, ns: str, ref: str, limit: int = 20) -> list[Revision]:
        """Newest versions first, each with its changes."""
        _check_ref(ref)
        if not 1 <= limit <= MAX_HISTORY:
            raise Invalid(f"limit: must be between 1 and {MAX_HISTORY}")
        async with self.store.read() as tx:
            pk, _ = await located(tx, ns, ref)
            return await tx.history(ns, pk, limit)

    # ---- writes -------------------------------------------------------------------

    @_announced
    async def update_profile(
        self,
        ns: str,
        ref: str,
        patch: dict[str, Any],
        *,
        replace: bool = False,
        create: bool = False,
        kind: Kind | None = None,
        expected_version: int | None = None,
        actor: str = "agent",
        reason: str | None = None,
    ) -> ChangeResult:
        """Merge-patch (or replace) a profile, creating it only when asked.

        Raises:
            NotFound: the profile does not exist and ``create`` is false.
            Conflict: ``expected_version`` is stale, or the alias is taken.
            Invalid: the patch breaks a rule. TooLarge: a limit is exceeded.
        """
        _check_ref(ref)
        if kind not in (None, "user", "assistant"):
            raise Invalid("kind: must be 'user' or 'assistant'")
        if not isinstance(patch, dict):
            raise Invalid("patch: must be a JSON object")
        at = now()
        async with self.store.write() as tx:
            found = await tx.locate(ns, ref)
            if found is None:
                if not create:
                    raise NotFound(f"profile {ref!r} does not exist; pass create: true to create it")
                if expected_version not in (None, 0):
                    raise Conflict(f"profile {ref!r} does not exist (current version 0)")
                return await self.create_in(tx, ns, ref, patch, kind or "user", replace, at, actor, reason)
            pk, current = found
            if expected_version is not None and expected_version != current.version:
                raise Conflict(
                    f"profile {current.id!r} is at version {current.version}, not {expected_version}; "
                    "read it again and retry"
                )
            if kind is not None and kind != current.kind:
                raise Invalid(f"kind: profile {current.id!r} is a {current.kind} profile")
            new = apply_patch(
                current,
                patch,
                profile_id=current.id,
                kind=current.kind,
                replace=replace,
                at=at,
                limits=self.config.limits,
            )
            return await self._commit(tx, ns, pk, current, new, at, actor, reason)

    async def create_in(
        self,
        tx: WriteOps,
        ns: str,
        ref: str,
        patch: dict[str, Any],
        kind: Kind,
        replace: bool,
        at: str,
        actor: str,
        reason: str | None,
    ) -> ChangeResult:
        """Create profile ``ref`` inside an open write transaction (shared with extraction)."""
        if not PROFILE_ID_RE.match(ref):
            raise Invalid(
                f"profile: {ref!r} is not a valid new id (1-128 letters, digits, '_', '.', '@', '-', "
                "starting with a letter or digit)"
            )
        if await tx.count_profiles(ns) >= self.config.limits.max_profiles:
            raise TooLarge(
                f"namespace {ns!r} already holds the maximum of {self.config.limits.max_profiles} profiles"
            )
        new = apply_patch(
            None, patch, profile_id=ref, kind=kind, replace=replace, at=at, limits=self.config.limits
        )
        await self._check_references(tx, ns, None, new)
        new.version, new.created_at, new.updated_at = 1, at, at
        pk = await tx.insert_profile(ns, new)
        changes = diff(None, new)
        await tx.add_revision(ns, pk, new, actor=actor, reason=reason or "created", changes=changes)
        return ChangeResult(new, [c["path"] for c in changes], created=True, changes=changes)

    async def _commit(
        self,
        tx: WriteOps,
        ns: str,
        pk: int,
        current: Profile,
        new: Profile,
        at: str,
        actor: str,
        reason: str | None,
    ) -> ChangeResult:
        """Write ``new`` as the next version of ``current`` unless nothing changed."""
        changes = diff(current, new)
        if not changes:
            return ChangeResult(current, [])
        await self._check_references(tx, ns, current, new)
        new.version, new.created_at, new.updated_at = current.version + 1, current.created_at, at
        await tx.update_profile(ns, pk, new, current.version, previous=current)
        await tx.add_revision(ns, pk, new, actor=actor, reason=reason, changes=changes)
        return ChangeResult(new, [c["path"] for c in changes], changes=changes)

    async def _check_references(self, tx: WriteOps, ns: str, current: Profile | None, new: Profile) -> None:
        if new.alias and (current is None or new.alias != current.alias):
            owner = await tx.alias_owner(ns, new.alias)
            if owner is not None and owner != new.id:
                raise Conflict(f"alias {new.alias!r} is already used by profile {owner!r}")
        if new.connection_id and (current is None or new.connection_id != current.connection_id):
            if await tx.connection(ns, new.connection_id) is None:
                raise Invalid(
                    f"connection {new.connection_id!r} not found "
                    f"(add it with: mcp-profiles connection add {new.connection_id} --provider PROVIDER)"
                )

    @_announced
    async def revert_profile(
        self, ns: str, ref: str, version: int, *, actor: str = "agent", expected_version: int | None = None
    ) -> ChangeResult:
        """Restore the document of ``version`` as a new version (history is kept)."""
        _check_ref(ref)
        if not isinstance(version, int) or version < 1:
            raise Invalid("version: must be a version number of 1 or more")
        at = now()
        async with self.store.write() as tx:
            pk, current = await located(tx, ns, ref)
            if expected_version is not None and expected_version != current.version:
                raise Conflict(
                    f"profile {current.id!r} is at version {current.version}, not {expected_version}"
                )
            old = await tx.snapshot(pk, version) if version <= current.version else None
            if old is None:
                kept = await tx.version_range(pk)
                if version <= current.version and kept is not None:
                    raise NotFound(
                        f"version {version} of profile {current.id!r} was pruned; history keeps versions "
                        f"{kept[0]}-{kept[1]} (MCP_PROFILES_KEEP_VERSIONS, MCP_PROFILES_KEEP_VERSIONS_DAYS)"
                    )
                raise NotFound(
                    f"profile {current.id!r} has no version {version} (current is {current.version})"
                )
            new = old.model_copy(deep=True)
            check_rules(current, new)
            check_limits(new, self.config.limits)
            return await self._commit(tx, ns, pk, current, new, at, actor, f"revert to version {version}")

    @_announced
    async def delete_profile(self, ns: str, ref: str) -> DeleteResult:
        """Erase a profile, its revisions and its raw data; nothing of it stays readable."""
        _check_ref(ref)
        async with self.store.write() as tx:
            pk, profile = await located(tx, ns, ref)
            erased = await tx.delete_profile(pk)
        # the write has checkpointed after the erasure, or marked it pending
        return DeleteResult(profile.id, True, erased, wal_pending=self.store.wal_pending)

    # ---- connections --------------------------------------------------------------

    async def add_connection(
        self,
        ns: str,
        connection_id: str,
        provider_id: str,
        *,
        name: str | None = None,
        api_key_env: str | None = None,
        settings: dict[str, Any] | None = None,
        alias: str | None = None,
        is_active: bool = True,
    ) -> Connection:
        """Register a connection; the API key stays in the environment variable it names.

        Raises:
            Invalid: a field breaks a rule. Conflict: the id or the alias is taken.
        """
        at = now()
        conn = _connection(
            id=connection_id,
            provider_id=provider_id,
            name=name,
            api_key_env=api_key_env,
            settings=settings or {},
            created_at=at,
            alias=alias,
            is_active=is_active,
            updated_at=at,
        )
        async with self.store.write() as tx:
            await _check_connection_alias(tx, ns, conn)
            await tx.add_connection(ns, conn)
        return conn

    async def get_connection(self, ns: str, ref: str) -> Connection:
        """A connection by id, else by alias.

        Raises:
            NotFound: no connection has this id or alias.
        """
        _check_ref(ref, "connection")
        async with self.store.read(snapshot=False) as tx:
            found = await _find_connection(tx, ns, ref)
        if found is None:
            raise NotFound(f"connection {ref!r} does not exist")
        return found

    async def update_connection(
        self,
        ns: str,
        ref: str,
        *,
        name: str | None,
        alias: str | None,
        api_key_env: str | None,
        settings: dict[str, Any],
        is_active: bool,
        provider_id: str | None = None,
    ) -> Connection:
        """Replace a connection's name, alias, key variable, settings and state (PUT).

        Raises:
            NotFound: no such connection. Invalid: a field breaks a rule, or ``provider_id``
            differs (it cannot change). Conflict: the alias is taken.
        """
        _check_ref(ref, "connection")
        async with self.store.write() as tx:
            current = await _find_connection(tx, ns, ref)
            if current is None:
                raise NotFound(f"connection {ref!r} does not exist")
            if provider_id is not None and provider_id != current.provider_id:
                raise Invalid(f"providerId: cannot change from {current.provider_id!r} after creation")
            conn = _connection(
                **{
                    **current.model_dump(),
                    "name": name,
                    "alias": alias,
                    "api_key_env": api_key_env,
                    "settings": settings,
                    "is_active": is_active,
                }
            )
            if conn == current:
                return current
            conn.version, conn.updated_at = current.version + 1, now()
            await _check_connection_alias(tx, ns, conn)
            await tx.update_connection(ns, conn)
        return conn

    async def list_connections(self, ns: str) -> list[Connection]:
        """All connections of the namespace."""
        async with self.store.read() as tx:
            return await tx.connections(ns)

    async def alias_owner(self, ns: str, alias: str) -> str | None:
        """The id of the profile that holds ``alias`` (as alias or id), or None when it is free."""
        _check_ref(alias, "alias")
        async with self.store.read(snapshot=False) as tx:
            return await tx.alias_owner(ns, alias)

    async def assistant_page(
        self,
        ns: str,
        *,
        text: str | None = None,
        capability: str | None = None,
        skip: int = 0,
        take: int = 100,
    ) -> tuple[int, list[Profile]]:
        """Assistant profiles by id, optionally filtered; the total that match, and one page."""
        if capability not in (None, "chat", "embedding"):
            raise Invalid("capability: must be 'chat' or 'embedding'")
        if skip < 0 or not 0 <= take <= MAX_LIST * 5:
            raise Invalid(f"skip: must be 0 or more; take: must be between 0 and {MAX_LIST * 5}")
        if text is not None and len(text) > 200:
            raise Invalid("filter: at most 200 characters")
        async with self.store.read() as tx:
            return await tx.assistant_page(ns, capability=capability, text=text or None, skip=skip, take=take)

    async def remove_connection(self, ns: str, connection_id: str) -> None:
        """Remove a connection no assistant profile uses.

        Raises:
            NotFound: no such connection. Conflict: assistant profiles still use it.
        """
        async with self.store.write() as tx:
            users = await tx.connection_users(ns, connection_id)
            if users:
                raise Conflict(
                    f"connection {connection_id!r} is used by {', '.join(users)}; change them first"
                )
            if not await tx.remove_connection(ns, connection_id):
                raise NotFound(f"connection {connection_id!r} does not exist")

    # ---- export / import / stats --------------------------------------------------

    async def export(self, ns: str, refs: Iterable[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        """One record per profile: the document, every revision and every data item."""
        ids = list(refs) if refs is not None else None
        if ids is None:
            ids, cursor = [], None
            while True:
                page, cursor = await self.list_profiles(ns, limit=MAX_LIST, cursor=cursor)
                ids.extend(p.id for p in page)
                if cursor is None:
                    break
        for ref in ids:
            async with self.store.read() as tx:
                pk, profile = await located(tx, ns, ref)
                rows = await tx.export_rows(ns, pk)
            yield {"profile": profile.model_dump(mode="json"), **rows}

    async def import_records(self, ns: str, records: Sequence[tuple[int, ImportRecord]]) -> list[str]:
        """Restore checked export records (:func:`exchange.parse_export`) exactly, all in one
        transaction: one that cannot be restored leaves nothing of the others.

        Raises:
            Conflict: a profile, alias or data item already exists (naming the line).
            Invalid: a connection an assistant names does not exist (naming the line).
        """
        restored = []
        async with self.store.write() as tx:
            for n, record in records:
                try:
                    restored.append(await self._restore(tx, ns, record))
                except ProfilesError as e:
                    e.message = f"line {n}: {e.message}"
                    raise
        return restored

    async def _restore(self, tx: WriteOps, ns: str, record: ImportRecord) -> str:
        profile = record.profile
        if await tx.locate(ns, profile.id) is not None:
            raise Conflict(f"profile {profile.id!r} already exists; delete it first to import over it")
        await self._check_references(tx, ns, None, profile)
        pk = await tx.insert_profile(ns, profile)
        for rev in record.revisions:
            await tx.add_revision(
                ns,
                pk,
                rev.snapshot.model_copy(update={"updated_at": rev.changed_at}),
                actor=rev.actor,
                reason=rev.reason,
                changes=rev.changes,
            )
        for item in record.data_items:
            await tx.add_item(
                item.id,
                ns,
                pk,
                item.sha256,
                item.content,
                item.input_type,
                item.created_at,
                attempts=item.attempts,
                size=item.bytes if item.content_deleted_at else None,
            )
            if item.content_deleted_at:
                await tx.set_content_deleted(item.id, item.content_deleted_at)
            await tx.set_items_status(
                [item.id],
                "pending" if item.status == "processing" else item.status,
                at=item.updated_at,
                error=item.error,
                result=item.result,
                usage=[item.usage.model_dump()],
            )
        return profile.id

    async def stats(self, ns: str) -> dict[str, Any]:
        """Counts of profiles, versions, items by status, and token totals."""
        async with self.store.read() as tx:
            result = await tx.stats(ns)
            result["top_profiles_by_tokens"] = await tx.token_usage_by_profile(ns)
        c = self.config
        result["prompt_cache"] = prompt_cache_report(
            c.model,
            c.cache_min_tokens,
            {"user": c.user_topics, "assistant": c.assistant_topics},
            c.allow_sensitive,
            c.prompts_dir,
        )
        return result


def _connection(**fields: Any) -> Connection:
    try:
        return Connection(**fields)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        raise Invalid(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


async def _find_connection(tx: ReadOps, ns: str, ref: str) -> Connection | None:
    found = await tx.connection(ns, ref)
    if found is None:  # connections are few, and managed by people: a scan is fine
        found = next((c for c in await tx.connections(ns) if c.alias == ref), None)
    return found


async def _check_connection_alias(tx: ReadOps, ns: str, conn: Connection) -> None:
    if conn.alias is None:
        return
    for other in await tx.connections(ns):
        if other.id != conn.id and conn.alias in (other.alias, other.id):
            raise Conflict(f"alias {conn.alias!r} is already used by connection {other.id!r}")
