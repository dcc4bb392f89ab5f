"""Argument completion (``completion/complete``): profile ids and aliases as people type.

Hosts and the MCP Inspector offer these for the ``profile://{ref}`` template and for the
profile arguments of the prompts. The SDK's completion handler gets no request context,
so ``completion_context_middleware`` hands it the current one (for the store and the
caller's namespace) through a context variable.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import Completion, PromptReference, ResourceTemplateReference

from .contract import Store
from .models import Kind

__all__ = ["MAX_VALUES", "complete_profile_ref", "completion_context_middleware", "current_request"]

MAX_VALUES = 100  # the most a completion may carry (MCP spec)

# (reference, argument) -> the kind of profile it names (None: either kind).
_PROMPT_ARGS: dict[tuple[str, str], Kind | None] = {
    ("personalize", "user"): "user",
    ("personalize", "assistant"): "assistant",
    ("review_profile", "profile"): None,
    ("remember", "user"): "user",
}
_TEMPLATES = ("profile://{ref}", "profile://{id}")

_request: ContextVar[ServerRequestContext[Any, Any] | None] = ContextVar("mcp_profiles_request", default=None)


def current_request() -> ServerRequestContext[Any, Any]:
    """The ``completion/complete`` request being answered."""
    ctx = _request.get()
    if ctx is None:
        raise RuntimeError("completion handler called outside completion_context_middleware")
    return ctx


async def completion_context_middleware(
    ctx: ServerRequestContext[Any, Any], call_next: CallNext
) -> HandlerResult:
    """Make the request context visible to the completion handler."""
    if ctx.method != "completion/complete":
        return await call_next(ctx)
    token = _request.set(ctx)
    try:
        return await call_next(ctx)
    finally:
        _request.reset(token)


def _target(ref: PromptReference | ResourceTemplateReference, argument: str) -> tuple[bool, Kind | None]:
    """Whether this argument names a profile, and of which kind."""
    if isinstance(ref, ResourceTemplateReference):
        return ref.uri in _TEMPLATES, None
    key = (ref.name, argument)
    return key in _PROMPT_ARGS, _PROMPT_ARGS.get(key)


async def complete_profile_ref(
    store: Store,
    ns: str,
    ref: PromptReference | ResourceTemplateReference,
    argument: str,
    value: str,
) -> Completion | None:
    """Ids and aliases of the caller's profiles that start with ``value`` (None: not a
    profile argument, nothing to offer)."""
    known, kind = _target(ref, argument)
    if not known or len(value) > 128:
        return None
    async with store.read(snapshot=False) as tx:
        rows, total = await tx.refs_starting_with(ns, value, kind, MAX_VALUES)
    start = value.casefold()
    values: list[str] = []
    for profile_id, alias in rows:
        for name in (profile_id, alias):
            if name and name.casefold().startswith(start) and name not in values:
                values.append(name)
    values = values[:MAX_VALUES]
    return Completion(values=values, total=total, has_more=total > len(rows))
