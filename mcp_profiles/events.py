"""Protocol plumbing the SDK leaves to us: tenant-scoped change events, coded errors for
argument validation, and ``resources/list`` paged over the store.

Kept apart from ``server.py`` so the tool definitions there stay readable.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.lowlevel
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated, ServerEvent
from mcp.types import INVALID_PARAMS, CallToolResult, ListResourcesResult, ListToolsResult, Resource

from .errors import ProfilesError
from .models import ProfileSummary

__all__ = [
    "NamespacedBus",
    "coded_errors_middleware",
    "compact_schema",
    "compact_tool_schemas_middleware",
    "paged_resources_middleware",
]

log = logging.getLogger("mcp_profiles")

MAX_SESSIONS = 256
_CODES = ("not_found", "invalid", "conflict", "too_large", "extraction_failed", "unauthorized")
_PREFIX = re.compile(r"^Error executing tool [^:]+(?::\s*)?", re.S)


def _token_namespace() -> str | None:
    token = get_access_token()
    if token is not None and token.claims and isinstance(token.claims.get("namespace"), str):
        return str(token.claims["namespace"])
    return None


class NamespacedBus:
    """A ``SubscriptionBus`` that delivers an event only to listeners of its namespace.

    A listener's namespace is fixed when it subscribes (the bearer token of the
    ``subscriptions/listen`` request); an event's is the writer's. Without this, two tenants
    with a profile of the same id would see each other's change events.
    """

    def __init__(self, default_namespace: str = "default") -> None:
        self.default_namespace = default_namespace
        self._listeners: dict[object, tuple[str, Callable[[ServerEvent], None]]] = {}
        self._sessions: dict[str, OrderedDict[int, Any]] = {}

    def _current(self) -> str:
        return _token_namespace() or self.default_namespace

    async def publish(self, event: ServerEvent) -> None:
        """Deliver to the current namespace's listeners (the SDK's ``ctx.notify_*`` path)."""
        await self.publish_in(self._current(), event)

    async def publish_in(self, namespace: str, event: ServerEvent) -> None:
        """Deliver an event to one namespace's listeners."""
        for ns, listener in list(self._listeners.values()):
            if ns != namespace:
                continue
            try:
                listener(event)
            except Exception:  # one broken stream must not fail the writer
                log.exception("subscription listener raised; continuing")
        await anyio.lowlevel.checkpoint()

    async def publish_for(self, namespace: str, uri: str, *, listed: bool) -> None:
        """Resource-updated for ``uri`` and, when ``listed``, resources list-changed."""
        await self.publish_in(namespace, ResourceUpdated(uri=uri))
        if listed:
            await self.publish_in(namespace, ResourcesListChanged())

    def remember_session(self, namespace: str, session: Any) -> None:
        """Keep the latest request session of a handshake-era connection (keyed by the
        connection's own initialize params), so writes it did not make reach it too. At
        most ``MAX_SESSIONS`` a namespace; a session that fails to receive is forgotten."""
        params = getattr(session, "client_params", None)
        if params is None:
            return
        sessions = self._sessions.setdefault(namespace, OrderedDict())
        sessions[id(params)] = session
        sessions.move_to_end(id(params))
        while len(sessions) > MAX_SESSIONS:
            sessions.popitem(last=False)

    async def notify_sessions(self, namespace: str, uri: str, *, listed: bool) -> None:
        """Resource-updated (and list-changed) to every known handshake-era connection of a
        namespace: 2025-era clients have no ``subscriptions/listen``, only these."""
        sessions = self._sessions.get(namespace, OrderedDict())
        for key, session in list(sessions.items()):
            try:
                await session.send_resource_updated(uri)
                if listed:
                    await session.send_resource_list_changed()
            except Exception:  # a closed connection: forget it, never fail the writer
                log.debug("session notification not delivered", exc_info=True)
                sessions.pop(key, None)

    async def announce(self, namespace: str, uri: str, *, listed: bool) -> None:
        """A change in both protocol eras: listeners of the namespace and its sessions."""
        await self.publish_for(namespace, uri, listed=listed)
        await self.notify_sessions(namespace, uri, listed=listed)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        """Register a listener in the caller's namespace; returns the unsubscribe."""
        key = object()
        self._listeners[key] = (self._current(), listener)

        def unsubscribe() -> None:
            self._listeners.pop(key, None)

        return unsubscribe


def _recode(text: str) -> str:
    """Give SDK-made tool errors (bad arguments, unknown tool) a leading code word."""
    body = _PREFIX.sub("", text, count=1)
    if body.split(":", 1)[0] in _CODES:
        return body
    if text.startswith("Unknown tool"):
        return f"not_found: {text}"
    if "validation error" in body:
        lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
        detail = "; ".join(
            f"{lines[i]}: {lines[i + 1].split(' [type=')[0]}" for i in range(1, len(lines) - 1, 2)
        )
        return f"invalid: {detail or body}"
    return f"error: {body or 'the tool failed unexpectedly; see the server log'}"


async def coded_errors_middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Make every tool error's text start with a code word, whoever produced it."""
    result = await call_next(ctx)
    if ctx.method != "tools/call":
        return result
    if isinstance(result, CallToolResult):
        if not result.is_error:
            return result  # the common case: no copy of the whole result
        result = result.model_dump(by_alias=True, exclude_none=True)
    if not isinstance(result, dict) or not result.get("isError"):
        return result
    content = [
        {**block, "text": _recode(block["text"])} if block.get("type") == "text" else block
        for block in result.get("content", [])
    ]
    return {**result, "content": content}


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
