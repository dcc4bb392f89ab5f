"""The export format, and the complete check of a file before it is imported.

``mcp-profiles export`` writes one JSON object a line per profile: the document, every kept
revision with its snapshot, and every raw data item. An import is all or nothing, and a
file that does not hold what an export writes must be refused with the line and field that
is wrong, never half-imported and never with a traceback. So every line is parsed and every
nested field checked here, with no I/O, before the one write transaction that restores the
file opens (the service checks what needs the database: existing ids, aliases, connections).

The rules: strict types (no ``"3"`` for 3, no ``true`` for 1), finite numbers of at most
4,300 digits, valid Unicode, the kind rules of a document (:func:`patching.check_rules`) and
the configured limits; revisions whose versions rise by one and end at the document's
version N (they start at 1 unless older versions were pruned); snapshots of this same
profile (its id and kind, the version of their revision), the newest equal to the document;
data items of this profile whose ``sha256`` is that of their content (or, once retention
deleted the content of a processed item, whose content is empty).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
)

from .errors import Invalid, ProfilesError
from .models import Profile
from .patching import Limits, check_limits, check_rules

__all__ = ["ExportedItem", "ExportedRevision", "ImportRecord", "parse_export"]

MAX_INT = 2**53  # SQLite integers hold 2**63; nothing the server counts comes near 2**53
ITEM_STATUSES = ("pending", "processing", "done", "failed")


def _timestamp(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 time such as 2026-11-30T12:00:00Z") from None
    return value


Timestamp = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timestamp)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())


class Usage(_Strict):
    """Tokens an item's extraction spent."""

    requests: Count = 0
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_read_input_tokens: Count = 0
    cache_creation_input_tokens: Count = 0


class ExportedRevision(_Strict):
    """One kept version: who, when, why, what changed, and the whole document then."""

    version: Annotated[int, Field(ge=1, le=MAX_INT)]
    actor: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    reason: str | None = None
    changed_at: Timestamp
    changes: list[dict[str, JsonValue]]
    snapshot: Profile


class ExportedItem(_Strict):
    """A raw data item (the job) of the profile."""

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
    profile_id: str
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    content: str
    input_type: Annotated[str, StringConstraints(max_length=100)] | None = None
    status: Literal["pending", "processing", "done", "failed"]
    error: str | None = None
    attempts: Count = 0
    usage: Usage = Field(default_factory=Usage)
    result: dict[str, JsonValue] | None = None
    created_at: Timestamp
    updated_at: Timestamp
    bytes: Count = 0
    content_deleted_at: Timestamp | None = None


class ImportRecord(_Strict):
    """One line of an export."""

    profile: Profile
    revisions: list[ExportedRevision]
    data_items: list[ExportedItem] = Field(default_factory=list)


class _NotANumber(ValueError):
    pass


def _constant(name: str) -> Any:
    raise _NotANumber(name)


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_constant)
    except json.JSONDecodeError as e:
        raise Invalid(f"not JSON ({e.msg} at column {e.colno})") from None
    except _NotANumber as e:
        raise Invalid(f"not JSON ({e} is not a number JSON knows)") from None
    except RecursionError:
        raise Invalid("not JSON this server reads (nested too deeply)") from None
    except ValueError:  # Python refuses integers of more than 4,300 digits
        raise Invalid("a number has more than 4,300 digits") from None


