"""Extraction jobs: raw data is stored first, then turned into profile versions.

The ``data_items`` table is the queue. ``upsert`` is the whole of the tool: it stores the
item before any model is called, so nothing accepted is lost, and decides what happens next
(duplicate, pending, accepted, or extracted now); adapters only render its outcome.
``process`` claims a profile's oldest pending items (capped by their stored token
estimates), asks the model batch by batch, and merges every answer in one transaction at
the end, so a call that fails anywhere changes nothing. A claim carries a token of its
owner; its lease is renewed while the work runs, every completion is conditional on it,
and a result is applied only if, in its write transaction, the claim still holds for the
same namespace and profile. A model that is only unavailable (429, 529, 5xx, a timeout)
sends the item back to the queue with backoff. A restarted server puts back what a crashed
one was doing; work held by another live process is left alone while it renews its lease.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import anyio

from .accounting import _Progress, _share
from .applying import OnChange, apply_answers, backoff, merge_part, record_failure
from .cache_limits import cache_minimum
from .claims import _OWNERS, _alive, _Discarded, host_identity
from .config import Config
from .contract import Store
from .errors import ExtractionFailed, Invalid, NotFound, Timeout, TooLarge
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
from .job_results import NO_BACKEND, JobResult, UpsertOutcome, UpsertStatus, _done_message
from .llm import LLM, LLMRequest, Usage
from .merge import MergeResult
from .models import Kind, Profile, now
from .prompts import load_prompt
from .service import ProfileService
from .store import DataItem

__all__ = [
    "NO_BACKEND",
    "Extractor",
    "JobResult",
    "OnChange",
    "UpsertOutcome",
    "UpsertStatus",
    "backoff",
    "host_identity",
]

log = logging.getLogger("mcp_profiles")

Progress = Callable[[float, float, str], Awaitable[None]]


class Extractor:
    """Submits data and runs extraction for one store; one per process."""

    def __init__(
        self,
        store: Store,
        service: ProfileService,
        config: Config,
        llm: LLM | None,
        *,
        on_change: OnChange | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.service = service
        self.config = config
        self.llm = llm
        self.on_change = on_change
        self.lease_seconds = config.lease_seconds if lease_seconds is None else lease_seconds
        self.host = host_identity(config.host_id)
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease_due: float | None = None  # when the next claim of another owner expires
        self._claims = 0
        _OWNERS.add(self.owner)
        self._live: set[str] = set()  # claim tokens this process is working on now
        self._settled: dict[str, anyio.Event] = {}  # item id -> set when this process lets it go
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

    async def upsert(
        self,
        ns: str,
        ref: str,
        data: str,
        input_type: str | None = None,
        kind: Kind | None = None,
        *,
        wait: bool = True,
        sampled: str | None = None,
        declined: str | None = None,
        progress: Progress | None = None,
    ) -> UpsertOutcome:
        """The whole of ``upsert_profile_from_data``: store the data, then decide.

        A duplicate costs nothing; without a backend the data waits (``pending``); with
        ``wait=False`` the worker takes it (``accepted``); otherwise it is extracted now, or
        merged from ``sampled``, the client's model's answer. ``declined`` is the client's
        reason for refusing to sample: the data waits.

        Raises:
            Invalid, TooLarge: the data or arguments are refused (nothing is stored).
            NotFound: the profile was deleted while its data was extracted.
            Timeout: another worker held the data longer than the lease.
        """
        item, duplicate, created = await self.submit(ns, ref, data, input_type, kind)
        if declined is not None:
            return await self._waiting(
                item,
                created,
                "pending",
                f"stored as job {item.id}, but nothing was extracted: the client's model was asked (MCP "
                f"sampling) and did not answer ({declined}). The data is kept pending; send the same data "
                "again to ask again, or run 'mcp-profiles process' with ANTHROPIC_API_KEY set",
            )
        if sampled is not None and item.status == "pending":  # stored by the sampling round, now answered
            return self._finished(await self.from_sample(ns, item, sampled), created)
        if duplicate:
            return await self._waiting(
                item,
                created,
                "duplicate",
                f"this data was already received for {item.profile_id!r} as job {item.id} ({item.status}); "
                "no model call was made",
            )
        if self.llm is None:
            return await self._waiting(item, created, "pending", f"stored as job {item.id}, but {NO_BACKEND}")
        if not wait:
            self.wake()
            return await self._waiting(
                item, created, "accepted", f"accepted for processing as job {item.id}; follow it with get_job"
            )
        return self._finished(await self.wait_for(ns, item, progress), created)

    async def _waiting(
        self, item: DataItem, created: bool, status: UpsertStatus, message: str
    ) -> UpsertOutcome:
        job = JobResult.from_item(item)
        if not job.version:
            async with self.store.read(snapshot=False) as tx:
                profile = await tx.profile_by_key(item.profile_pk)
            job.version = profile.version if profile else 0
        return UpsertOutcome(status, message, job, created)

    @staticmethod
    def _finished(job: JobResult, created: bool) -> UpsertOutcome:
        if job.status == "failed":
            return UpsertOutcome(
                "failed",
                f"{job.error} (the data is kept as job {job.job_id}; send the same data again to retry, "
                "or run 'mcp-profiles process --retry-failed')",
                job,
                created,
            )
        if job.status != "done":  # waiting for a retry after the model was unavailable
            return UpsertOutcome(
                "pending",
                f"not extracted yet: {job.error}; the data is kept as job {job.job_id} and is tried again "
                f"automatically from {job.next_attempt_at}; follow it with get_job",
                job,
                created,
            )
        return UpsertOutcome("updated" if job.changes else "unchanged", _done_message(job), job, created)

    async def job(self, ns: str, job_id: str) -> JobResult:
        """The state of a job (a data item)."""
        if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
            raise Invalid("job_id: the job_id returned by upsert_profile_from_data")
        async with self.store.read() as tx:
            item = await tx.item(ns, job_id)
        if item is None:
            raise NotFound(
                f"job {job_id!r} does not exist (or its profile was deleted, or the data was forgotten)"
            )
        return JobResult.from_item(item)

    # ---- processing ---------------------------------------------------------------

    def _claim_token(self) -> str:
        """A token for one claim: this process's owner id plus a counter, so that two claims of
        this process (an item requeued and claimed again) are told apart too."""
        self._claims += 1
        return f"{self.owner}:{self._claims}"

    def _mine(self, token: str | None) -> bool:
        return bool(token) and (token or "").startswith(self.owner + ":")

    async def process(
        self, ns: str, pk: int, progress: Progress | None = None, *, due_only: bool = False
    ) -> list[JobResult]:
        """Claim and extract the pending items of one profile (with ``due_only``, not those
        waiting for a later retry); returns their results."""
        if self.llm is None:
            raise ExtractionFailed(NO_BACKEND)
        token = self._claim_token()
        async with self.store.write() as tx:
            at = time.time()
            ids = await tx.claim_items(
                ns,
                pk,
                token,
                at,
                max_tokens=8 * max(500, self.config.batch_tokens),
                due=at if due_only else None,
            )
            items = await tx.items_by_id(ids)
            profile = await tx.profile_by_key(pk)
        if not items or profile is None:
            return []
        return await self.run_items(ns, pk, profile, items, self.llm, token, progress)

    def _cache_minimum(self, llm: LLM | None) -> int:
        """The prefix length extraction prompts are built to reach (see ``cache_limits``)."""
        model = llm.name if llm is not None else self.config.model
        return cache_minimum(model, self.config.cache_min_tokens)

    async def run_items(
        self,
        ns: str,
        pk: int,
        profile: Profile,
        items: list[DataItem],
        llm: LLM,
        token: str,
        progress: Progress | None = None,
    ) -> list[JobResult]:
        """Extract claimed items in as few calls as the budget allows.

        Whatever interrupts the work (a cancelled ``wait: true`` call, a database error)
        puts the items it claimed and did not finish back in the queue.
        """
        self._live.add(token)
        try:
            return await self._run_items(ns, pk, profile, items, llm, token, progress)
        except _Discarded:
            log.warning("discarded an extraction result: its data items were deleted or claimed again")
            async with (
                self.store.write() as tx
            ):  # what is left of the claim (others were forgotten) goes back
                await tx.requeue([item.id for item in items], owner=token)
            self.wake()
            async with self.store.read() as tx:
                return [JobResult.from_item(item) for item in await tx.items_by_id([i.id for i in items])]
        except BaseException:
            with anyio.CancelScope(shield=True):
                async with self.store.write() as tx:
                    await tx.requeue([item.id for item in items], owner=token)
            raise
        finally:
            self._live.discard(token)
            self._settle([item.id for item in items])

    def _settle(self, ids: list[str]) -> None:
        """Wake whoever in this process waits for these items (done, failed, or let go)."""
        for item_id in ids:
            event = self._settled.pop(item_id, None)
            if event is not None:
                event.set()

    async def _renew(self, token: str) -> None:
        """Extend this claim's lease; raise _Discarded when the claim no longer holds."""
        async with self.store.write() as tx:
            held = await tx.renew_claim(token, time.time())
        if not held:
            raise _Discarded

    async def _extract_keeping_claim(
        self, llm: LLM, request: LLMRequest, token: str
    ) -> tuple[Extraction, Usage]:
        """One model call (with its repair), renewing the claim's lease as it starts and while
        it runs, so that the lease counts from the call, not from the claim (a fresh replica's
        first call may start a second after it claimed), and a call longer than the lease is
        never taken for abandoned work."""
        await self._renew(token)
        lost = False
        outcome: tuple[Extraction, Usage] | None = None
        error: BaseException | None = None
        async with anyio.create_task_group() as tg:

            async def keep() -> None:
                nonlocal lost
                while True:
                    await anyio.sleep(max(0.05, self.lease_seconds / 3))
                    try:
                        await self._renew(token)
                    except _Discarded:
                        lost = True
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(keep)
            try:
                outcome = await extract(llm, request)
            except Exception as e:  # re-raised outside the task group, unwrapped
                error = e
            tg.cancel_scope.cancel()
        if lost:
            raise _Discarded
        if error is not None:
            raise error
        assert outcome is not None
        return outcome

    async def _run_items(
        self,
        ns: str,
        pk: int,
        profile: Profile,
        items: list[DataItem],
        llm: LLM,
        token: str,
        progress: Progress | None,
    ) -> list[JobResult]:
        """Ask the model batch by batch, then merge every answer in one transaction.

        Each request sees the profile as the earlier answers would leave it (merged in
        memory), but nothing is written until the last answer is in: a call that fails at
        any batch changes nothing, and its items fail (or are retried) together.
        """
        budget = max(500, self.config.batch_tokens)
        chunks: list[DataChunk] = []
        for item in items:
            chunks += [
                DataChunk(item.id, item.input_type, piece) for piece in split_data(item.content, budget)
            ]
        state = {item.id: _Progress() for item in items}
        batches = plan_batches([(str(i), estimate_tokens(c.text)) for i, c in enumerate(chunks)], budget)
        system = load_prompt(profile.kind, self.config.prompts_dir, self._cache_minimum(llm))
        catalogue = self.config.user_topics if profile.kind == "user" else self.config.assistant_topics
        answers: list[tuple[list[DataChunk], Extraction]] = []
        working = profile
        failure: ExtractionFailed | None = None
        for n, batch in enumerate(batches):
            part = [chunks[int(i)] for i in batch]
            if progress is not None:
                await progress(n, len(batches), f"extracting part {n + 1} of {len(batches)}")
            request = build_request(
                profile.kind,
                working,
                part,
                system=system,
                catalogue=catalogue,
                allow_sensitive=self.config.allow_sensitive,
                max_tokens=self.config.max_output_tokens,
            )
            try:
                extraction, usage = await self._extract_keeping_claim(llm, request, token)
            except ExtractionFailed as e:
                self._account(state, part, getattr(e, "usage", Usage()))
                failure = e
                break
            self._account(state, part, usage)
            answers.append((part, extraction))
            working = self._merge(working, extraction, part, now()).profile
            if n + 1 < len(batches):
                await self._renew(token)
        if failure is None:
            try:
                await self._commit(ns, pk, profile.id, token, answers, state, contributors(profile))
            except ExtractionFailed as e:  # e.g. the merge would exceed the document limit
                failure = e
        if failure is not None:
            await self._fail(ns, pk, profile.id, token, state, failure, {i.id: i.attempts for i in items})
        if progress is not None:
            await progress(len(batches), len(batches), "done" if failure is None else "failed")
        async with self.store.read() as tx:
            final = await tx.items_by_id([item.id for item in items])
        return [JobResult.from_item(item) for item in final]

    @staticmethod
    def _account(state: dict[str, _Progress], part: list[DataChunk], usage: Usage) -> None:
        for chunk, share in zip(part, _share(usage, [estimate_tokens(c.text) for c in part]), strict=True):
            state[chunk.data_id].usage = state[chunk.data_id].usage + share

    def _merge(self, current: Profile, extraction: Extraction, part: list[DataChunk], at: str) -> MergeResult:
        return merge_part(self.config, current, extraction, part, at)

    async def _fail(
        self,
        ns: str,
        pk: int,
        profile_id: str,
        token: str,
        state: dict[str, _Progress],
        failure: ExtractionFailed,
        attempts: dict[str, int],
    ) -> None:
        """Record a failed call on every item of the claim (see ``applying.record_failure``)."""
        await record_failure(self.store, self.config, ns, pk, profile_id, token, state, failure, attempts)

    async def _commit(
        self,
        ns: str,
        pk: int,
        profile_id: str,
        token: str,
        answers: list[tuple[list[DataChunk], Extraction]],
        state: dict[str, _Progress],
        seen: set[str] | None = None,
    ) -> None:
        """Apply a claim's answers if the claim still holds (see ``applying.apply_answers``)."""
        await apply_answers(
            self.store, self.config, self.on_change, ns, pk, profile_id, token, answers, state, seen
        )

    async def wait_for(self, ns: str, item: DataItem, progress: Progress | None = None) -> JobResult:
        """Process a just-submitted item now (with its profile's other pending items) and
        return its result; if another worker holds it, wait for that worker to finish."""
        for result in await self.process(ns, item.profile_pk, progress):
            if result.job_id == item.id and (result.status in ("done", "failed") or result.next_attempt_at):
                return result
        deadline = time.monotonic() + self.lease_seconds
        while True:
            event = self._settled.setdefault(item.id, anyio.Event())
            async with self.store.read(snapshot=False) as tx:
                current = await tx.item(ns, item.id)
            if current is None:
                raise NotFound(
                    f"job {item.id!r} disappeared: its profile was deleted or the data was forgotten"
                )
            if current.status in ("done", "failed") or (
                current.status == "pending" and current.next_attempt_at is not None
            ):  # finished, or waiting for a retry the caller should not wait for
                return JobResult.from_item(current)
            if current.status == "pending":
                await self.process(ns, item.profile_pk, progress)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(
                    f"job {item.id} is still being extracted by another worker after {self.lease_seconds:g} s; "
                    "the data is kept and the work goes on: follow it with get_job"
                )
            # Held by this process: its event fires when it is let go. Held by another
            # process: nothing here can tell, so look again now and then.
            with anyio.move_on_after(min(left, 2.0)):
                await event.wait()

    async def sampling_request(
        self, ns: str, ref: str, data: str, input_type: str | None, kind: Kind | None
    ) -> tuple[str, bool, tuple[str, str, int] | None]:
        """Store the data (first, so that a refusal loses nothing), then build the request for
        the client's model: (profile id, whether the profile was created, and (system prompt,
        user text, max tokens), or None when the item is not waiting or too large for one
        request). Renders the same for the same item and profile: the resolver that calls
        this runs again when the client answers (and finds the item stored)."""
        item, _, created = await self.submit(ns, ref, data, input_type, kind)
        if item.status != "pending" or estimate_tokens(item.content) > max(500, self.config.batch_tokens):
            return item.profile_id, created, None
        async with self.store.read() as tx:
            profile = await tx.profile_by_key(item.profile_pk)
        if profile is None:
            return item.profile_id, created, None
        self._sampled[(ns, item.sha256)] = contributors(profile)
        while len(self._sampled) > 1000:
            self._sampled.pop(next(iter(self._sampled)))
        catalogue = self.config.user_topics if profile.kind == "user" else self.config.assistant_topics
        request = build_request(
            profile.kind,
            profile,
            [DataChunk(item.id, item.input_type, item.content)],
            system=load_prompt(profile.kind, self.config.prompts_dir, self._cache_minimum(None)),
            catalogue=catalogue,
            allow_sensitive=self.config.allow_sensitive,
            max_tokens=self.config.max_output_tokens,
        )
        system, user_text = sampling_messages(request)
        return item.profile_id, created, (system, user_text, request.max_tokens)

    async def from_sample(self, ns: str, item: DataItem, text: str) -> JobResult:
        """Merge the client model's answer for a stored item (one sampling round, no repair)."""
        state = {item.id: _Progress(usage=Usage(requests=1))}
        token = self._claim_token()
        async with self.store.write() as tx:
            claimed = await tx.claim_item(ns, item.id, token, time.time())
            profile = await tx.profile_by_key(item.profile_pk)
        if not claimed or profile is None:
            return await self.job(ns, item.id)
        self._live.add(token)
        try:
            try:
                extraction = parse_sampling_text(text)
                chunk = DataChunk(item.id, item.input_type, item.content)
                seen = self._sampled.pop((ns, item.sha256), None)
                await self._commit(
                    ns, item.profile_pk, profile.id, token, [([chunk], extraction)], state, seen
                )
            except ExtractionFailed as e:  # not usable, or not writable: record why, keep the data
                failure = ExtractionFailed(f"the client's model: {e.message}" if e.raw_output else e.message)
                await self._fail(ns, item.profile_pk, profile.id, token, state, failure, {})
        except _Discarded:
            pass
        finally:
            self._live.discard(token)
            self._settle([item.id])
        return await self.job(ns, item.id)

    # ---- the background worker ----------------------------------------------------

    def wake(self) -> None:
        """Ask the worker to look at the queue now."""
        self._wake.set()

    async def recover(self) -> int:
        """Requeue items whose owner died, or whose lease ran out; never a claim this process
        is still working on (its lease is renewed while it works). Notes when the next claim
        of another owner expires, so that the worker looks again then."""
        now = time.time()
        stale: list[str] = []
        due: list[float] = []
        async with self.store.write() as tx:
            for item_id, owner, at in await tx.processing_claims():
                if owner in self._live:
                    continue
                if (not self._mine(owner) and not _alive(owner, self.host)) or (
                    at or 0
                ) < now - self.lease_seconds:
                    stale.append(item_id)
                else:
                    due.append((at or 0) + self.lease_seconds)
            if stale:
                await tx.requeue(stale)
        self._lease_due = min(due, default=None)
        if stale:
            log.warning("requeued %d interrupted data item(s)", len(stale))
        return len(stale)

    async def _ready(self, ns: str, pk: int) -> bool:
        """Whether a profile's pending items are worth a call now: together they reach
        ``min_batch_tokens``, or the oldest has waited ``max_batch_wait`` seconds."""
        async with self.store.read(snapshot=False) as tx:
            tokens, first = await tx.pending_load(ns, pk)
        if first is None:
            return False
        if tokens >= self.config.min_batch_tokens:
            return True
        try:
            oldest = datetime.fromisoformat(first.replace("Z", "+00:00"))
        except ValueError:  # a time an import carried in another form: how long it waited is unknown
            return True
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return (datetime.now(UTC) - oldest).total_seconds() >= self.config.max_batch_wait

    async def drain(self, *, flush: bool = True, namespace: str | None = None) -> list[JobResult]:
        """Process every profile with pending items (of one namespace, when given); returns
        the results of the items this run processed. A profile that fails is skipped, not the
        whole queue.

        With ``flush=False`` (the background worker), a profile whose pending items are
        below ``Config.min_batch_tokens`` waits (up to ``max_batch_wait``) so that more
        items can share its call, and items waiting for a retry wait for their time; a
        caller waiting on an item never waits (``wait_for``). A flush takes the items waiting
        for a retry once, not again in the same run.
        """
        if self.llm is None:
            return []
        results: list[JobResult] = []
        first = True
        while True:
            due = None if flush and first else time.time()
            async with self.store.read() as tx:
                queued = await tx.queued_profiles(due=due)
            queued = [(ns, pk) for ns, pk in queued if namespace is None or ns == namespace]
            if not flush and self.config.min_batch_tokens > 0:
                queued = [(ns, pk) for ns, pk in queued if await self._ready(ns, pk)]
            progressed = False
            for ns, pk in queued:
                try:
                    processed = await self.process(ns, pk, due_only=due is not None)
                except Exception:  # one bad profile must not stop the queue
                    log.exception("extraction of a queued profile failed")
                    continue
                results += processed
                progressed = progressed or bool(processed)
            first = False
            if not progressed:
                return results

    async def process_profile(self, ns: str, ref: str, progress: Progress | None = None) -> list[JobResult]:
        """Extract the pending items of the profile named ``ref`` (id or alias) now.

        Raises:
            NotFound: no such profile. ExtractionFailed: no extraction backend.
        """
        async with self.store.read() as tx:
            found = await tx.locate(ns, ref)
        if found is None:
            raise NotFound(f"profile {ref!r} does not exist")
        return await self.process(ns, found[0], progress)

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

    async def run_worker(self, poll_seconds: float = 30.0, max_backoff: float = 60.0) -> None:
        """Resume interrupted work, then process the queue whenever woken, until cancelled.

        The worker runs in the server's task group, so an exception escaping it would stop
        the server: any error (a locked database, a row it cannot read) is logged, and the
        worker waits (0.5 s, doubling up to ``max_backoff``) and goes on. Only cancellation
        ends it.
        """
        errors = 0
        while True:
            try:
                await self.recover()
                await self.drain(flush=False)
                async with self.store.read() as tx:
                    due = await tx.next_attempt()
                wait = poll_seconds if due is None else min(poll_seconds, max(0.01, due - time.time()))
                if self._lease_due is not None:  # another owner's claim may expire before then
                    wait = min(wait, max(0.01, self._lease_due - time.time() + 0.05))
                errors = 0
            except Exception:
                errors += 1
                wait = min(max_backoff, 0.5 * 2.0 ** (errors - 1))
                log.exception(
                    "the extraction worker failed (%d in a row); trying again in %.1f s", errors, wait
                )
                await anyio.sleep(wait)
                continue
            with anyio.move_on_after(wait):
                await self._wake.wait()
            self._wake = anyio.Event()
