"""Extraction jobs: raw data is stored first, then turned into profile versions.

The ``data_items`` table is the queue. ``submit`` writes the item before any model is
called, so nothing accepted is lost; ``process`` claims a profile's pending items,
coalesces them into as few model calls as the token budget allows, and writes each
result — new version, revision and item statuses — in one transaction. A claim records
its owner process, so a restarted server puts back what a crashed one was doing, while
work held by another live process is left alone until its lease runs out.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from .config import Config
from .errors import ExtractionFailed, Invalid, NotFound, ProfilesError, TooLarge
from .extract import (
    DataChunk,
    Extraction,
    build_request,
    estimate_tokens,
    extract,
    parse_sampling_text,
    plan_batches,
    sampling_messages,
    split_data,
)
from .forgetting import contributors
from .llm import LLM, Usage
from .merge import DROP_REASONS, merge_extraction
from .models import PROFILE_ID_RE, Kind, Profile, now
from .patching import check_limits
from .prompts import load_prompt
from .service import ProfileService
from .store import DataItem, ProfileStore

__all__ = ["NO_BACKEND", "Extractor", "JobResult"]

log = logging.getLogger("mcp_profiles")

NO_BACKEND = (
    "no extraction backend is configured, so the data is stored and waits: set ANTHROPIC_API_KEY in the "
    "server's environment (or use an MCP client that supports sampling) and call upsert_profile_from_data "
    "again, or run 'mcp-profiles process' with the key set"
)

Progress = Callable[[float, float, str], Awaitable[None]]
OnChange = Callable[[str, str], Awaitable[None]]


@dataclass
class JobResult:
    """The outcome of one data item, as the tools report it."""

    job_id: str
    profile_id: str
    status: str
    version: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=lambda: Usage().as_dict())
    error: str | None = None

    @classmethod
    def from_item(cls, item: DataItem, status: str | None = None) -> JobResult:
        """What a stored item says about its job."""
        result = item.result or {}
        return cls(
            job_id=item.id,
            profile_id=item.profile_id,
            status=status or item.status,
            version=int(result.get("version", 0)),
            changes=list(result.get("changes", [])),
            conflicts=list(result.get("conflicts", [])),
            dropped=dict(result.get("dropped", {})),
            usage=dict(item.usage),
            error=item.error,
        )


@dataclass
class _Progress:
    changes: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    usage: Usage = field(default_factory=Usage)
    chunks_left: int = 0
    version: int = 0


def _share(usage: Usage, weights: list[int]) -> list[Usage]:
    """Split one call's usage over the items in it, by their share of the data."""
    total = sum(weights) or 1
    fields_ = (
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    )
    parts: list[dict[str, int]] = [{} for _ in weights]
    for name in fields_:
        value = getattr(usage, name)
        given = [value * w // total for w in weights]
        given[0] += value - sum(given)
        for part, n in zip(parts, given, strict=True):
            part[name] = n
    return [Usage(**p) for p in parts]


def _alive(owner: str | None) -> bool:
    """Whether a claim's owner process (not this one) still runs; only knowable on this host."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    if int(pid) == os.getpid():  # our pid, not our claim: a restart reused it (pid 1 in a container)
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Extractor:
    """Submits data and runs extraction for one store; one per process."""

    def __init__(
        self,
        store: ProfileStore,
        service: ProfileService,
        config: Config,
        llm: LLM | None,
        *,
        on_change: OnChange | None = None,
        lease_seconds: float = 600.0,
    ) -> None:
        self.store = store
        self.service = service
        self.config = config
        self.llm = llm
        self.on_change = on_change
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = anyio.Event()
        # What the client's model was shown for a data sample (by namespace and sha256).
        self._sampled: dict[tuple[str, str], set[str]] = {}

    # ---- submitting ---------------------------------------------------------------

    def check_data(self, data: str, input_type: str | None) -> None:
        """Raises Invalid or TooLarge for data the server will not store."""
        if not isinstance(data, str) or not data.strip():
            raise Invalid("data: must be non-empty text (a chat history, description, JSON, markdown…)")
        if "\x00" in data:
            raise Invalid("data: contains NUL characters; send text")
        size = len(data.encode("utf-8", "surrogatepass"))
        if size > self.config.limits.max_data_bytes:
            raise TooLarge(
                f"data: {size} bytes exceeds the limit of {self.config.limits.max_data_bytes}; "
                "send it in several calls (each is merged into the profile)"
            )
        if input_type is not None and (len(input_type) > 100 or not input_type.isprintable()):
            raise Invalid("input_type: at most 100 printable characters, e.g. 'chat history'")

    async def submit(
        self, ns: str, ref: str, data: str, input_type: str | None, kind: Kind | None
    ) -> tuple[DataItem, bool, bool]:
        """Store data for a profile (creating a user profile when missing).

        Returns (item, duplicate, created). The same data twice for one profile is a
        duplicate and costs nothing; data whose earlier attempt failed is queued again.
        """
        self.check_data(data, input_type)
        if kind not in (None, "user", "assistant"):
            raise Invalid("kind: must be 'user' or 'assistant'")
        sha = hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()
        at = now()
        created = False
        async with self.store.write() as tx:
            found = await tx.locate(ns, ref)
            if found is None:
                if kind == "assistant":
                    raise Invalid(
                        f"profile: assistant {ref!r} does not exist; create it with update_profile (alias, name, "
                        "model, connection_id) before sending a character description"
                    )
                await self.service.create_in(
                    tx, ns, ref, {}, "user", False, at, "extraction", "created by upsert_profile_from_data"
                )
                found = await tx.locate(ns, ref)
                created = True
            if found is None:  # create_in just inserted it in this transaction
                raise RuntimeError(f"profile {ref!r} vanished inside its own write transaction")
            pk, profile = found
            if kind is not None and kind != profile.kind:
                raise Invalid(f"kind: profile {profile.id!r} is a {profile.kind} profile")
            existing = await tx.item_by_sha(pk, sha)
            if existing is not None:
                if existing.status != "failed":
                    return existing, True, False
                await tx.requeue([existing.id])
                item_id = existing.id
            else:
                item_id = f"d_{uuid.uuid4().hex[:20]}"
                await tx.add_item(item_id, ns, pk, sha, data, input_type, at)
            [item] = await tx.items_by_id([item_id])
        self._wake.set()
        return item, False, created

    async def job(self, ns: str, job_id: str) -> JobResult:
        """The state of a job (a data item)."""
        if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
            raise Invalid("job_id: the job_id returned by upsert_profile_from_data")
        async with self.store.read() as tx:
            item = await tx.item(ns, job_id)
        if item is None:
            raise NotFound(f"job {job_id!r} does not exist (or its profile was deleted)")
        return JobResult.from_item(item)

    # ---- processing ---------------------------------------------------------------

    async def process(self, ns: str, pk: int, progress: Progress | None = None) -> list[JobResult]:
        """Claim and extract every pending item of one profile; returns their results."""
        if self.llm is None:
            raise ExtractionFailed(NO_BACKEND)
        async with self.store.write() as tx:
            ids = await tx.claim_items(ns, pk, self.owner, time.time())
            items = await tx.items_by_id(ids)
            profile = await tx.profile_by_key(pk)
        if not items or profile is None:
            return []
        return await self.run_items(ns, pk, profile.kind, items, self.llm, progress)

    async def run_items(
        self, ns: str, pk: int, kind: Kind, items: list[DataItem], llm: LLM, progress: Progress | None = None
    ) -> list[JobResult]:
        """Extract claimed items in as few calls as the budget allows.

        Whatever interrupts the work (a cancelled ``wait: true`` call, a database error)
        puts the items it claimed and did not finish back in the queue.
        """
        try:
            return await self._run_items(ns, pk, kind, items, llm, progress)
        except BaseException:
            with anyio.CancelScope(shield=True):
                async with self.store.write() as tx:
                    current = await tx.items_by_id([item.id for item in items])
                    await tx.requeue([item.id for item in current if item.status == "processing"])
            raise

    async def _run_items(
        self, ns: str, pk: int, kind: Kind, items: list[DataItem], llm: LLM, progress: Progress | None
    ) -> list[JobResult]:
        budget = max(500, self.config.batch_tokens)
        chunks: list[DataChunk] = []
        for item in items:
            chunks += [
                DataChunk(item.id, item.input_type, piece) for piece in split_data(item.content, budget)
            ]
        state = {item.id: _Progress() for item in items}
        for chunk in chunks:
            state[chunk.data_id].chunks_left += 1
        batches = plan_batches([(str(i), estimate_tokens(c.text)) for i, c in enumerate(chunks)], budget)
        system = load_prompt(kind, self.config.prompts_dir)
        catalogue = self.config.user_topics if kind == "user" else self.config.assistant_topics
        failed: str | None = None
        for n, batch in enumerate(batches):
            part = [chunks[int(i)] for i in batch]
            if progress is not None:
                await progress(n, len(batches), f"extracting part {n + 1} of {len(batches)}")
            try:
                async with self.store.read() as tx:
                    profile = await tx.profile_by_key(pk)
                if profile is None:
                    return []
                request = build_request(
                    kind,
                    profile,
                    part,
                    system=system,
                    catalogue=catalogue,
                    allow_sensitive=self.config.allow_sensitive,
                    max_tokens=self.config.max_output_tokens,
                )
                extraction, usage = await extract(llm, request)
            except ExtractionFailed as e:
                usage = getattr(e, "usage", Usage())
                self._account(state, part, usage)
                failed = e.message
                break
            self._account(state, part, usage)
            try:
                await self._apply(ns, pk, extraction, part, state, contributors(profile))
            except ExtractionFailed as e:  # e.g. the merge would exceed the document limit
                failed = e.message
                break
        if failed is not None:
            left = [i for i, s in state.items() if s.chunks_left > 0]
            async with self.store.write() as tx:
                for item_id in left:
                    await tx.set_items_status(
                        [item_id],
                        "failed",
                        at=now(),
                        error=failed,
                        usage=[state[item_id].usage.as_dict()],
                        attempt=True,
                    )
        if progress is not None:
            await progress(len(batches), len(batches), "done" if failed is None else "failed")
        async with self.store.read() as tx:
            final = await tx.items_by_id([item.id for item in items])
        return [JobResult.from_item(item) for item in final]

    @staticmethod
    def _account(state: dict[str, _Progress], part: list[DataChunk], usage: Usage) -> None:
        for chunk, share in zip(part, _share(usage, [estimate_tokens(c.text) for c in part]), strict=True):
            state[chunk.data_id].usage = state[chunk.data_id].usage + share

    async def _apply(
        self,
        ns: str,
        pk: int,
        extraction: Extraction,
        part: list[DataChunk],
        state: dict[str, _Progress],
        seen: set[str] | None = None,
    ) -> None:
        """Merge one answer and write version, revision and finished items in one transaction.

        ``seen`` are the data items behind the profile the model was shown. Whatever
        forget_data erased since the request was built is left out: an erased item's
        quotes no longer ground anything, and a summary written from a profile that held
        erased values is dropped.
        """
        at = now()
        async with self.store.write() as tx:
            current = await tx.profile_by_key(pk)
            if current is None:
                return
            seen = seen or set()
            present = await tx.existing_items(pk, {c.data_id for c in part} | seen)
            part = [c for c in part if c.data_id in present]
            if not part:
                return
            if not seen <= present:
                extraction = extraction.model_copy(update={"summary": None})
            ids = list(dict.fromkeys(c.data_id for c in part))
            merged = merge_extraction(
                current,
                extraction,
                part,
                confidence_floor=self.config.confidence_floor,
                allow_sensitive=self.config.allow_sensitive,
                at=at,
                limits=self.config.limits,
            )
            version = current.version
            if merged.changes:
                new: Profile = merged.profile
                try:
                    check_limits(new, self.config.limits)
                except ProfilesError:
                    raise ExtractionFailed(
                        "the merged profile would exceed the document size limit"
                    ) from None
                version = current.version + 1
                new.version, new.updated_at = version, at
                if new.summary != current.summary and new.summary_source == "extracted":
                    new.summary_data_ids = sorted(set(ids) | seen | contributors(current))
                await tx.update_profile(ns, pk, new, current.version)
                await tx.add_revision(
                    ns,
                    pk,
                    new,
                    actor="extraction",
                    reason=f"data {', '.join(ids)}",
                    changes=[dict(c) for c in merged.changes],
                )
            for chunk in part:
                s = state[chunk.data_id]
                s.chunks_left -= 1
            for item_id in ids:
                s = state[item_id]
                s.changes += [dict(c) for c in merged.changes]
                s.conflicts += [dict(c) for c in merged.conflicts]
                for reason, count in merged.dropped.items():
                    s.dropped[reason] = s.dropped.get(reason, 0) + count
                s.version = version
                if s.chunks_left == 0:
                    result = {
                        "version": version,
                        "changes": s.changes,
                        "conflicts": s.conflicts,
                        "dropped": s.dropped,
                    }
                    await tx.set_items_status(
                        [item_id], "done", at=at, result=result, usage=[s.usage.as_dict()], attempt=True
                    )
                    if self.config.keep_data_days == 0:  # retention: no raw content after processing
                        await tx.delete_contents([item_id], at)
        if merged.changes and self.on_change is not None:
            await self.on_change(ns, current.id)

    async def wait_for(self, ns: str, item: DataItem, progress: Progress | None = None) -> JobResult:
        """Process a just-submitted item now (with its profile's other pending items) and
        return its result; if another worker holds it, wait for that worker to finish."""
        for result in await self.process(ns, item.profile_pk, progress):
            if result.job_id == item.id:
                return result
        with anyio.fail_after(self.lease_seconds):
            while True:
                async with self.store.read() as tx:
                    current = await tx.item(ns, item.id)
                if current is None:
                    raise NotFound(
                        f"job {item.id!r} disappeared: its profile was deleted or the data was forgotten"
                    )
                if current.status in ("done", "failed"):
                    return JobResult.from_item(current)
                if current.status == "pending":
                    await self.process(ns, item.profile_pk, progress)
                else:
                    await anyio.sleep(0.05)

    async def sampling_request(
        self, ns: str, ref: str, data: str, input_type: str | None, kind: str | None
    ) -> tuple[str, str, int] | None:
        """(system prompt, user text, max tokens) for the client's model, or None when the
        data is a duplicate or too large for one request. Reads only: the resolver that
        calls this may run twice."""
        self.check_data(data, input_type)
        sha = hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()
        async with self.store.read() as tx:
            found = await tx.locate(ns, ref)
            existing = await tx.item_by_sha(found[0], sha) if found is not None else None
            if existing is not None and existing.status != "failed":  # a failed one is tried again
                return None
        self._sampled[(ns, sha)] = contributors(found[1]) if found else set()
        while len(self._sampled) > 1000:
            self._sampled.pop(next(iter(self._sampled)))
        if estimate_tokens(data) > max(500, self.config.batch_tokens):
            return None
        profile_kind: Kind = found[1].kind if found else ("assistant" if kind == "assistant" else "user")
        profile = (
            found[1] if found else Profile(id=ref if PROFILE_ID_RE.match(ref) else "new", kind=profile_kind)
        )
        catalogue = self.config.user_topics if profile_kind == "user" else self.config.assistant_topics
        request = build_request(
            profile_kind,
            profile,
            [DataChunk("new", input_type, data)],
            system=load_prompt(profile_kind, self.config.prompts_dir),
            catalogue=catalogue,
            allow_sensitive=self.config.allow_sensitive,
            max_tokens=self.config.max_output_tokens,
        )
        system, user_text = sampling_messages(request)
        return system, user_text, request.max_tokens

    async def from_sample(self, ns: str, item: DataItem, text: str) -> JobResult:
        """Merge the client model's answer for a stored item (one sampling round, no repair)."""
        try:
            extraction = parse_sampling_text(text)
        except ExtractionFailed as e:
            async with self.store.write() as tx:
                await tx.set_items_status(
                    [item.id],
                    "failed",
                    at=now(),
                    error=f"the client's model: {e.message}",
                    usage=[Usage(requests=1).as_dict()],
                    attempt=True,
                )
                [failed] = await tx.items_by_id([item.id])
            return JobResult.from_item(failed)
        state = {item.id: _Progress(chunks_left=1, usage=Usage(requests=1))}
        try:
            await self._apply(
                ns,
                item.profile_pk,
                extraction,
                [DataChunk(item.id, item.input_type, item.content)],
                state,
                self._sampled.pop((ns, item.sha256), None),
            )
        except ExtractionFailed as e:  # the merge could not be written: record why, keep the data
            async with self.store.write() as tx:
                await tx.set_items_status(
                    [item.id],
                    "failed",
                    at=now(),
                    error=e.message,
                    usage=[Usage(requests=1).as_dict()],
                    attempt=True,
                )
                [failed] = await tx.items_by_id([item.id])
            return JobResult.from_item(failed)
        async with self.store.read() as tx:
            done = await tx.items_by_id([item.id])
        if not done:
            raise NotFound(f"job {item.id!r} disappeared: its profile was deleted or the data was forgotten")
        return JobResult.from_item(done[0])

    # ---- the background worker ----------------------------------------------------

    def wake(self) -> None:
        """Ask the worker to look at the queue now."""
        self._wake.set()

    async def recover(self) -> int:
        """Requeue items whose owner died, or whose lease ran out."""
        async with self.store.write() as tx:
            stale = [
                item_id
                for item_id, owner, at in await tx.processing_claims()
                if (owner != self.owner and not _alive(owner)) or (at or 0) < time.time() - self.lease_seconds
            ]
            if stale:
                await tx.requeue(stale)
        if stale:
            log.warning("requeued %d interrupted data item(s)", len(stale))
        return len(stale)

    async def _ready(self, ns: str, pk: int) -> bool:
        """Whether a profile's pending items are worth a call now: together they reach
        ``min_batch_tokens``, or the oldest has waited ``max_batch_wait`` seconds."""
        async with self.store.read() as tx:
            pending = await tx.items_for(ns, pk, ["pending"])
        if not pending:
            return False
        if sum(estimate_tokens(i.content) for i in pending) >= self.config.min_batch_tokens:
            return True
        oldest = datetime.fromisoformat(min(i.created_at for i in pending).replace("Z", "+00:00"))
        return (datetime.now(UTC) - oldest).total_seconds() >= self.config.max_batch_wait

    async def drain(self, *, flush: bool = True, namespace: str | None = None) -> int:
        """Process every profile with pending items (of one namespace, when given); returns
        how many items were processed. A profile that fails is skipped, not the whole queue.

        With ``flush=False`` (the background worker), a profile whose pending items are
        below ``Config.min_batch_tokens`` waits (up to ``max_batch_wait``) so that more
        items can share its call; a caller waiting on an item never waits (``wait_for``).
        """
        if self.llm is None:
            return 0
        done = 0
        while True:
            async with self.store.read() as tx:
                queued = await tx.queued_profiles()
            if not flush and self.config.min_batch_tokens > 0:
                queued = [(ns, pk) for ns, pk in queued if await self._ready(ns, pk)]
            if not queued:
                return done
            progressed = False
            for ns, pk in queued:
                if namespace is not None and ns != namespace:
                    continue
                try:
                    processed = len(await self.process(ns, pk))
                except Exception:  # one bad profile must not stop the queue
                    log.exception("extraction of a queued profile failed")
                    continue
                done += processed
                progressed = progressed or processed > 0
            if not progressed:
                return done

    async def retry_failed(self, ns: str, ref: str | None = None) -> int:
        """Queue failed items again (of one profile, or of the namespace)."""
        async with self.store.write() as tx:
            pk = None
            if ref is not None:
                found = await tx.locate(ns, ref)
                if found is None:
                    raise NotFound(f"profile {ref!r} does not exist")
                pk = found[0]
            ids = await tx.failed_item_ids(ns, pk)
            await tx.requeue(ids)
        return len(ids)

    async def run_worker(self, poll_seconds: float = 30.0) -> None:
        """Resume interrupted work, then process the queue whenever woken (runs until cancelled)."""
        await self.recover()
        while True:
            await self.drain(flush=False)
            with anyio.move_on_after(poll_seconds):
                await self._wake.wait()
            self._wake = anyio.Event()
            await self.recover()
