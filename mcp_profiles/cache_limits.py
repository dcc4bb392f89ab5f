"""Minimum cacheable prompt lengths per model: the one table the request builder, ``stats`` and
``bench/cost.py`` read.

A ``cache_control`` breakpoint only caches when the prefix up to it reaches the model's
minimum; below it the prefix is billed in full on every call, silently. The figures are
Anthropic's published minimums, matched by model-name prefix (a dated snapshot such as
``claude-haiku-4-5-20251001`` matches ``claude-haiku-4-5``). A model with no published
figure, the default ``claude-haiku-5-5`` among them, gets the largest known minimum: the
extraction prefix is built to reach it, so caching works whatever the real figure is.
"""

from __future__ import annotations

from .llm import DEFAULT_MODEL

__all__ = [
    "MIN_CACHEABLE_TOKENS",
    "UNKNOWN_MODEL_MIN",
    "cache_minimum",
    "low_token_count",
    "min_cacheable_tokens",
]

# Longest prefix first, so "claude-opus-4-5" wins over a shorter "claude-opus-4".
MIN_CACHEABLE_TOKENS: dict[str, int] = {
    "claude-opus-5": 512,
    "claude-sonnet-5": 1024,
    "claude-sonnet-4-5": 1024,
    "claude-sonnet-4": 1024,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-1": 1024,
    "claude-opus-4": 1024,
    "claude-haiku-4-5": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
UNKNOWN_MODEL_MIN = max(MIN_CACHEABLE_TOKENS.values())


def min_cacheable_tokens(model: str = DEFAULT_MODEL) -> tuple[int, bool]:
    """(minimum cacheable prefix in tokens, whether that figure is published for ``model``)."""
    name = model.removeprefix("anthropic:")
    for prefix in sorted(MIN_CACHEABLE_TOKENS, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "-"):
            return MIN_CACHEABLE_TOKENS[prefix], True
    return UNKNOWN_MODEL_MIN, False


def cache_minimum(model: str, override: int = 0) -> int:
    """The minimum the extraction prefix is built to reach: a configured figure, else the table's."""
    return override if override > 0 else min_cacheable_tokens(model)[0]


def low_token_count(text: str) -> int:
    """Characters / 4: lower than real tokenizers count English prose, JSON and markup.

    A prefix sized with it reaches the minimum under the real tokenizer too; the package's
    ``estimate_tokens`` counts high on purpose (budgets) and would undershoot here.
    """
    return -(-len(text) // 4)
