"""Forgetting one data item: what of a document, a diff or a job result came only from it.

Pure and deterministic, like the merge. A value is derived from an item when its evidence
cites the item: an extracted fact whose every piece of evidence cites it goes; a fact
other items support too keeps its value and loses only this item's evidence (the quotes
are pieces of the item). An extracted summary goes when the item is among the items it
was written from (``Profile.summary_data_ids``); one written before that provenance was
recorded is removed by any forget, since nothing says what it came from. Facts and
summaries set by hand are never touched. History keeps a marker, not the value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .merge import normalize_text
from .models import Attribute, Profile

__all__ = [
    "Forgotten",
    "contributors",
    "forget_in_profile",
    "forgotten_marker",
    "scrub_changes",
    "scrub_result",
]


def forgotten_marker(data_id: str) -> dict[str, str]:
    """What history shows instead of a value that came from a forgotten item."""
    return {"forgotten": data_id}


@dataclass
class Forgotten:
    """What forgetting an item took out of one document."""

    facts: list[str] = field(default_factory=list)
    trimmed: list[str] = field(default_factory=list)
    summary: str | None = None

    @property
    def changed(self) -> bool:
        """Whether anything was taken out."""
        return bool(self.facts or self.trimmed or self.summary is not None)


def contributors(profile: Profile) -> set[str]:
    """The data items a model saw in ``profile``: those its non-manual facts cite, and those
    its extracted summary was written from. A summary the model writes from this profile
    draws on all of them."""
    ids = {e.data_id for a in profile.attributes.values() if a.source != "manual" for e in a.evidence}
    if profile.summary and profile.summary_source != "manual":
        ids.update(profile.summary_data_ids)
    return ids


def _summary_from(profile: Profile, data_id: str) -> bool:
    if not profile.summary or profile.summary_source in (None, "manual"):
        return False
    return not profile.summary_data_ids or data_id in profile.summary_data_ids


def forget_in_profile(profile: Profile, data_id: str) -> tuple[Profile, Forgotten]:
    """The document without what came only from ``data_id`` (version untouched)."""
    gone = Forgotten()
    attributes: dict[str, Attribute] = {}
    for key, attr in profile.attributes.items():
        cites = [e for e in attr.evidence if e.data_id == data_id]
        if attr.source == "manual" or not cites:
            attributes[key] = attr
        elif len(cites) == len(attr.evidence):
            gone.facts.append(key)
        else:
            gone.trimmed.append(key)
            attributes[key] = attr.model_copy(
                update={"evidence": [e for e in attr.evidence if e.data_id != data_id]}
            )
    gone.facts.sort()
    gone.trimmed.sort()
    update: dict[str, Any] = {"attributes": attributes}
    if _summary_from(profile, data_id):
        gone.summary = profile.summary
        update.update(summary=None, summary_source=None, summary_data_ids=[])
    if not gone.changed:
        return profile, gone
    return profile.model_copy(update=update), gone


def _scrub_attribute(value: Any, data_id: str) -> Any:
    """An attribute as a diff holds it (a dict), without what came only from the item."""
    if not isinstance(value, dict) or value.get("source") == "manual":
        return value
    evidence = value.get("evidence")
    if not isinstance(evidence, list):
        return value
    kept = [e for e in evidence if not (isinstance(e, dict) and e.get("data_id") == data_id)]
    if len(kept) == len(evidence):
        return value
    if not kept:
        return forgotten_marker(data_id)
    return {**value, "evidence": kept}


def scrub_changes(
    changes: Iterable[dict[str, Any]], data_id: str, summaries: set[str], known: set[str]
) -> list[dict[str, Any]]:
    """A revision's diff with the item's values replaced by the marker.

    ``summaries`` are the summary texts forgetting removed; ``known`` every summary text
    still kept in a document or snapshot. A summary in a diff that is in neither belongs to
    a pruned version whose source is no longer known, so it is treated as removed.
    """
    out = []
    for change in changes:
        path = str(change.get("path", ""))
        entry = dict(change)
        for side in ("old", "new"):
            value = entry.get(side)
            if path.startswith("attributes."):
                entry[side] = _scrub_attribute(value, data_id)
            elif path == "summary" and isinstance(value, str) and (value in summaries or value not in known):
                entry[side] = forgotten_marker(data_id)
        out.append(entry)
    return out


def scrub_result(
    result: dict[str, Any],
    data_id: str,
    folded: str,
    summaries: set[str],
    known: set[str],
    *,
    shared_batch: bool,
) -> dict[str, Any]:
    """Another item's job result (its changes and conflicts) without the item's values.

    A conflict carries a quote but no data id: a quote that occurs in the forgotten item's
    content (``folded``: as ``merge.normalize_text`` gives it) is treated as the item's. A summary proposed against one set by hand has no
    quote at all; it is treated as the item's when the two items were extracted together
    (``shared_batch``), and so is every quote when the item's content is no longer kept.
    """
    scrubbed = dict(result)
    scrubbed["changes"] = scrub_changes(result.get("changes", []), data_id, summaries, known)
    conflicts = []
    for conflict in result.get("conflicts", []):
        entry = dict(conflict)
        quote = entry.get("evidence")
        quoted = isinstance(quote, str) and (normalize_text(quote) in folded if folded else shared_batch)
        if quoted or (entry.get("key") == "summary" and shared_batch):
            entry["proposed"] = forgotten_marker(data_id)
            if quoted:
                entry["evidence"] = forgotten_marker(data_id)
        conflicts.append(entry)
    scrubbed["conflicts"] = conflicts
    return scrubbed
