"""Bulk extraction through the Message Batches API, at half the price of single calls.

``process --batch`` runs the ordinary pipeline (``Extractor.process``: claims, splitting,
coalescing, requests, grounding, merge, conflicts, usage per item) for every profile with
waiting items at once, over :class:`BatchLLM`, an ``LLM`` whose ``complete`` does not call
the API: it waits until every profile's pipeline is waiting on a request, sends them all as
one Message Batch, polls it, and answers each waiting pipeline with its result. Results are
therefore merged exactly as synchronous answers are; a profile whose data needs several
calls sends them in successive batches, each built on the profile as the previous merge
left it, as it would synchronously.

Each request's ``custom_id`` is a digest of its parameters, and a sent batch is stored with
its custom ids before anything waits on it. An interrupted run (Ctrl-C, a crash, a
reboot) leaves its items claimed by a dead process; the next run requeues them, builds the
same requests (same profile, same data, same bytes), finds their digests in the stored
batch, and waits for that batch instead of sending them again.

A request the batch did not answer (errored, expired, canceled) puts its items back in the
queue (pending), for the next ``process``; an answer that fails validation is handled as a
synchronous one (the repair goes into the next batch).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from .contract import Store
from .errors import ExtractionFailed
from .jobs import Extractor
from .llm import AnthropicLLM, LLMAnswer, LLMRequest, Repair
from .models import now

__all__ = ["BatchLLM", "BatchRun", "NotAnswered", "run_batches"]

log = logging.getLogger(__name__)

POLL_SECONDS = 30.0
# The API keeps results 29 days and answers within 24 hours; past that a batch has expired.
MAX_WAIT_SECONDS = 25 * 3600.0


class NotAnswered(Exception):
    """The batch did not answer a request: its items go back to the queue.

    Deliberately not ``ExtractionFailed`` (which marks items failed): ``Extractor`` puts the
    items it claimed back to pending when anything else interrupts it.
    """


def custom_id(params: dict[str, Any]) -> str:
    """A request's identity in a batch: the digest of its parameters (same request, same id)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return f"x{digest[:40]}"


@dataclass
class BatchRun:
    """What a batch run did, for the command's summary."""

    batches_sent: int = 0
    batches_resumed: int = 0
    requests_sent: int = 0
    answered: int = 0
    not_answered: int = 0
    items: int = 0
    failed_items: int = 0
    requeued_items: int = 0
    errors: list[str] = field(default_factory=list)


