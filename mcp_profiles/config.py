"""Settings: defaults, overridden by ``MCP_PROFILES_*`` variables, overridden by flags.

One frozen object built once at start-up and passed down explicitly; nothing reads the
environment later, so tests can build any configuration without touching globals.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import Invalid
from .llm import DEFAULT_MODEL
from .patching import Limits

__all__ = [
    "ASSISTANT_TOPICS",
    "DEFAULT_MODEL",
    "USER_TOPICS",
    "Config",
    "default_db_path",
    "parse_env_tokens",
    "parse_tokens",
]

USER_TOPICS = (
    "basic_info",
    "work",
    "education",
    "interests",
    "preferences",
    "communication",
    "goals",
    "relationships",
    "lifestyle",
)
ASSISTANT_TOPICS = ("persona", "expertise", "style", "boundaries")


def default_db_path() -> Path:
    """``profiles.sqlite3`` in the user's data directory (created on first use)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("mcp-profiles", appauthor=False)) / "profiles.sqlite3"


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Config:
    """Everything a running server or command needs to know."""

    db: str = ""
    namespace: str = "default"
    model: str = DEFAULT_MODEL
    prompts_dir: str | None = None
    limits: Limits = field(default_factory=Limits)
    confidence_floor: float = 0.5
    allow_sensitive: bool = False
    batch_tokens: int = 8000
    min_batch_tokens: int = 0
    max_batch_wait: float = 3600.0
    max_output_tokens: int = 4096
    user_topics: tuple[str, ...] = USER_TOPICS
    assistant_topics: tuple[str, ...] = ASSISTANT_TOPICS
    llm_timeout: float = 60.0
    llm_max_retries: int = 3
    lease_seconds: float = 600.0
    host_id: str = ""  # who "this host" is in claims; empty: derived (see jobs.host_identity)
    max_attempts: int = 5
    retry_delay: float = 30.0
    tokens: Mapping[str, str] = field(default_factory=dict)
    extraction: str = "auto"
    keep_data_days: float | None = 30.0
    keep_versions: int = 100
    keep_versions_days: float | None = None
    prune_interval: float = 3600.0
    cache_min_tokens: int = 0

    @property
    def db_path(self) -> str:
        """The database file, defaulting to the user's data directory."""
        return self.db or str(default_db_path())

    def with_overrides(self, **overrides: Any) -> Config:
        """A copy with the non-None overrides applied (flags beat the environment)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read ``MCP_PROFILES_*`` variables.

        Raises:
            Invalid: a variable holds a value of the wrong form.
        """
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            return env.get(f"MCP_PROFILES_{name}")

        values: dict[str, Any] = {}
        simple = {f.name for f in fields(cls)} - {"limits", "tokens", "user_topics", "assistant_topics"}
        for name in simple:
            raw = get(name.upper())
            if raw is None or raw == "":
                continue
            try:
                values[name] = _coerce(name, raw)
            except ValueError:
                raise Invalid(f"MCP_PROFILES_{name.upper()}: cannot use {raw!r}") from None
        limit_values = {}
        for f in fields(Limits):
            raw = get(f.name.upper())
            if raw:
                try:
                    limit_values[f.name] = int(raw)
                except ValueError:
                    raise Invalid(
                        f"MCP_PROFILES_{f.name.upper()}: must be a whole number, got {raw!r}"
                    ) from None
        if limit_values:
            values["limits"] = Limits(**limit_values)
            check_prompt_bytes(limit_values.get("max_prompt_bytes"), "MCP_PROFILES_MAX_PROMPT_BYTES")
        if get("USER_TOPICS"):
            values["user_topics"] = _split(get("USER_TOPICS") or "")
        if get("ASSISTANT_TOPICS"):
            values["assistant_topics"] = _split(get("ASSISTANT_TOPICS") or "")
        if get("TOKENS"):
            values["tokens"] = parse_env_tokens(get("TOKENS") or "")
        return cls(**values)


