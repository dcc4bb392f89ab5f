"""Change notifications: who hears that a profile changed, in both protocol eras.

The service announces every committed change here, whoever made it (a tool, the worker,
another adapter). A change reaches only its own namespace: two tenants with a profile of
the same id never see each other's events. 2026-era clients listen through
``subscriptions/listen`` (the SDK calls :meth:`NamespacedBus.add_listener`); 2025-era
clients have no such stream, so the server remembers their sessions and notifies them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import anyio.lowlevel
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated, ServerEvent

__all__ = ["MAX_SESSIONS", "NamespacedBus", "profile_uri"]

log = logging.getLogger("mcp_profiles")

MAX_SESSIONS = 256

Listener = Callable[[ServerEvent], None]


def profile_uri(profile_id: str) -> str:
    """The resource URI of a profile."""
    return f"profile://{profile_id}"


class NamespacedBus:
    """Per-namespace fan-out of change events to listeners and handshake-era sessions."""

    def __init__(self, default_namespace: str = "default") -> None:
        self.default_namespace = default_namespace
        self._listeners: dict[object, tuple[str, Listener]] = {}
        self._sessions: dict[str, OrderedDict[int, Any]] = {}

    def add_listener(self, namespace: str, listener: Listener) -> Callable[[], None]:
        """Register a ``subscriptions/listen`` listener of one namespace; returns its removal."""
        key = object()
        self._listeners[key] = (namespace, listener)

        def remove() -> None:
            self._listeners.pop(key, None)

        return remove

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
        """A change in both protocol eras: resource-updated for ``uri`` and, when ``listed``
        (a profile appeared or went), resources list-changed."""
        await self.publish_in(namespace, ResourceUpdated(uri=uri))
        if listed:
            await self.publish_in(namespace, ResourcesListChanged())
        await self.notify_sessions(namespace, uri, listed=listed)