class BatchLLM:
    """Gathers ``complete`` calls into Message Batches (see the module docstring)."""

    def __init__(
        self,
        backend: AnthropicLLM,
        store: Store,
        namespace: str,
        *,
        poll_seconds: float = POLL_SECONDS,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.backend = backend
        self.store = store
        self.namespace = namespace
        self.poll_seconds = poll_seconds
        self.progress = progress or (lambda line: None)
        self.run = BatchRun()
        self._waiting: dict[str, tuple[dict[str, Any], str, list[anyio.Event], list[LLMAnswer | str]]] = {}
        self._active = 0  # pipelines still running
        self._waiters = 0  # of them, how many wait on a request
        self._changed = anyio.Event()

    @property
    def name(self) -> str:
        return self.backend.name

    async def aclose(self) -> None:
        await self.backend.aclose()

    async def complete(self, request: LLMRequest, repair: Repair | None = None) -> LLMAnswer:
        params = self.backend.params(request, repair)
        cid = custom_id(params)
        done = anyio.Event()
        if cid not in self._waiting:
            self._waiting[cid] = (params, request.tool_name, [], [])
        _, _, events, slot = self._waiting[cid]  # identical requests share one answer
        events.append(done)
        self._waiters += 1  # the driver takes it off when it answers
        self._changed.set()
        try:
            await done.wait()
        finally:
            if not done.is_set():  # cancelled before an answer
                self._waiters -= 1
                events.remove(done)
        result = slot[0] if slot else "the batch run stopped before the request was answered"
        if isinstance(result, str):
            raise NotAnswered(result)
        return result

    # ---- the driver -----------------------------------------------------------------------

    async def drive(self, jobs: list[tuple[str, int]], extractor: Extractor) -> BatchRun:
        """Run every profile's pipeline at once and answer their requests batch by batch."""
        self._active = len(jobs)

        async def one(ns: str, pk: int) -> None:
            try:
                results = await extractor.process(ns, pk)
                self.run.items += len(results)
                self.run.failed_items += sum(r.status == "failed" for r in results)
            except NotAnswered as e:
                self.run.errors.append(str(e))
            except ExtractionFailed as e:
                self.run.errors.append(e.message)
            finally:
                self._active -= 1
                self._changed.set()

        async with anyio.create_task_group() as tg:
            for ns, pk in jobs:
                tg.start_soon(one, ns, pk)
            while True:
                while self._active > 0 and self._waiters < self._active:
                    await self._changed.wait()
                    self._changed = anyio.Event()
                if self._active == 0:
                    break
                await self._answer_round()
        return self.run

    async def _answer_round(self) -> None:
        """Send what is waiting (or find it in a stored batch), wait, answer every waiter."""
        waiting, self._waiting = self._waiting, {}
        async with self.store.read() as tx:
            stored = await tx.open_batches(self.namespace, self.backend.model)
        wanted = set(waiting)
        resumed = {bid: set(ids) & wanted for bid, ids in stored.items() if set(ids) & wanted}
        covered = set().union(*resumed.values()) if resumed else set()
        new = [cid for cid in waiting if cid not in covered]
        batches = dict.fromkeys(resumed)
        self.run.batches_resumed += len(resumed)
        for bid in resumed:
            self.progress(f"batch {bid}: resuming, {len(resumed[bid])} request(s) already sent")
        if new:
            bid = await self.backend.create_batch([(cid, waiting[cid][0]) for cid in new])
            async with self.store.write() as tx:
                await tx.add_batch(self.namespace, bid, self.backend.model, new, now())
            self.run.batches_sent += 1
            self.run.requests_sent += len(new)
            batches[bid] = None
            self.progress(f"batch {bid}: sent {len(new)} request(s)")
        tool_name = next(iter(waiting.values()))[1]
        answers: dict[str, LLMAnswer | str] = {}
        for bid in batches:
            answers.update(await self._wait_for(bid, tool_name))
        for cid, (_, _, events, slot) in waiting.items():
            result = answers.get(cid, "the batch returned no result for the request")
            slot.append(result)
            if isinstance(result, str):
                self.run.not_answered += 1
            else:
                self.run.answered += 1
            self._waiters -= len(events)
            for event in events:
                event.set()

    async def _wait_for(self, batch_id: str, tool_name: str) -> dict[str, LLMAnswer | str]:
        """Poll until the batch ends, then read its results (the pipelines waiting on it renew
        their claims' leases themselves, as while any model call is in flight)."""
        started = time.monotonic()
        while True:
            state = await self.backend.batch_state(batch_id)
            counts = ", ".join(f"{k} {v}" for k, v in state.counts.items() if v)
            self.progress(f"batch {batch_id}: {state.status}" + (f" ({counts})" if counts else ""))
            if state.status == "ended":
                break
            if time.monotonic() - started > MAX_WAIT_SECONDS:
                raise ExtractionFailed(f"batch {batch_id} did not end within 25 hours")
            await anyio.sleep(self.poll_seconds)
        results = await self.backend.batch_results(batch_id, tool_name)
        async with self.store.write() as tx:
            await tx.end_batch(batch_id, now())
        return results


async def run_batches(
    extractor: Extractor,
    backend: AnthropicLLM,
    namespace: str,
    *,
    profile_pk: int | None = None,
    poll_seconds: float = POLL_SECONDS,
    progress: Callable[[str], None] | None = None,
    max_profiles: int = 10_000,
) -> BatchRun:
    """Extract every waiting item of a namespace (or of one profile) through Message Batches."""
    await extractor.recover()
    llm = BatchLLM(
        backend,
        extractor.store,
        namespace,
        poll_seconds=poll_seconds,
        progress=progress,
    )
    previous = extractor.llm
    extractor.llm = llm
    try:
        async with extractor.store.read() as tx:
            queued = await tx.queued_profiles(limit=max_profiles)
        jobs = [(ns, pk) for ns, pk in queued if ns == namespace and profile_pk in (None, pk)]
        run = await llm.drive(jobs, extractor)
    finally:
        extractor.llm = previous
    async with extractor.store.read() as tx:
        for _, pk in jobs:
            run.requeued_items += len(await tx.items_for(namespace, pk, ["pending"]))
    return run
