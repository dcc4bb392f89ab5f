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
    "QuoteIndex",
    "is_protected",
    "is_sensitive",
    "merge_extraction",
    "normalize_text",
]

DROP_REASONS = ("ungrounded", "low_confidence", "sensitive", "invalid_key", "protected", "limit")
MAX_SUMMARY_CHARS = 4000
MAX_EVIDENCE = 20
# Grounding (QuoteIndex): what makes a quote substantial, and how far an elision may reach.
_MIN_QUOTE_CHARS = 12
_MIN_PART_CHARS = 3
_MAX_ELIDED_PARTS = 3
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
# "User 2: ", "Caroline: ", '"city": ', "- Name: ": a speaker or field name before the message.
_PREFIX = re.compile(r"^[^\s:][^:]{0,39}?:\s+(?=\S)")
_LIST_MARKER = re.compile(r"^\d{1,3}[.)]\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


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


class QuoteIndex:
    """Where evidence quotes occur in the data of one extraction: the grounding rule.

    Quotes and data are compared in :func:`normalize_text` form, and a quote by its core,
    the quote without punctuation at either end. A quote grounds when its core occurs on
    word boundaries (no letter, digit or ``_`` directly before or after it) and is
    substantial, at least two words and twelve characters, or else is a whole utterance.
    Short scraps such as "for" occur in almost any text and prove nothing.

    The utterances of a data block are the cores of: each line; the message of a line
    that starts with a speaker or field prefix (``User 2: ``, ``Caroline: ``,
    ``"city": ``, at most 40 characters before ``": "``), which is the line without it;
    and each sentence of the message or line (split after ``.``, ``!`` or ``?`` followed
    by a space), a list marker (``2. ``) at the start of a line set aside. A quote with no
    letter or digit grounds nothing. So a short chat message ("Berlin", "Yes, I do."), a short sentence
    inside one ("I'm vegan."), a short line of a log or a JSON value grounds whole, but
    never a word taken out of it.
    """

    def __init__(self, chunks: list[DataChunk]) -> None:
        self._sources = [_Source.of(c) for c in chunks]

    def find(self, quote: str, hint: str | None = None) -> str | None:
        """The data_id of the block the quote grounds in (``hint`` first), or None."""
        normalized = normalize_text(quote)
        core = _core(normalized)
        ordered = sorted(self._sources, key=lambda s: s.data_id != hint)
        if core:
            substantial = _substantial(core)
            for source in ordered:
                if core in source.utterances or (substantial and _occurs(core, source.text) >= 0):
                    return source.data_id
        if "..." in normalized:
            return _find_elided(normalized, ordered)
        return None


@dataclass(frozen=True)
class _Source:
    data_id: str
    text: str
    lines: tuple[str, ...]
    utterances: frozenset[str]

    @classmethod
    def of(cls, chunk: DataChunk) -> _Source:
        lines = tuple(filter(None, (normalize_text(line) for line in chunk.text.splitlines())))
        units: set[str] = set()
        for line in lines:
            units.add(_core(line))
            message = _LIST_MARKER.sub("", line)
            prefix = _PREFIX.match(message)
            message = message[prefix.end() :] if prefix else message
            units.add(_core(message))
            units.update(_core(sentence) for sentence in _SENTENCE_END.split(message))
        units.discard("")
        return cls(chunk.data_id, normalize_text(chunk.text), lines, frozenset(units))


def _core(text: str) -> str:
    """The text without punctuation or spaces at either end."""
    start, end = 0, len(text)
    while start < end and not _is_word(text[start]):
        start += 1
    while end > start and not _is_word(text[end - 1]):
        end -= 1
    return text[start:end]


def _substantial(core: str) -> bool:
    # A core starts and ends with a letter or digit, so a space inside means two words.
    return len(core) >= _MIN_QUOTE_CHARS and " " in core


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _occurs(needle: str, text: str, start: int = 0, end: int | None = None) -> int:
    """Where the first occurrence of ``needle`` in ``text[start:end]`` on word boundaries
    ends, or -1."""
    end = len(text) if end is None else min(end, len(text))
    check_start, check_end = _is_word(needle[0]), _is_word(needle[-1])
    at = text.find(needle, start, end)
    while at >= 0:
        after = at + len(needle)
        if not (check_start and at > 0 and _is_word(text[at - 1])) and not (
            check_end and after < len(text) and _is_word(text[after])
        ):
            return after
        at = text.find(needle, at + 1, end)
    return -1


def _find_elided(normalized: str, sources: list[_Source]) -> str | None:
    """An elided quote ("A ... B") grounds when it has at most three parts, each at least
    three characters, that together are substantial and occur in order, each on word
    boundaries, in one line, within 400 characters: otherwise scraps like "i...a...e"
    or "for ... the ... and" would be found in almost any text."""
    parts = [p for p in (_core(part) for part in normalized.split("...")) if p]
    if not 2 <= len(parts) <= _MAX_ELIDED_PARTS or min(map(len, parts)) < _MIN_PART_CHARS:
        return None
    if not _substantial(" ".join(parts)):
        return None
    for source in sources:
        for line in source.lines:
            start = _occurs(parts[0], line)
            while start >= 0:
                first = start - len(parts[0])
                position = start
                for part in parts[1:]:
                    position = _occurs(part, line, position, first + _MAX_ELIDED_SPAN)
                    if position < 0:
                        break
                else:
                    return source.data_id
                start = _occurs(parts[0], line, first + 1)
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
    quotes = QuoteIndex(chunks)
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
        data_id = quotes.find(op.evidence, op.data_id)
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