def _coerce(name: str, raw: str) -> Any:
    if name in ("keep_data_days", "keep_versions_days") and raw.lower() == "unlimited":
        return None
    if name in ("keep_data_days", "keep_versions_days", "prune_interval"):
        value = float(raw)
        if not value >= 0 or value == float("inf") or (name != "keep_data_days" and value == 0):
            raise ValueError(raw)
        return value
    if name == "keep_versions":
        if int(raw) < 1:
            raise ValueError(raw)
        return int(raw)
    if name == "confidence_floor" and not 0.0 <= float(raw) <= 1.0:
        raise ValueError(raw)
    if name == "batch_tokens" and int(raw) < 500:
        raise ValueError(raw)
    if name == "lease_seconds" and float(raw) < 1:
        raise ValueError(raw)
    if name == "max_attempts" and int(raw) < 1:
        raise ValueError(raw)
    if name == "retry_delay" and float(raw) < 0:
        raise ValueError(raw)
    if name in ("confidence_floor", "llm_timeout", "max_batch_wait", "lease_seconds", "retry_delay"):
        return float(raw)
    if name == "cache_min_tokens" and int(raw) < 0:
        raise ValueError(raw)
    if name in (
        "batch_tokens",
        "min_batch_tokens",
        "max_output_tokens",
        "llm_max_retries",
        "cache_min_tokens",
        "max_attempts",
    ):
        return int(raw)
    if name == "host_id" and (":" in raw or len(raw) > 200 or not raw.isprintable()):
        raise ValueError(raw)
    if name == "extraction" and raw not in ("auto", "none"):
        raise ValueError(raw)
    if name == "allow_sensitive":
        if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(raw)
        return raw.lower() in ("1", "true", "yes", "on")
    return raw


MIN_TOKEN_LENGTH = 16
MIN_PROMPT_BYTES = 2048


def check_prompt_bytes(value: int | None, where: str) -> None:
    """Raises Invalid for a prompt limit too small to hold a prompt's own framing."""
    if value is not None and value < MIN_PROMPT_BYTES:
        raise Invalid(f"{where}: must be at least {MIN_PROMPT_BYTES} bytes, got {value}")


def _check_token(token: str, where: str) -> None:
    """Raises Invalid for a token a guesser could find; the message never repeats the token."""
    if not token:
        raise Invalid(f"{where}: the token is empty")
    if len(token) < MIN_TOKEN_LENGTH:
        raise Invalid(
            f"{where}: the token has {len(token)} characters; use at least {MIN_TOKEN_LENGTH} "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )


def parse_env_tokens(text: str) -> dict[str, str]:
    """Parse ``MCP_PROFILES_TOKENS``: ``TOKEN=NAMESPACE`` pairs separated by commas.

    A namespace holds no ``=`` but a base64 token may end in ``=``, so each pair splits on
    its last ``=``. There are no comments in a variable: a token may begin with ``#``.

    Raises:
        Invalid: a pair is malformed, a token is empty or short, or appears twice.
    """
    tokens: dict[str, str] = {}
    for n, pair in enumerate(text.split(","), 1):
        if not pair.strip():
            continue
        where = f"MCP_PROFILES_TOKENS pair {n}"
        token, sep, ns = pair.strip().rpartition("=")
        token, ns = token.strip(), ns.strip()
        if not sep or not ns:
            raise Invalid(f"{where}: expected 'TOKEN=NAMESPACE'")
        _check_token(token, where)
        if token in tokens:
            raise Invalid(f"{where}: token given twice")
        tokens[token] = ns
    return tokens


def parse_tokens(text: str) -> dict[str, str]:
    """Parse a tokens file: ``TOKEN NAMESPACE`` lines, ``#`` starting a comment line.

    Raises:
        Invalid: a line is malformed, a token is short, or a token appears twice.
    """
    tokens: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or not parts[1].strip():
            raise Invalid(f"tokens line {n}: expected 'TOKEN NAMESPACE'")
        token, ns = parts[0], parts[1].strip()
        _check_token(token, f"tokens line {n}")
        if token in tokens:
            raise Invalid(f"tokens line {n}: token given twice")
        tokens[token] = ns
    return tokens
