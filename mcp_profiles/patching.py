"""Structured edits: JSON merge patch over a profile, the document rules, and diffs.

Pure functions, no I/O: (current document, patch) → new document. The service wraps them
in a transaction; the extraction merge (``merge.py``) reuses the diff and the rules.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .errors import Invalid, TooLarge
from .models import ATTRIBUTE_KEY_RE, Attribute, Kind, Profile, normalize_keys

__all__ = ["Limits", "apply_patch", "check_limits", "check_rules", "diff", "merge_patch"]

_SERVER_MANAGED = ("version", "created_at", "updated_at", "summary_data_ids")
_ABSENT = object()
_ATTRIBUTE_FORM_KEYS = {"value", "confidence", "source", "evidence", "updated_at"}
_PROVENANCE = ("source", "evidence")


@dataclass(frozen=True)
class Limits:
    """Size limits a deployment can tune; every one is enforced with ``too_large``."""

    max_document_bytes: int = 256 * 1024
    max_attributes: int = 1000
    max_tags: int = 100
    max_value_bytes: int = 8 * 1024
    max_data_bytes: int = 1024 * 1024
    max_profiles: int = 1_000_000
    max_patch_depth: int = 32
    max_prompt_bytes: int = 32 * 1024


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, stopping early at ``limit`` so hostile input costs little."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _non_finite(value: Any) -> bool:
    """Whether a NaN or an infinity hides anywhere in ``value`` (lenient JSON parsers let
    them through; stored they would read back as null, and NaN never equals itself)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _attribute(key: str, raw: Any, old: Attribute | None, at: str) -> Attribute:
    """Turn one patch entry under ``attributes`` into an Attribute.

    A plain value is a manual fact with confidence 1.0; an object with ``value`` (and
    optionally ``confidence``) sets those. Provenance (``source``, ``evidence``) and
    ``updated_at`` are the server's: an edit is always ``manual`` with no evidence. They may
    be sent back as read (a document read, changed elsewhere and sent whole), but a value
    that differs from what the server keeps is refused rather than silently dropped. Re-
    sending what is stored keeps the stored attribute untouched, so repeated edits are
    idempotent.

    Raises:
        Invalid: the entry is malformed, or it tries to set provenance.
    """
    if isinstance(raw, dict) and "value" in raw and set(raw) <= _ATTRIBUTE_FORM_KEYS:
        fields = dict(raw)
    else:
        fields = {"value": raw}
    if fields["value"] is None:
        raise Invalid(f"attributes.{key}: value must not be null (send null for the key to delete it)")
    given = {name: fields.pop(name) for name in _PROVENANCE if name in fields}
    fields.pop("updated_at", None)
    fields.setdefault("confidence", 1.0)
    try:
        attr = Attribute.model_validate({**fields, "source": "manual", "evidence": [], "updated_at": at})
    except ValidationError as e:
        raise Invalid(f"attributes.{key}: {_first_error(e)}") from None
    result = attr
    if old is not None and (attr.value, attr.confidence) == (old.value, old.confidence):
        result = old if given or (old.source, old.evidence) == ("manual", []) else attr
    kept = {"source": result.source, "evidence": [e.model_dump() for e in result.evidence]}
    for name, value in given.items():
        if value != kept[name]:
            raise Invalid(
                f"attributes.{key}.{name}: set by the server, not by a patch (an edit is 'manual', "
                "without evidence); send only value and confidence"
            )
    return result


def apply_patch(
    current: Profile | None,
    patch: dict[str, Any],
    *,
    profile_id: str,
    kind: Kind,
    replace: bool,
    at: str,
    limits: Limits,
) -> Profile:
    """Apply an ``update_profile`` patch; returns the new document (version unchanged).

    Raises:
        Invalid: the patch or the resulting document breaks a rule.
        TooLarge: the patch or the resulting document exceeds a limit.
    """
    if not isinstance(patch, dict):
        raise Invalid("patch: must be a JSON object")
    if _depth(patch, limits.max_patch_depth) > limits.max_patch_depth:
        raise TooLarge(f"patch: nested deeper than {limits.max_patch_depth} levels")
    if _non_finite(patch):
        raise Invalid("patch: numbers must be finite (NaN and Infinity are not JSON)")
    try:
        patch = normalize_keys(patch)
    except ValueError as e:
        raise Invalid(f"patch: {e}") from None
    for key in _SERVER_MANAGED:
        patch.pop(key, None)
    if "id" in patch and patch["id"] != (current.id if current else profile_id):
        raise Invalid("id: cannot be changed; profiles are renamed by alias, not id")
    if "kind" in patch and current is not None and patch["kind"] != current.kind:
        raise Invalid(f"kind: cannot change from {current.kind!r} after creation")

    old_attrs = current.attributes if current else {}
    raw_attrs = patch.pop("attributes", {})
    if raw_attrs is None:
        raw_attrs = dict.fromkeys(old_attrs)
    if not isinstance(raw_attrs, dict):
        raise Invalid("attributes: must be an object of 'topic.key': value")

    summary_source = patch.pop("summary_source", _ABSENT)
    base: dict[str, Any] = {}
    if current is not None and not replace:
        base = current.model_dump(exclude={"attributes"})
    doc = merge_patch(base, patch)
    # Who wrote the summary is the server's to say: a summary changed by a patch is manual.
    if doc.get("summary") is None:
        doc["summary_source"] = None
    elif current is not None and doc["summary"] == current.summary:
        doc["summary_source"] = current.summary_source
    else:
        doc["summary_source"] = "manual"
    if summary_source is not _ABSENT and summary_source != doc["summary_source"]:
        raise Invalid(
            "summary_source: set by the server, not by a patch (a summary you write is 'manual'); leave it out"
        )
    # So are the data items an extracted summary was written from (forget_data reads them).
    same = (
        current is not None and doc["summary_source"] == "extracted" and doc.get("summary") == current.summary
    )
    doc["summary_data_ids"] = list(current.summary_data_ids) if same and current is not None else []
    doc["id"] = current.id if current else profile_id
    doc.setdefault("kind", current.kind if current else kind)
    if current is not None:
        doc["version"], doc["created_at"] = current.version, current.created_at

    attributes = {} if replace else dict(old_attrs)
    for key, raw in raw_attrs.items():
        if raw is None:
            attributes.pop(key, None)
            continue
        if not isinstance(key, str) or not ATTRIBUTE_KEY_RE.match(key):
            raise Invalid(f"attributes.{key}: {_PATTERN_HINTS['attributes']}")
        attributes[key] = _attribute(key, raw, old_attrs.get(key), at)
    try:
        new = Profile.model_validate({**doc, "attributes": {}})
    except ValidationError as e:
        raise Invalid(_first_error(e)) from None
    new.attributes = attributes  # each validated above (unchanged ones were valid already)
    check_rules(current, new)
    check_limits(new, limits)
    return new


