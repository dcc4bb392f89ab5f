"""The profile document and its rules, shared by every layer.

One JSON document per profile, and the operations extraction proposes on it. Input is forgiving where a known API spells things
differently (the AI-configuration API's camelCase body and ``"$type"`` are accepted as
they are); output is always snake_case. Rules that need no I/O live here; rules that need
the store (alias uniqueness, known connections) live in the service.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, field_validator
from pydantic.config import JsonDict

__all__ = [
    "ALIAS_RE",
    "ATTRIBUTE_KEY_RE",
    "CONNECTION_META_KEY",
    "ENV_NAME_RE",
    "PROFILE_ID_RE",
    "Attribute",
    "ChatSettings",
    "Connection",
    "DataChunk",
    "EmbeddingSettings",
    "Evidence",
    "Extraction",
    "Kind",
    "ModelRef",
    "Profile",
    "ProfileSummary",
    "RemoveOp",
    "Revision",
    "SetOp",
    "normalize_keys",
    "now",
]

Kind = Literal["user", "assistant"]
Capability = Literal["chat", "embedding"]
Source = Literal["manual", "extracted", "imported"]

PROFILE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
ALIAS_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ATTRIBUTE_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}(\.[a-z0-9_]{1,64}){1,3}$")
TAG_RE = re.compile(r"^[^\x00-\x1f]{1,64}$")

ProfileId = Annotated[str, StringConstraints(pattern=PROFILE_ID_RE.pattern)]
Alias = Annotated[str, StringConstraints(pattern=ALIAS_RE.pattern)]
AttributeKey = Annotated[str, StringConstraints(pattern=ATTRIBUTE_KEY_RE.pattern)]
Tag = Annotated[str, StringConstraints(pattern=TAG_RE.pattern)]
ShortText = Annotated[str, StringConstraints(max_length=200)]


def now() -> str:
    """UTC timestamp, second precision, ``Z`` suffix: sortable as text."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Evidence(_Model):
    """Where an extracted value came from: a data item and a verbatim quote of it."""

    data_id: str
    quote: Annotated[str, StringConstraints(max_length=1000)]


class Attribute(_Model):
    """One fact about the profile, with how sure we are and why we believe it."""

    value: JsonValue
    confidence: float = Field(1.0, ge=0.0, le=1.0)
    source: Source = "manual"
    evidence: list[Evidence] = Field(default_factory=list, max_length=20)
    updated_at: str | None = None


class ModelRef(_Model):
    """Which model an assistant runs on."""

    provider_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    model_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ChatSettings(_Model):
    """Settings of a chat assistant."""

    type: Literal["chat"] = "chat"
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, gt=0, le=1_000_000)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    system_prompt_template: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    stop_sequences: list[str] | None = Field(None, max_length=16)


class EmbeddingSettings(_Model):
    """Settings of an embedding model profile."""

    type: Literal["embedding"] = "embedding"
    dimensions: int | None = Field(None, gt=0, le=65_536)
    normalize: bool | None = None


Settings = Annotated[ChatSettings | EmbeddingSettings, Field(discriminator="type")]


class Profile(_Model):
    """A user or assistant profile as stored and served."""

    id: ProfileId
    kind: Kind = "user"
    alias: Alias | None = None
    name: ShortText | None = None
    summary: Annotated[str, StringConstraints(max_length=4000)] | None = None
    summary_source: Source | None = None
    # Provenance of an extracted summary: the data items it was written from, so that
    # forgetting one of them can remove it (forget_data). Managed by the server.
    summary_data_ids: list[str] = Field(default_factory=list)
    attributes: dict[AttributeKey, Attribute] = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    capability: Capability | None = None
    model: ModelRef | None = None
    connection_id: ProfileId | None = None
    settings: Settings | None = None
    version: int = 0
    created_at: str | None = None
    updated_at: str | None = None

    def search_text(self) -> str:
        """The attribute values as one string, for the full-text index."""
        parts: list[str] = []
        for attr in self.attributes.values():
            value = attr.value
            parts.append(value if isinstance(value, str) else _json_text(value))
        return "\n".join(parts)


class ProfileSummary(_Model):
    """One row of ``list_profiles``: enough to choose, not the whole document."""

    id: str
    kind: Kind
    alias: str | None
    name: str | None
    summary: str | None
    version: int
    updated_at: str | None


class Revision(_Model):
    """One version in a profile's history."""

    version: int
    actor: str
    reason: str | None
    changed_at: str
    changes: list[dict[str, Any]]


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
CONNECTION_META_KEY = "$meta"


