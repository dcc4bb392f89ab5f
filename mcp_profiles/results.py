"""The structured results of the tools: their output schemas, and how they are filled.

Kept apart from ``server.py`` so the schemas a client sees are readable in one place.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .jobs import JobResult, UpsertOutcome
from .lifecycle import DataPage, ForgetOutcome, item_fields
from .models import Profile, ProfileSummary, Revision
from .service import ChangeResult

__all__ = [
    "DataItemView",
    "DeleteProfileResult",
    "ForgetDataResult",
    "ListDataResult",
    "Erased",
    "HistoryResult",
    "JobView",
    "ListProfilesResult",
    "UpdateProfileResult",
    "UpsertResult",
    "changed_result",
    "data_page_result",
    "forget_result",
    "job_view",
    "upsert_result",
]


class UpdateProfileResult(BaseModel):
    """The document after the write and the paths that changed (empty: nothing did)."""

    profile: Profile
    changed: list[str]


class ListProfilesResult(BaseModel):
    """One page of profiles; pass next_cursor back to get the next one."""

    profiles: list[ProfileSummary]
    next_cursor: str | None = None


class Erased(BaseModel):
    """Rows erased with the profile."""

    revisions: int
    data_items: int
    wal_pending: bool = Field(
        False,
        description="True while another connection's read keeps erased pages in the database's "
        "write-ahead log; the server removes them at its next write, within seconds, or on close.",
    )


class DeleteProfileResult(BaseModel):
    """What delete_profile removed; nothing of it stays readable in the database file."""

    id: str
    deleted: bool
    erased: Erased


class DataItemView(BaseModel):
    """One data item: what it is, its state, and the facts whose evidence cites it."""

    data_id: str
    input_type: str | None
    status: str
    received_at: str
    bytes: int
    content_kept: bool
    facts: list[str]


class ListDataResult(BaseModel):
    """One page of a profile's data items, oldest first; pass next_cursor back for more."""

    items: list[DataItemView]
    next_cursor: str | None = None


class ForgetDataResult(BaseModel):
    """What forget_data removed: facts only this item supported, its evidence on facts others
    support too, the extracted summary it contributed to, and how many versions of history
    and job results now hold a forgotten marker instead of its values."""

    profile: str
    data_id: str
    forgotten: bool
    version: int
    removed_facts: list[str]
    removed_evidence: list[str]
    removed_summary: bool
    revisions_rewritten: int
    job_results_rewritten: int
    wal_pending: bool = Field(
        False,
        description="True while another connection's read keeps the erased pages in the database's "
        "write-ahead log; the server removes them at its next write, within seconds, or on close.",
    )


class HistoryResult(BaseModel):
    """Versions, newest first, each with what changed."""

    versions: list[Revision]


class UpsertResult(BaseModel):
    """What upsert_profile_from_data did (status: updated, unchanged, duplicate, accepted, pending)."""

    id: str
    message: str
    status: Literal["updated", "unchanged", "duplicate", "accepted", "pending"]
    version: int
    changes: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    dropped: dict[str, int]
    job_id: str
    usage: dict[str, int]


class JobView(BaseModel):
    """An extraction job (one data item). A ``pending`` job whose model call failed for a
    passing reason (429, 529, 5xx, a timeout) shows that ``error`` and ``next_attempt_at``
    (UTC), when it is tried again; ``attempts`` counts the calls tried."""

    job_id: str
    profile: str
    status: str
    error: str | None
    attempts: int
    next_attempt_at: str | None
    changes: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    usage: dict[str, int]


def upsert_result(outcome: UpsertOutcome) -> UpsertResult:
    """The tool's answer for an upsert (never a failed one: that is an ``extraction_failed`` error)."""
    job = outcome.job
    assert outcome.status != "failed"
    return UpsertResult(
        id=job.profile_id,
        message=outcome.message,
        status=outcome.status,
        version=job.version,
        changes=job.changes,
        conflicts=job.conflicts,
        dropped=job.dropped,
        job_id=job.job_id,
        usage=job.usage,
    )


def job_view(job: JobResult) -> JobView:
    """The get_job answer for a job."""
    return JobView(
        job_id=job.job_id,
        profile=job.profile_id,
        status=job.status,
        error=job.error,
        attempts=job.attempts,
        next_attempt_at=job.next_attempt_at,
        changes=job.changes,
        conflicts=job.conflicts,
        usage=job.usage,
    )


def changed_result(result: ChangeResult) -> UpdateProfileResult:
    """The tool's answer for a structured edit."""
    return UpdateProfileResult(profile=result.profile, changed=result.changed)


def data_page_result(page: DataPage) -> ListDataResult:
    """The list_data answer for a page of data items."""
    return ListDataResult(
        items=[DataItemView(**item_fields(item, facts)) for item, facts in page.items],
        next_cursor=page.next_cursor,
    )


def forget_result(out: ForgetOutcome) -> ForgetDataResult:
    """The forget_data answer: what forgetting one data item removed."""
    return ForgetDataResult(
        profile=out.profile_id,
        data_id=out.data_id,
        forgotten=True,
        version=out.version,
        removed_facts=out.facts,
        removed_evidence=out.evidence,
        removed_summary=out.summary,
        revisions_rewritten=out.revisions,
        job_results_rewritten=out.job_results,
        wal_pending=out.wal_pending,
    )
