"""What one claim's work adds up to, item by item: the changes, conflicts and drops of every
batch an item was in, and its share of each call's usage."""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any

from .llm import Usage
from .merge import DROP_REASONS

__all__: list[str] = []


@dataclass
class _Progress:
    changes: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    usage: Usage = field(default_factory=Usage)


def _share(usage: Usage, weights: list[int]) -> list[Usage]:
    """Split one call's usage over the items in it, by their share of the data."""
    total = sum(weights) or 1
    fields_ = [f.name for f in dataclass_fields(Usage)]
    parts: list[dict[str, int]] = [{} for _ in weights]
    for name in fields_:
        value = getattr(usage, name)
        given = [value * w // total for w in weights]
        given[0] += value - sum(given)
        for part, n in zip(parts, given, strict=True):
            part[name] = n
    return [Usage(**p) for p in parts]