class Connection(_Model):
    """A model provider connection. Secrets are never stored, only the variable name.

    ``alias``, ``is_active``, ``version`` and ``updated_at`` serve the AI-management API's
    connection shape; connections made with the CLI have no alias and stay at version 1.
    They are columns of their own (migration 009). ``"$meta"``, where they were kept inside
    ``settings`` before, stays refused as a settings key: a file made before the migration
    would otherwise be ambiguous, and the API's answers stay as they were.
    """

    id: ProfileId
    name: ShortText | None = None
    provider_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    api_key_env: Annotated[str, StringConstraints(pattern=ENV_NAME_RE.pattern)] | None = None
    settings: dict[str, JsonValue] = Field(default_factory=dict)
    created_at: str | None = None
    alias: Alias | None = None
    is_active: bool = True
    version: int = 1
    updated_at: str | None = None

    @field_validator("settings")
    @classmethod
    def _no_reserved_key(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        if CONNECTION_META_KEY in value:
            raise ValueError(f"{CONNECTION_META_KEY!r} is reserved")
        return value


def _json_text(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(_json_text(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_json_text(v) for v in value)
    return "" if value is None else str(value)


# Keys of the AI-configuration API's body and our own snake_case names. Only the
# structural parts of a document are renamed; attribute keys and metadata are user data.
_RENAMES = {
    "connectionId": "connection_id",
    "providerId": "provider_id",
    "modelId": "model_id",
    "maxTokens": "max_tokens",
    "topP": "top_p",
    "systemPromptTemplate": "system_prompt_template",
    "stopSequences": "stop_sequences",
    "$type": "type",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
}
_STRUCTURED = ("model", "settings")


def normalize_keys(body: dict[str, Any]) -> dict[str, Any]:
    """Rename camelCase keys of a document or patch to snake_case, structure only.

    Raises:
        ValueError: when both spellings of one field are given.
    """
    out = _rename(body)
    for key in _STRUCTURED:
        if isinstance(out.get(key), dict):
            out[key] = _rename(out[key])
    return out


def _rename(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in body.items():
        new = _RENAMES.get(key, key)
        if new in out:
            raise ValueError(f"field {new!r} is given twice ({key!r} and {new!r})")
        out[new] = value
    return out


# ---- extraction operations ----------------------------------------------------------------
# What the model may propose (the forced tool's input) and the data it reads. They are domain
# types: ``extract.py`` asks for them, the pure ``merge.py`` decides what of them to believe.

MAX_OPERATIONS = 100
_VALUE_SCHEMA: JsonDict = {"type": ["string", "number", "integer", "boolean", "array", "object"]}


_Key = Annotated[str, Field(max_length=200, description="'topic.key' in lower snake case, e.g. 'work.role'.")]
_Evidence = Annotated[
    str,
    Field(min_length=1, max_length=1000, description="A short quote copied verbatim from one data block."),
]
_DataId = Annotated[str | None, Field(max_length=200, description="The id of the data block quoted.")]


class SetOp(BaseModel):
    """Record or change one attribute."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["set"]
    key: _Key
    value: JsonValue = Field(json_schema_extra=_VALUE_SCHEMA, description="The value; short and normalised.")
    confidence: float = Field(ge=0.0, le=1.0, description="How strongly the data supports it, 0 to 1.")
    evidence: _Evidence
    data_id: _DataId = None

    @field_validator("value")
    @classmethod
    def _not_null(cls, value: JsonValue) -> JsonValue:
        if value is None:
            raise ValueError("value must not be null; use a 'remove' operation to delete an attribute")
        return value


class RemoveOp(BaseModel):
    """Delete an attribute the data shows no longer holds."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["remove"]
    key: _Key
    evidence: _Evidence
    data_id: _DataId = None


Operation = Annotated[SetOp | RemoveOp, Field(discriminator="op")]


class Extraction(BaseModel):
    """Operations on the profile, and optionally a new summary (the forced tool's input)."""

    model_config = ConfigDict(extra="forbid")

    operations: list[Operation] = Field(max_length=MAX_OPERATIONS)
    summary: str | None = Field(None, description="Two or three sentences on who the subject is, or null.")

    @field_validator("operations", mode="before")
    @classmethod
    def _decode_stringified(cls, value: Any) -> Any:
        # Models sometimes send a nested array as a JSON string; accept what is unambiguous.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value


@dataclass(frozen=True)
class DataChunk:
    """One piece of data in a request; ``data_id`` is what evidence will point at."""

    data_id: str
    input_type: str | None
    text: str