def check_rules(current: Profile | None, new: Profile) -> None:
    """Kind-specific rules of DESIGN §3 that need no store.

    Raises:
        Invalid: naming the field and the rule.
    """
    if new.kind == "assistant":
        missing = [
            name
            for name, value in (
                ("alias", new.alias),
                ("name", new.name),
                ("model.provider_id", new.model and new.model.provider_id),
                ("model.model_id", new.model and new.model.model_id),
                ("connection_id", new.connection_id),
            )
            if not value
        ]
        if missing:
            raise Invalid(f"{missing[0]}: required for an assistant profile (missing: {', '.join(missing)})")
        if new.capability is None:
            new.capability = new.settings.type if new.settings else "chat"
        if current is not None and current.capability and new.capability != current.capability:
            raise Invalid(f"capability: cannot change from {current.capability!r} after creation")
        if new.settings is not None and new.settings.type != new.capability:
            raise Invalid(
                f"settings.type: must match capability {new.capability!r}, got {new.settings.type!r}"
            )
    else:
        for name in ("capability", "model", "connection_id", "settings"):
            if getattr(new, name) is not None:
                raise Invalid(f"{name}: only assistant profiles have model configuration")


def check_limits(profile: Profile, limits: Limits) -> None:
    """Raises TooLarge when the document exceeds the configured limits."""
    if len(profile.attributes) > limits.max_attributes:
        raise TooLarge(f"attributes: {len(profile.attributes)} exceeds the limit of {limits.max_attributes}")
    if len(profile.tags) > limits.max_tags:
        raise TooLarge(f"tags: {len(profile.tags)} exceeds the limit of {limits.max_tags}")
    for key, attr in profile.attributes.items():
        size = len(json.dumps(attr.value, ensure_ascii=False).encode())
        if size > limits.max_value_bytes:
            raise TooLarge(f"attributes.{key}: value of {size} bytes exceeds {limits.max_value_bytes}")
    size = len(profile.model_dump_json().encode())
    if size > limits.max_document_bytes:
        raise TooLarge(f"document of {size} bytes exceeds the limit of {limits.max_document_bytes}")


_NESTED = ("attributes", "model", "settings", "metadata")
_IGNORED = {"version", "created_at", "updated_at", "summary_source", "summary_data_ids"}


def diff(old: Profile | None, new: Profile) -> list[dict[str, Any]]:
    """Changed paths with old and new values; attributes, model, settings, metadata per key."""
    empty = Profile(id=new.id, kind=new.kind)
    before = (old or empty).model_dump(mode="json")
    after = new.model_dump(mode="json")
    changes: list[dict[str, Any]] = []
    for field in after:
        if field in _IGNORED:
            continue
        a, b = before.get(field), after.get(field)
        if a == b:
            continue
        if field in _NESTED and (isinstance(a, dict) or a is None) and (isinstance(b, dict) or b is None):
            a, b = a or {}, b or {}
            changes.extend(
                {"path": f"{field}.{key}", "old": a.get(key), "new": b.get(key)}
                for key in sorted(set(a) | set(b))
                if a.get(key) != b.get(key)
            )
        else:
            changes.append({"path": field, "old": a, "new": b})
    return changes


def _first_error(e: ValidationError) -> str:
    err = e.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"] if p not in ("[key]", "chat", "embedding"))
    msg = err["msg"]
    if err["type"] == "string_pattern_mismatch":
        msg = _PATTERN_HINTS.get(str(err["loc"][0]), msg)
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{loc or 'document'}: {msg}{more}"


_PATTERN_HINTS = {
    "id": "must be 1-128 characters of letters, digits, '_', '.', '@', '-', starting with a letter or digit",
    "alias": "must be a lower-case slug: 1-64 of a-z, 0-9, '_', '-', starting with a letter or digit",
    "attributes": "keys must look like 'topic.key' in lower snake case, e.g. 'work.role'",
    "tags": "must be 1-64 characters without control characters",
    "connection_id": "must be 1-128 characters of letters, digits, '_', '.', '@', '-'",
}
