"""Applying extracted operations to a profile: pure, deterministic, suspicious.

(current profile, operations, the data they claim to come from) → (new profile, changes,
conflicts, what was dropped and why). The model is treated as a proposer, never an
authority: an operation survives only if its evidence quote occurs in the data, its
confidence clears the floor, its key is well formed and neither sensitive (unless the
deployment opts in) nor protected, and it does not overrule a person. Extraction touches
``attributes`` and ``summary`` only; configuration is out of reach by construction, and
attribute keys that merely look like configuration are dropped, because data is never
instructions.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from dataclasses import dataclass

from .models import ATTRIBUTE_KEY_RE, Attribute, DataChunk, Evidence, Extraction, Profile, RemoveOp, SetOp
from .patching import Limits, diff

__all__ = [
    "DROP_REASONS",
    "MergeResult",
    "is_protected",
    "is_sensitive",
    "merge_extraction",
    "normalize_text",
]

DROP_REASONS = ("ungrounded", "low_confidence", "sensitive", "invalid_key", "protected", "limit")
MAX_SUMMARY_CHARS = 4000
MAX_EVIDENCE = 20
_MIN_QUOTE_CHARS = 3
_MIN_ELIDED_CHARS = 12
_MAX_ELIDED_SPAN = 400

# A key is sensitive when a word of its topic names a sensitive category, or a word of the
# rest of it does unambiguously. "medical" is sensitive as a topic but not inside a key
# ("work.medical_specialty" is a doctor's job), "race" only as a whole name (running).
_SENSITIVE_TOPIC_WORDS = frozenset(
    {
        "health", "medical", "medicine", "medication", "medications", "diagnosis", "illness",
        "disease", "disability", "mental", "religion", "religious", "faith", "spirituality",
        "politics", "political", "sexuality", "sexual", "orientation", "ethnicity", "ethnic",
        "race", "racial",
    }
)  # fmt: skip
_SENSITIVE_KEY_WORDS = frozenset(
    {
        "health", "medication", "medications", "diagnosis", "illness", "disease", "disability",
        "religion", "religious", "politics", "political", "sexuality", "sexual", "ethnicity",
        "ethnic", "racial",
    }
)  # fmt: skip
_SENSITIVE_NAMES = frozenset({"race", "faith", "orientation", "sexual_orientation", "gender_identity"})
# Never attributes of a person or persona: assistant configuration and credentials.
_PROTECTED_TOPICS = frozenset(
    {
        "model", "models", "settings", "setting", "connection", "connections", "connection_id",
        "config", "configuration", "system_prompt", "system_prompt_template", "prompt",
        "provider", "temperature", "max_tokens", "capability", "alias", "tags", "metadata",
    }
)  # fmt: skip
_PROTECTED_WORDS = frozenset(
    {"password", "passwd", "secret", "secrets", "credential", "credentials", "apikey"}
)

_QUOTES = str.maketrans(
    dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u0060\u00b4", "'")
    | dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"')
    | dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-")
    | dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad", "")
)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class MergeResult:
    """The merged profile (version and timestamps untouched), and an account of the merge."""

    profile: Profile
    changes: list[dict[str, object]]
    conflicts: list[dict[str, object]]
    dropped: dict[str, int]


def normalize_text(text: str) -> str:
    """The form quotes are matched in: NFKC, entities decoded, plain quotes and dashes, casefolded."""
    text = unicodedata.normalize("NFKC", html.unescape(text)).translate(_QUOTES)
    return _SPACE.sub(" ", text.casefold()).strip()


def is_sensitive(key: str) -> bool:
    """Whether a key names a sensitive category (health, religion, politics, sexuality, ethnicity)."""
    topic, *rest = key.split(".")
    return (
        any(w in _SENSITIVE_TOPIC_WORDS for w in topic.split("_"))
        or any(name in _SENSITIVE_NAMES for name in rest)
        or any(w in _SENSITIVE_KEY_WORDS for name in rest for w in name.split("_"))
    )


def is_protected(key: str) -> bool:
    """Whether a key looks like configuration or a credential, which data may never set."""
    words = [w for name in key.split(".") for w in name.split("_")]
    return (
        key.split(".", 1)[0] in _PROTECTED_TOPICS
        or any(w in _PROTECTED_WORDS for w in words)
        or "api_key" in key
    )


def _find(quote: str, hint: str | None, chunks: list[tuple[DataChunk, str]]) -> str | None:
    """The data_id of the chunk the quote occurs in, or None when it occurs nowhere.

    A quote elided with "..." counts when its parts (at most three, each at least three
    characters, twelve in all) occur in order in one chunk, close together: otherwise
    scraps like "i...a...e" would be found in almost any text.
    """
    parts = [p.strip() for p in normalize_text(quote).split("...")]
    parts = [p for p in parts if p]
    if sum(len(p) for p in parts) < _MIN_QUOTE_CHARS:
        return None
    if len(parts) > 1 and (
        len(parts) > 3 or min(map(len, parts)) < 3 or sum(map(len, parts)) < _MIN_ELIDED_CHARS
    ):
        return None
    ordered = sorted(chunks, key=lambda c: c[0].data_id != hint)
    for chunk, text in ordered:
        start = text.find(parts[0])
        while start >= 0:
            position = start + len(parts[0])
            for part in parts[1:]:
                position = text.find(part, position, start + _MAX_ELIDED_SPAN)
                if position < 0:
                    break
                position += len(part)
            else:
                return chunk.data_id
            start = text.find(parts[0], start + 1)
    return None


def _size(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def merge_extraction(
    current: Profile,
    extraction: Extraction,
    chunks: list[DataChunk],
    *,
    confidence_floor: float = 0.5,
    allow_sensitive: bool = False,
    at: str,
    limits: Limits | None = None,
) -> MergeResult:
    """Apply the operations that survive the rules; later operations win over earlier ones."""
    limits = limits or Limits()
    normalized = [(c, normalize_text(c.text)) for c in chunks]
    attributes = dict(current.attributes)
    dropped = dict.fromkeys(DROP_REASONS, 0)
    conflicts: list[dict[str, object]] = []

    for op in extraction.operations:
        key = op.key
        if not ATTRIBUTE_KEY_RE.match(key):
            dropped["invalid_key"] += 1
            continue
        if is_protected(key):
            dropped["protected"] += 1
            continue
        if is_sensitive(key) and not allow_sensitive:
            dropped["sensitive"] += 1
            continue
        if isinstance(op, SetOp) and op.confidence < confidence_floor:
            dropped["low_confidence"] += 1
            continue
        data_id = _find(op.evidence, op.data_id, normalized)
        if data_id is None:
            dropped["ungrounded"] += 1
            continue
        evidence = Evidence(data_id=data_id, quote=op.evidence)
        old = attributes.get(key)
        proposed = op.value if isinstance(op, SetOp) else None
        if old is not None and old.source == "manual":
            if old.value != proposed:
                conflicts.append(
                    {"key": key, "current": old.value, "proposed": proposed, "evidence": op.evidence}
                )
            continue
        if isinstance(op, RemoveOp):
            attributes.pop(key, None)
            continue
        if _size(op.value) > limits.max_value_bytes or (
            old is None and len(attributes) >= limits.max_attributes
        ):
            dropped["limit"] += 1
            continue
        attributes[key] = _set(old, op, evidence, at)

    summary, summary_source = current.summary, current.summary_source
    proposed = (extraction.summary or "").strip()[:MAX_SUMMARY_CHARS]
    if proposed and proposed != current.summary:
        if current.summary and current.summary_source == "manual":
            conflicts.append(
                {"key": "summary", "current": current.summary, "proposed": proposed, "evidence": None}
            )
        else:
            summary, summary_source = proposed, "extracted"
    new = current.model_copy(
        update={"attributes": attributes, "summary": summary, "summary_source": summary_source}
    )
    return MergeResult(profile=new, changes=diff(current, new), conflicts=conflicts, dropped=dropped)


def _set(old: Attribute | None, op: SetOp, evidence: Evidence, at: str) -> Attribute:
    """Newer evidence supersedes a different value; the same value only gains evidence."""
    if old is None or old.value != op.value:
        return Attribute(
            value=op.value, confidence=op.confidence, source="extracted", evidence=[evidence], updated_at=at
        )
    confidence = max(old.confidence, op.confidence)
    evidence_list = old.evidence if evidence in old.evidence else [*old.evidence, evidence][-MAX_EVIDENCE:]
    if confidence == old.confidence and evidence_list is old.evidence:
        return old
    return old.model_copy(update={"confidence": confidence, "evidence": evidence_list, "updated_at": at})