def _bad_value(value: Any) -> str | None:
    """Where a non-finite number or a lone surrogate hides in ``value`` (None if nowhere)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"{path or 'record'}: numbers must be finite"
        if isinstance(item, str) and _has_surrogate(item):
            return f"{path or 'record'}: a lone surrogate is not text"
        if isinstance(item, dict):
            for k, v in item.items():
                sub = f"{path}.{k}" if path else str(k)
                if _has_surrogate(k):
                    return f"{path or 'record'}: a key holds a lone surrogate"
                stack.append((v, sub))
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("chat", "embedding", "[key]"):
            out += f".{part}" if out else str(part)
    return out or "record"


def _first_error(e: ValidationError) -> str:
    err = e.errors(include_url=False)[0]
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{_where(tuple(err['loc']))}: {err['msg']}{more}"


def _check_history(record: ImportRecord) -> None:
    """Raises Invalid unless the revisions are a contiguous run ending at the document's
    version, each a snapshot of this profile at that version, the newest the document."""
    profile, revisions = record.profile, record.revisions
    if not revisions:
        raise Invalid(f"revisions: empty; a profile at version {profile.version} needs its history")
    first = revisions[0].version
    for i, rev in enumerate(revisions):
        expected = first + i
        if rev.version != expected:
            problem = (
                "repeats an earlier version" if rev.version < expected else f"skips to it from {expected - 1}"
            )
            raise Invalid(
                f"revisions[{i}].version: {rev.version} {problem}; versions must rise by one, "
                f"ending at the document's version {profile.version}"
            )
    if revisions[-1].version != profile.version:
        raise Invalid(
            f"revisions[{len(revisions) - 1}].version: the history ends at {revisions[-1].version}, "
            f"but the document is at version {profile.version}"
        )
    for i, rev in enumerate(revisions):
        snap = rev.snapshot
        for name in ("id", "kind"):
            if getattr(snap, name) != getattr(profile, name):
                raise Invalid(
                    f"revisions[{i}].snapshot.{name}: {getattr(snap, name)!r} is not this record's "
                    f"{getattr(profile, name)!r}"
                )
        if snap.version != rev.version:
            raise Invalid(
                f"revisions[{i}].snapshot.version: {snap.version}, but the revision is {rev.version}"
            )
        try:
            check_rules(None, snap)
        except Invalid as e:
            raise Invalid(f"revisions[{i}].snapshot.{e.message}") from None
    if revisions[-1].snapshot != profile:
        raise Invalid(
            f"revisions[{len(revisions) - 1}].snapshot: the newest version differs from the document"
        )


def _check_items(record: ImportRecord) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(record.data_items):
        if item.profile_id != record.profile.id:
            raise Invalid(
                f"data_items[{i}].profile_id: {item.profile_id!r} is not this record's {record.profile.id!r}"
            )
        if item.content_deleted_at is not None:  # retention deleted the content; the hash stays
            if item.content:
                raise Invalid(f"data_items[{i}].content: must be empty once content_deleted_at is set")
            if item.status != "done":
                raise Invalid(
                    f"data_items[{i}].content_deleted_at: only a processed ('done') item loses its content"
                )
        elif hashlib.sha256(item.content.encode("utf-8")).hexdigest() != item.sha256:
            raise Invalid(f"data_items[{i}].sha256: is not the SHA-256 of its content")
        if item.sha256 in seen:
            raise Invalid(f"data_items[{i}]: the same content as data_items[{seen[item.sha256]}]")
        seen[item.sha256] = i


def _check_record(record: ImportRecord, limits: Limits) -> None:
    profile = record.profile
    if not 1 <= profile.version <= MAX_INT:
        raise Invalid(f"profile.version: must be a whole number from 1 to {MAX_INT}")
    for name in ("created_at", "updated_at"):
        value = getattr(profile, name)
        if not value:
            raise Invalid(f"profile.{name}: required in an export")
        try:
            _timestamp(value)
        except ValueError as e:
            raise Invalid(f"profile.{name}: {e}") from None
    try:
        check_rules(None, profile)
    except Invalid as e:
        raise Invalid(f"profile.{e.message}") from None
    check_limits(profile, limits)
    _check_history(record)
    _check_items(record)


def parse_export(raw: bytes, limits: Limits) -> list[tuple[int, ImportRecord]]:
    """Every record of an export file with its line number, each checked completely.

    Raises:
        Invalid: naming the line and the field (``line 3: revisions[1].version: …``).
        TooLarge: a document exceeds the configured limits (naming the line).
    """
    records: list[tuple[int, ImportRecord]] = []
    ids: dict[str, int] = {}
    aliases: dict[str, int] = {}
    items: dict[str, int] = {}
    for n, chunk in enumerate(raw.split(b"\n"), 1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Invalid(
                f"line {n}: not UTF-8 (byte {e.start + 1} of the line is 0x{chunk[e.start]:02x})"
            ) from None
        if not text.strip():
            continue
        try:
            obj = _loads(text)
            if not isinstance(obj, dict):
                raise Invalid("expected a JSON object with profile, revisions and data_items")
            bad = _bad_value(obj)
            if bad:
                raise Invalid(bad)
            try:
                record = ImportRecord.model_validate(obj, strict=True)
            except ValidationError as e:
                raise Invalid(_first_error(e)) from None
            _check_record(record, limits)
        except ProfilesError as e:
            e.message = f"line {n}: {e.message}"
            raise
        profile = record.profile
        for key, seen, what in ((profile.id, ids, "profile"), (profile.alias, aliases, "alias")):
            if key is None:
                continue
            if key in seen:
                raise Invalid(f"line {n}: {what} {key!r} is also on line {seen[key]}")
            seen[key] = n
        for i, item in enumerate(record.data_items):
            if item.id in items:
                raise Invalid(f"line {n}: data_items[{i}].id: {item.id!r} is also on line {items[item.id]}")
            items[item.id] = n
        records.append((n, record))
    return records
