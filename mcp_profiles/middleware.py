"""Protocol plumbing the SDK leaves to us, beside the adapters: ``subscriptions/listen``
scoped to the caller's namespace, 2025-era sessions and their ``resources/subscribe``,
honest capabilities, ``resources/list`` paged over the store, and compact output schemas.

Kept apart from ``server.py`` so the tool definitions there stay readable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ServerEvent
from mcp.types import INVALID_PARAMS, ListResourcesResult, ListToolsResult, Resource, SubscribeRequestParams
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError

from .bus import NamespacedBus
from .errors import ProfilesError, validation_message
from .models import ProfileSummary
from .transports import token_namespace

__all__ = [
    "ListenBus",
    "capabilities_middleware",
    "sessions_middleware",
    "compact_schema",
    "compact_tool_schemas_middleware",
    "paged_resources_middleware",
]


class ListenBus:
    """The SDK's ``SubscriptionBus`` over :class:`NamespacedBus`: a listener's namespace is
    fixed when it subscribes (the bearer token of its ``subscriptions/listen`` request)."""

    def __init__(self, bus: NamespacedBus) -> None:
        self.bus = bus

    def _current(self) -> str:
        return token_namespace() or self.bus.default_namespace

    async def publish(self, event: ServerEvent) -> None:
        """Deliver to the current namespace's listeners (the SDK's ``ctx.notify_*`` path)."""
        await self.bus.publish_in(self._current(), event)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        """Register a listener in the caller's namespace; returns the unsubscribe."""
        return self.bus.add_listener(self._current(), listener)


def sessions_middleware(bus: NamespacedBus) -> ServerMiddleware[Any]:
    """Remember every 2025-era connection on the bus (so it hears of changes it did not
    make, and is forgotten when it closes), and serve ``resources/subscribe`` and
    ``resources/unsubscribe`` for it; the SDK serves neither. 2026-era requests pass
    through (there the SDK answers -32601: those methods no longer exist)."""

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS or ctx.method == "initialize":
            return await call_next(ctx)
        namespace = token_namespace() or bus.default_namespace
        bus.remember_session(namespace, ctx.session)
        if ctx.method not in ("resources/subscribe", "resources/unsubscribe"):
            return await call_next(ctx)
        try:
            uri = str(SubscribeRequestParams.model_validate(ctx.params or {}, by_name=False).uri)
        except ValidationError as e:
            raise MCPError(INVALID_PARAMS, f"invalid: {validation_message(e)}") from None
        if ctx.method == "resources/subscribe":
            bus.subscribe_session(namespace, ctx.session, uri)
        else:
            bus.unsubscribe_session(namespace, ctx.session, uri)
        return {}

    return middleware


async def capabilities_middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Declare what the server sends: resource subscriptions and resource list changes in
    both eras (the SDK derives ``false`` for a 2025-era handshake, because it neither
    serves ``resources/subscribe`` nor knows we notify), and no tool or prompt list changes
    (their lists are fixed)."""
    result = await call_next(ctx)
    if ctx.method not in ("initialize", "server/discover") or not isinstance(result, dict):
        return result
    caps = result.get("capabilities")
    if isinstance(caps, dict):
        if isinstance(caps.get("resources"), dict):
            caps["resources"] = {**caps["resources"], "subscribe": True, "listChanged": True}
        for name in ("tools", "prompts"):
            if isinstance(caps.get(name), dict):
                caps[name] = {**caps[name], "listChanged": False}
    return result


PageLoader = Callable[
    [ServerRequestContext[Any, Any], str | None], Awaitable[tuple[list[ProfileSummary], str | None]]
]


def paged_resources_middleware(load_page: PageLoader) -> ServerMiddleware[Any]:
    """Answer ``resources/list`` with every stored profile, a page at a time."""

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "resources/list":
            return await call_next(ctx)
        cursor = (ctx.params or {}).get("cursor")
        try:
            page, next_cursor = await load_page(ctx, cursor if isinstance(cursor, str) else None)
        except ProfilesError as e:
            raise MCPError(INVALID_PARAMS, str(e)) from None
        resources = [
            Resource(
                uri=f"profile://{p.id}",
                name=p.alias or p.id,
                title=p.name or p.id,
                description=f"{p.kind} profile, version {p.version}"
                + (f": {p.summary}" if p.summary else ""),
                mime_type="application/json",
            )
            for p in page
        ]
        if cursor is None:
            resources.insert(
                0,
                Resource(
                    uri="connections://index",
                    name="connections",
                    description="Model provider connections (no secrets)",
                    mime_type="application/json",
                ),
            )
        return ListResourcesResult(resources=resources, next_cursor=next_cursor)

    return middleware


class _Recursive(Exception):
    """A schema whose ``$defs`` refer to themselves: it cannot be inlined."""


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The same JSON Schema, cheaper to validate: ``$defs`` inlined, and ``anyOf: [T, null]``
    folded into ``type: [T, "null"]``. Clients that check every result against the tool's
    output schema (the Python SDK's ``Client`` does, with ``jsonschema``) spend most of a
    call there; this shape accepts exactly the same documents. Recursive schemas are kept.
    """
    defs: dict[str, Any] = schema.get("$defs", {})

    def walk(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [walk(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in seen or name not in defs:
                raise _Recursive(name)
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return walk({**defs[name], **rest}, seen | {name})
        out = {k: walk(v, seen) for k, v in node.items() if k != "$defs"}
        if isinstance(out.get("discriminator"), dict):  # its mapping names $defs, which are gone
            out["discriminator"] = {k: v for k, v in out["discriminator"].items() if k != "mapping"}
        options = out.get("anyOf")
        if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
            other = options[0] if options[1] == {"type": "null"} else options[1]
            blocked = {"enum", "const", "anyOf", "oneOf", "allOf", "not", "$ref"}
            if isinstance(other, dict) and isinstance(other.get("type"), str) and not blocked & other.keys():
                del out["anyOf"]
                out = {**other, **out, "type": [other["type"], "null"]}
        return out

    try:
        compact: dict[str, Any] = walk(schema, frozenset())
    except _Recursive:
        return schema
    return compact


def compact_tool_schemas_middleware() -> ServerMiddleware[Any]:
    """Publish every tool's output schema in its compact form (see :func:`compact_schema`)."""
    cache: dict[str, tuple[Any, dict[str, Any]]] = {}

    def compact(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        hit = cache.get(name)
        if hit is None or hit[0] != schema:
            hit = cache[name] = (schema, compact_schema(schema))
        return hit[1]

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/list":
            return result
        if isinstance(result, ListToolsResult):
            for tool in result.tools:
                if tool.output_schema is not None:
                    tool.output_schema = compact(tool.name, tool.output_schema)
        elif isinstance(result, dict):
            for tool in result.get("tools", []):
                if isinstance(tool, dict) and isinstance(tool.get("outputSchema"), dict):
                    tool["outputSchema"] = compact(str(tool.get("name")), tool["outputSchema"])
        return result

    return middleware
