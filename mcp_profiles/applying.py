"""Applying a claim's result: every answer merged onto the profile as it is now, or the
failure recorded (with backoff when the model was only unavailable), each in one write
transaction that first checks the claim still holds."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable

from .accounting import _Progress
from .claims import _Discarded
from .config import Config
from .contract import Store
from .errors import ExtractionFailed, ProfilesError
from .forgetting import contributors
from .llm import ModelUnavailable
from .merge import MergeResult, merge_extraction
from .models import DataChunk, Extraction, Profile, now
from .patching import check_limits

__all__ = ["apply_answers", "backoff", "merge_part", "record_failure"]

OnChange = Callable[[str, str], Awaitable[None]]


def backoff(attempt: int, base: float, retry_after: float | None, cap: float = 3600.0) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential from ``base`` with jitter
    (half to all of it, so workers that failed together do not retry together), never less
    than the API's ``retry-after``."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1)) * random.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def merge_part(
    config: Config, current: Profile, extraction: Extraction, part: list[DataChunk], at: str
) -> MergeResult:
    return merge_extraction(
        current,
        extraction,
        part,
        confidence_floor=config.confidence_floor,
        allow_sensitive=config.allow_sensitive,
        at=at,
        limits=config.limits,
    )


async def record_failure(
    store: Store,
    config: Config,
    ns: str,
    pk: int,
    profile_id: str,
    token: str,
    state: dict[str, _Progress],
    failure: ExtractionFailed,
    attempts: dict[str, int],
) -> None:
    """Record a failed call on every item of the claim (their usage is still counted).

    When the model was only unavailable (429, 529, 5xx, a timeout), an item goes back to
    the queue with exponential backoff until it has had ``max_attempts`` attempts; any
    other failure is final at once.
    """
    at = now()
    async with store.write() as tx:
        if not await tx.claim_holds(ns, profile_id, pk, list(state), token):
            raise _Discarded
        for item_id, s in state.items():
            tried = attempts.get(item_id, 0) + 1
            if isinstance(failure, ModelUnavailable) and tried < config.max_attempts:
                delay = backoff(tried, config.retry_delay, failure.retry_after)
                await tx.retry_later(
                    item_id,
                    token,
                    at=at,
                    error=f"{failure.message} (attempt {tried} of {config.max_attempts})",
                    next_attempt_at=time.time() + delay,
                    usage=s.usage.as_dict(),
                )
                continue
            await tx.set_items_status(
                [item_id],
                "failed",
                at=now(),
                error=failure.message,
                usage=[s.usage.as_dict()],
                attempt=True,
                owner=token,
            )


async def apply_answers(
    store: Store,
    config: Config,
    on_change: OnChange | None,
    ns: str,
    pk: int,
    profile_id: str,
    token: str,
    answers: list[tuple[list[DataChunk], Extraction]],
    state: dict[str, _Progress],
    seen: set[str] | None = None,
) -> None:
    """Merge every answer of a call onto the profile as it is now, and write the version,
    its revision and the finished items in one transaction, if the claim still holds
    (checked in that transaction); otherwise raise _Discarded and write nothing.

    ``seen`` are the data items behind the profile the model was shown: if forget_data
    erased one since, the answers' summaries (written from values now erased) are dropped.
    """
    at = now()
    async with store.write() as tx:
        current = await tx.profile_by_key(pk)
        if current is None or not await tx.claim_holds(ns, profile_id, pk, list(state), token):
            raise _Discarded
        seen = seen or set()
        if seen and not seen <= await tx.existing_items(pk, seen):
            answers = [(part, e.model_copy(update={"summary": None})) for part, e in answers]
        new, changes = current, []
        for part, extraction in answers:
            merged = merge_part(config, new, extraction, part, at)
            new = merged.profile
            changes += [dict(c) for c in merged.changes]
            for item_id in dict.fromkeys(c.data_id for c in part):
                s = state[item_id]
                s.changes += [dict(c) for c in merged.changes]
                s.conflicts += [dict(c) for c in merged.conflicts]
                for reason, count in merged.dropped.items():
                    s.dropped[reason] = s.dropped.get(reason, 0) + count
        version = current.version
        if changes:
            try:
                check_limits(new, config.limits)
            except ProfilesError:
                raise ExtractionFailed("the merged profile would exceed the document size limit") from None
            version = current.version + 1
            new.version, new.updated_at = version, at
            if new.summary != current.summary and new.summary_source == "extracted":
                new.summary_data_ids = sorted(set(state) | seen | contributors(current))
            await tx.update_profile(ns, pk, new, current.version)
            await tx.add_revision(
                ns, pk, new, actor="extraction", reason=f"data {', '.join(state)}", changes=changes
            )
        for item_id, s in state.items():
            result = {
                "version": version,
                "changes": s.changes,
                "conflicts": s.conflicts,
                "dropped": s.dropped,
            }
            await tx.set_items_status(
                [item_id],
                "done",
                at=at,
                result=result,
                usage=[s.usage.as_dict()],
                attempt=True,
                owner=token,
            )
            if config.keep_data_days == 0:  # retention: no raw content after processing
                await tx.delete_contents([item_id], at)
    if changes and on_change is not None:
        await on_change(ns, current.id)
