"""The profile card: what a person sees when a host renders the ``show_profile`` tool.

The card is an MCP App (the ``io.modelcontextprotocol/ui`` extension): ``card.html`` is one
self-contained document served as the ``ui://`` resource below, and it reads and writes
only through ``tools/call`` back to this server. This module holds what the card needs
beyond the profile document: when each evidence quote's data arrived, which data is still
waiting or has failed, and the last change. It reads; every write goes through the tools.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from pydantic import BaseModel

from .contract import Store
from .models import Profile
from .render import render_markdown
from .service import located

__all__ = ["CARD_URI", "CardItem", "LastChange", "ProfileCard", "card_html", "card_text", "load_card"]

CARD_URI = "ui://mcp-profiles/profile-card.html"
UNSETTLED = ("pending", "processing", "failed")
MAX_UNSETTLED = 100  # a bulk import can queue thousands; the card lists the oldest


@cache
def card_html() -> str:
    """The card's HTML, shipped inside the package (no bundler, nothing fetched)."""
    return files("mcp_profiles").joinpath("card.html").read_text(encoding="utf-8")


class CardItem(BaseModel):
    """A data item behind the profile: one the evidence cites, or one not yet settled (the
    oldest 100 of those)."""

    data_id: str
    input_type: str | None
    status: str
    received_at: str
    error: str | None = None


class LastChange(BaseModel):
    """The newest version: who made it, when and why."""

    version: int
    actor: str
    reason: str | None
    changed_at: str


class ProfileCard(BaseModel):
    """A profile with what the card shows next to it."""

    profile: Profile
    last_change: LastChange | None
    data_items: list[CardItem]
    data_counts: dict[str, int]  # data items by status: pending, processing, done, failed


async def load_card(store: Store, ns: str, ref: str) -> ProfileCard:
    """The card's data in one read transaction.

    Raises:
        NotFound: no profile has this id or alias.
    """
    async with store.read() as tx:
        pk, profile = await located(tx, ns, ref)
        newest = await tx.history(ns, pk, 1)
        cited = sorted({e.data_id for a in profile.attributes.values() for e in a.evidence})
        items = await tx.item_headers(ns, pk, cited, UNSETTLED, MAX_UNSETTLED)
        counts = await tx.item_counts(ns, pk)
    rows = [
        CardItem(
            data_id=i.id,
            input_type=i.input_type,
            status=i.status,
            received_at=i.created_at,
            error=i.error if i.status == "failed" else None,
        )
        for i in items
    ]
    last = None
    if newest:
        rev = newest[0]
        last = LastChange(version=rev.version, actor=rev.actor, reason=rev.reason, changed_at=rev.changed_at)
    return ProfileCard(profile=profile, last_change=last, data_items=rows, data_counts=counts)


def card_text(card: ProfileCard) -> str:
    """The same card as markdown, for hosts that show text only."""
    text = render_markdown(card.profile)
    counts = card.data_counts
    waiting = counts.get("pending", 0) + counts.get("processing", 0)
    failed = [i for i in card.data_items if i.status == "failed"]
    lines: list[str] = []
    if waiting:
        lines.append(f"{waiting} data item(s) are waiting to be processed.")
    lines += [f"Data item {i.data_id} failed: {i.error or 'unknown error'}" for i in failed]
    if counts.get("failed", 0) > len(failed):
        lines.append(f"{counts['failed'] - len(failed)} more data item(s) failed.")
    if card.last_change is not None:
        change = card.last_change
        why = f" ({change.reason})" if change.reason else ""
        lines.append(f"Last change: version {change.version} by {change.actor} at {change.changed_at}{why}.")
    return text + ("\n" + "\n".join(lines) + "\n" if lines else "")
