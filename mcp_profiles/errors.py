"""Errors that reach the caller, each with a stable code word.

The code word leads every message a client sees (``not_found: profile 'x' ...``), so an
agent can branch on it without parsing prose, and a person reads the rest.

    ProfilesError
    ├── NotFound            not_found          the profile, job or connection does not exist
    ├── Invalid             invalid            input breaks a rule; the message names field and rule
    ├── Conflict            conflict           expected_version is stale, or an alias is taken
    ├── TooLarge            too_large          data, document or namespace exceeds a limit
    ├── ExtractionFailed    extraction_failed  the model call or its answer could not be used
    ├── Timeout             timeout            waited too long for work another worker holds
    └── Unauthorized        unauthorized       no or wrong credentials for the namespace
"""

from __future__ import annotations

from pydantic import ValidationError

__all__ = [
    "Conflict",
    "ExtractionFailed",
    "Invalid",
    "NotFound",
    "ProfilesError",
    "Timeout",
    "TooLarge",
    "Unauthorized",
    "validation_message",
]


class ProfilesError(Exception):
    """Base class: a failure whose message is meant for the caller."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class NotFound(ProfilesError):
    """The named profile, job or connection does not exist in this namespace."""

    code = "not_found"


class Invalid(ProfilesError):
    """The input breaks a rule; the message names the field and the rule."""

    code = "invalid"


class Conflict(ProfilesError):
    """The write lost a race or collides with existing state; nothing was written."""

    code = "conflict"


class TooLarge(ProfilesError):
    """The input or the resulting document exceeds a configured limit."""

    code = "too_large"


class ExtractionFailed(ProfilesError):
    """The model could not be called, or its answer could not be used."""

    code = "extraction_failed"

    def __init__(self, message: str, raw_output: str | None = None) -> None:
        super().__init__(message)
        self.raw_output = raw_output


class Unauthorized(ProfilesError):
    """The caller presented no valid credentials for this namespace."""

    code = "unauthorized"


class Timeout(ProfilesError):
    """Waited too long for work another worker holds; nothing is lost, the work goes on."""

    code = "timeout"


def validation_message(error: ValidationError) -> str:
    """Every problem pydantic found, as ``field: message`` joined by ``; `` (no links, no
    input values), built from its structured errors rather than its wording."""
    parts: list[str] = []
    for err in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in err["loc"]) or "arguments"
        message = "required argument is missing" if err["type"] == "missing" else err["msg"]
        parts.append(f"{field}: {message}")
    return "; ".join(dict.fromkeys(parts))
