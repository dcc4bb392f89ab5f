"""Token budgets: a cheap token estimate, and cutting data into pieces that fit.

Cuts fall where a reader would cut (message starts, paragraphs, lines) so a quote the
model copies from one piece is still whole; nothing is ever lost between pieces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["estimate_tokens", "plan_batches", "split_data"]


def _cost(text: str) -> int:
    """Sevenths of a token: ASCII 2/7 (3.5 characters a token), anything else a whole token.

    English averages about 4 characters a token, code and JSON less; non-Latin scripts
    run near one token a character. Erring high keeps requests under the budget.
    """
    ascii_chars = len(text.encode("ascii", "ignore"))
    return 2 * ascii_chars + 7 * (len(text) - ascii_chars)


def estimate_tokens(text: str) -> int:
    """A cheap, deliberately high token estimate: ceil(ASCII/3.5 + other characters)."""
    return -(-_cost(text) // 7)


_MESSAGE_START = re.compile(
    r"""^(?: [ \t]*\[[^\]\n]{1,40}\]                 # [timestamp] or [speaker]
          | [ \t]*\d{4}-\d\d-\d\d[T ]\d\d:\d\d      # ISO-timestamped log line
          | [ \t]*[{\[]                             # a JSON line
          | \#{1,6}[ \t]                            # a markdown heading
          | [ \t]*\w[\w .'()-]{0,40}:(?=[ \t]|$)    # Speaker:
        )""",
    re.MULTILINE | re.VERBOSE,
)
_PARAGRAPH_END = re.compile(r"\n(?:[ \t]*\n)+")


def _cuts(text: str, level: int) -> list[int]:
    if level == 0:
        return [m.start() for m in _MESSAGE_START.finditer(text) if m.start() > 0]
    if level == 1:
        return [m.end() for m in _PARAGRAPH_END.finditer(text) if m.end() < len(text)]
    return [m.end() for m in re.finditer("\n", text) if m.end() < len(text)]


def _hard_split(text: str, budget: int) -> list[str]:
    pieces, start, limit = [], 0, 7 * budget
    while start < len(text):
        end = min(len(text), start + limit // 2)
        while (over := _cost(text[start:end]) - limit) > 0:
            end -= max(1, over // 7)
        space = max(text.rfind(" ", start, end), text.rfind("\t", start, end))
        if end < len(text) and space > start + (end - start) // 2:
            end = space + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def _split(text: str, budget: int, level: int) -> list[str]:
    if _cost(text) <= 7 * budget:
        return [text]
    if level > 2:
        return _hard_split(text, budget)
    bounds = [0, *_cuts(text, level), len(text)]
    if len(bounds) == 2:
        return _split(text, budget, level + 1)
    pieces: list[str] = []
    current, current_cost = "", 0
    for a, b in zip(bounds, bounds[1:], strict=False):
        segment = text[a:b]
        cost = _cost(segment)
        if current and current_cost + cost <= 7 * budget:
            current, current_cost = current + segment, current_cost + cost
            continue
        if current:
            pieces.append(current)
        if cost > 7 * budget:
            pieces.extend(_split(segment, budget, level + 1))
            current, current_cost = "", 0
        else:
            current, current_cost = segment, cost
    if current:
        pieces.append(current)
    return pieces


def split_data(text: str, budget_tokens: int) -> list[str]:
    """Cut text into pieces of at most ``budget_tokens`` (estimated), losing nothing.

    Cuts fall on message starts (``Name:``, ``[timestamp]``, JSON lines, headings) where
    there are any, else on blank lines, else on line ends, else mid-line (at a space when
    one is near). ``"".join(pieces) == text`` always holds.
    """
    if budget_tokens < 1:
        raise ValueError("budget_tokens must be at least 1")
    return [] if not text else _split(text, budget_tokens, 0)


def plan_batches(items: Sequence[tuple[str, int]], budget_tokens: int) -> list[list[str]]:
    """Group consecutive (id, tokens) items, in order, into batches of at most the budget.

    An item over the budget on its own gets a batch of its own; split it first.
    """
    batches: list[list[str]] = []
    total = 0
    for item_id, tokens in items:
        if batches and total + tokens <= budget_tokens:
            batches[-1].append(item_id)
            total += tokens
        else:
            batches.append([item_id])
            total = tokens
    return batches
