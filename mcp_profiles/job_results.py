"""What an extraction job reports: one item's result, and what one upsert did with the
message for whoever asked; adapters only render them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .llm import Usage
from .store import DataItem

__all__ = ["NO_BACKEND", "JobResult", "UpsertOutcome", "UpsertStatus"]

NO_BACKEND = (
    "no extraction backend is configured, so the data is stored and waits: set ANTHROPIC_API_KEY in the "
    "server's environment (or use an MCP client that supports sampling) and call upsert_profile_from_data "
    "again, or run 'mcp-profiles process' with the key set"
)


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
    attempts: int = 0
    next_attempt_at: str | None = None

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
            attempts=item.attempts,
            next_attempt_at=_iso(item.next_attempt_at) if item.status == "pending" else None,
        )


UpsertStatus = Literal["updated", "unchanged", "duplicate", "accepted", "pending", "failed"]


@dataclass
class UpsertOutcome:
    """What one upsert did, with the message for whoever asked; adapters only render it
    (``failed`` becomes an ``extraction_failed`` error in the MCP tool, exit 1 in the CLI)."""

    status: UpsertStatus
    message: str
    job: JobResult
    created: bool = False  # the call created the profile


def _done_message(job: JobResult) -> str:
    if job.changes:
        message = f"updated profile {job.profile_id!r} to version {job.version}: {len(job.changes)} change(s)"
    else:
        message = f"nothing new for profile {job.profile_id!r} in this data (version {job.version})"
    if job.conflicts:
        message += f"; {len(job.conflicts)} conflict(s) with values set by hand were left unchanged"
    if job.dropped.get("ungrounded"):
        message += f"; {job.dropped['ungrounded']} proposal(s) without a quote from the data were dropped"
    return message


def _iso(at: float | None) -> str | None:
    return (
        datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if at else None
    )
