"""Change notifications: who hears that a profile changed, in both protocol eras.

The service announces every committed change here, whoever made it (a tool, the worker,
another adapter). A change reaches only its own namespace: two tenants with a profile of
the same id never see each other's events.

- 2026-era clients listen through ``subscriptions/listen`` (the SDK calls
  :meth:`NamespacedBus.add_listener`); the SDK filters and buffers those streams itself.
- 2025-era clients have no such stream, so the server remembers their sessions: each gets
  ``notifications/resources/list_changed`` when a profile appears or goes, and
  ``notifications/resources/updated`` only for the URIs it subscribed to with
  ``resources/subscribe``, as the specification says.

Delivery to a session never runs on the writer's path: each session has a small queue
drained by its own task, every send has a timeout, and a session that times out, falls
behind or closes is forgotten. A write therefore costs the same whether no one, a thousand
closed sessions, or a hung client is connected.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectSendStream
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated, ServerEvent

__all__ = ["MAX_SESSIONS", "NamespacedBus", "profile_uri"]

log = logging.getLogger("mcp_profiles")

MAX_SESSIONS = 256
MAX_QUEUED = 64
SEND_TIMEOUT = 5.0

Listener = Callable[[ServerEvent], None]


def profile_uri(profile_id: str) -> str:
    """The resource URI of a profile."""
    return f"profile://{profile_id}"


@dataclass
class _Session:
    """A remembered handshake-era connection: its latest session, its subscriptions, and
    the queue its delivery task drains."""

    session: Any
    uris: set[str] = field(default_factory=set)
    queue: MemoryObjectSendStream[ServerEvent] | None = None


class NamespacedBus:
    """Per-namespace fan-out of change events to listeners and handshake-era sessions.

    Session delivery needs :meth:`run` to be running (``open_app`` starts it); until then
    events for sessions are sent inline, still each with its timeout.
    """

    def __init__(self, default_namespace: str = "default", *, send_timeout: float = SEND_TIMEOUT) -> None:
        self.default_namespace = default_namespace
        self.send_timeout = send_timeout
        self._listeners: dict[object, tuple[str, Listener]] = {}
        self._sessions: dict[str, OrderedDict[int, _Session]] = {}
        self._tg: TaskGroup | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the session delivery tasks until cancelled (a second run alongside waits)."""
        if self._tg is not None:
            task_status.started()
            await anyio.sleep_forever()
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None
                tg.cancel_scope.cancel()

    # ---- 2026 era: subscriptions/listen --------------------------------------------------

    def add_listener(self, namespace: str, listener: Listener) -> Callable[[], None]:
        """Register a ``subscriptions/listen`` listener of one namespace; returns its removal."""
        key = object()
        self._listeners[key] = (namespace, listener)

        def remove() -> None:
            self._listeners.pop(key, None)

        return remove

    async def publish_in(self, namespace: str, event: ServerEvent) -> None:
        """Deliver an event to one namespace's listeners (never blocks: the SDK buffers)."""
        for ns, listener in list(self._listeners.values()):
            if ns != namespace:
                continue
            try:
                listener(event)
            except Exception:  # one broken stream must not fail the writer
                log.exception("subscription listener raised; continuing")
        await anyio.lowlevel.checkpoint()

    # ---- 2025 era: remembered sessions ---------------------------------------------------

    def remember_session(self, namespace: str, session: Any) -> None:
        """Keep a handshake-era connection's latest request session, so that changes it did
        not make reach it too; forget it when its connection closes. At most
        ``MAX_SESSIONS`` a namespace (the least recently active goes first)."""
        key = _connection_key(session)
        if key is None:
            return
        sessions = self._sessions.setdefault(namespace, OrderedDict())
        entry = sessions.get(key)
        if entry is not None:
            entry.session = session
            sessions.move_to_end(key)
            return
        sessions[key] = entry = _Session(session)
        _on_close(session, lambda: self._forget(namespace, key))
        if self._tg is not None:
            send, receive = anyio.create_memory_object_stream[ServerEvent](MAX_QUEUED)
            entry.queue = send
            self._tg.start_soon(self._drain, namespace, key, entry, receive)
        while len(sessions) > MAX_SESSIONS:
            self._forget(namespace, next(iter(sessions)))

    def subscribe_session(self, namespace: str, session: Any, uri: str) -> None:
        """``resources/subscribe``: this connection wants ``updated`` events for ``uri``."""
        self.remember_session(namespace, session)
        entry = self._entry(namespace, session)
        if entry is not None:
            entry.uris.add(uri)

    def unsubscribe_session(self, namespace: str, session: Any, uri: str) -> None:
        """``resources/unsubscribe``: no more ``updated`` events for ``uri``."""
        entry = self._entry(namespace, session)
        if entry is not None:
            entry.uris.discard(uri)

    def session_count(self, namespace: str) -> int:
        """How many handshake-era connections of a namespace are remembered."""
        return len(self._sessions.get(namespace, ()))

    def _entry(self, namespace: str, session: Any) -> _Session | None:
        key = _connection_key(session)
        sessions = self._sessions.get(namespace)
        return None if key is None or sessions is None else sessions.get(key)

    def _forget(self, namespace: str, key: int) -> None:
        sessions = self._sessions.get(namespace)
        entry = sessions.pop(key, None) if sessions is not None else None
        if entry is not None and entry.queue is not None:
            entry.queue.close()  # its delivery task drains nothing more and ends
        if sessions is not None and not sessions:
            del self._sessions[namespace]

    async def _drain(self, namespace: str, key: int, entry: _Session, receive: Any) -> None:
        async with receive:
            async for event in receive:
                if not await self._send(entry, event):
                    log.warning(
                        "a 2025-era session did not take a notification in %.1fs; forgetting it",
                        self.send_timeout,
                    )
                    self._forget(namespace, key)
                    return

    async def _send(self, entry: _Session, event: ServerEvent) -> bool:
        """One notification with a timeout; False when it timed out."""
        with anyio.move_on_after(self.send_timeout) as scope:
            try:
                if isinstance(event, ResourceUpdated):
                    await entry.session.send_resource_updated(event.uri)
                else:
                    await entry.session.send_resource_list_changed()
            except Exception:  # a broken connection: the close hook forgets it
                log.debug("session notification not delivered", exc_info=True)
        return not scope.cancelled_caught

    def _enqueue(self, namespace: str, key: int, entry: _Session, event: ServerEvent) -> bool:
        if entry.queue is None:
            return False
        try:
            entry.queue.send_nowait(event)
        except anyio.WouldBlock:
            log.warning("a 2025-era session fell %d notifications behind; forgetting it", MAX_QUEUED)
            self._forget(namespace, key)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._forget(namespace, key)
        return True

    async def notify_sessions(self, namespace: str, event: ServerEvent) -> None:
        """One event to the namespace's handshake-era connections: ``updated`` to those
        subscribed to its URI, anything else to all."""
        inline: list[tuple[int, _Session]] = []
        for key, entry in list(self._sessions.get(namespace, OrderedDict()).items()):
            if isinstance(event, ResourceUpdated) and event.uri not in entry.uris:
                continue
            if not self._enqueue(namespace, key, entry, event):
                inline.append((key, entry))
        for key, entry in inline:  # the bus is not running: deliver here, still bounded
            if not await self._send(entry, event):
                self._forget(namespace, key)

    async def announce(self, namespace: str, uri: str, *, listed: bool) -> None:
        """A change in both protocol eras: resource-updated for ``uri`` and, when ``listed``
        (a profile appeared or went), resources list-changed."""
        events: list[ServerEvent] = [ResourceUpdated(uri=uri)]
        if listed:
            events.append(ResourcesListChanged())
        for event in events:
            await self.publish_in(namespace, event)
            await self.notify_sessions(namespace, event)


def _connection_key(session: Any) -> int | None:
    """One key per connection: its ``Connection`` when the SDK exposes it, else the
    connection's own initialize params (None before a handshake-era initialize)."""
    connection = getattr(session, "_connection", None)
    if connection is not None:
        return id(connection)
    params = getattr(session, "client_params", None)
    return None if params is None else id(params)


def _on_close(session: Any, callback: Callable[[], None]) -> None:
    """Run ``callback`` when the session's connection closes.

    The SDK unwinds ``Connection.exit_stack`` at teardown and documents it as the place
    for per-connection cleanup; the request session reaches its connection only through
    a private attribute, so this degrades to no hook (timeouts still forget the session).
    """
    connection = getattr(session, "_connection", None)
    exit_stack = getattr(connection, "exit_stack", None)
    if exit_stack is not None:
        exit_stack.callback(callback)
