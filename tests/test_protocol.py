"""Protocol correctness with other clients in mind: 2025-era sessions and subscriptions,
declared capabilities, notification delivery off the writer's path, and error shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning

from mcp_profiles.config import Config
from mcp_profiles.runtime import AppContext, open_app
from mcp_profiles.server import create_server


@asynccontextmanager
async def shared_server(config: Config) -> AsyncIterator[tuple[AppContext, Any]]:
    """One running app and one server, for several clients at once (as over HTTP)."""
    async with open_app(config) as app:
        yield app, create_server(config, app=app)


class Inbox:
    """The notifications a client received, by method."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def __call__(self, message: Any) -> None:
        method = getattr(message, "method", None)
        if isinstance(method, str):
            self.methods.append(method)

    def count(self, method: str) -> int:
        return self.methods.count(f"notifications/resources/{method}")

    async def wait_for(self, method: str, n: int) -> None:
        with anyio.fail_after(10):
            while self.count(method) < n:
                await anyio.sleep(0.01)


async def test_capabilities_declare_subscribe_and_list_changed_in_both_eras(connect: Any) -> None:
    for mode in ("legacy", "auto"):
        async with connect(mode=mode) as client:
            caps = client.server_capabilities
            assert caps.resources is not None and caps.resources.subscribe and caps.resources.list_changed
            assert caps.tools is not None and not caps.tools.list_changed
            assert caps.prompts is not None and not caps.prompts.list_changed


async def test_updated_goes_to_subscribers_only_and_list_changed_to_every_session(config: Config) -> None:
    subscriber, bystander = Inbox(), Inbox()
    async with shared_server(config) as (_, server):
        async with (
            Client(server, mode="legacy", message_handler=subscriber) as sub,
            Client(server, mode="legacy", message_handler=bystander) as writer,
        ):
            with pytest.warns(MCPDeprecationWarning):
                await sub.subscribe_resource("profile://u3")
            await writer.call_tool(
                "update_profile", {"profile": "u3", "create": True, "patch": {"name": "Cy"}}
            )
            await writer.call_tool("update_profile", {"profile": "u3", "patch": {"name": "Cyd"}})
            await writer.call_tool("update_profile", {"profile": "other", "create": True, "patch": {}})
            await subscriber.wait_for("updated", 2)
            await subscriber.wait_for("list_changed", 2)
            await bystander.wait_for("list_changed", 2)
            with pytest.warns(MCPDeprecationWarning):
                await sub.unsubscribe_resource("profile://u3")
            await writer.call_tool("delete_profile", {"profile": "u3"})
            await subscriber.wait_for("list_changed", 3)
            await bystander.wait_for("list_changed", 3)
    assert subscriber.count("updated") == 2  # u3 twice; not "other", not after unsubscribing
    assert bystander.count("updated") == 0  # its own writes too: it never subscribed


async def test_closed_sessions_are_forgotten(config: Config) -> None:
    async with shared_server(config) as (app, server):
        for _ in range(30):
            async with Client(server, mode="legacy") as client:
                await client.call_tool("list_profiles", {})
                assert app.bus.session_count(config.namespace) == 1
        assert app.bus.session_count(config.namespace) == 0
        async with Client(server) as writer:
            with anyio.fail_after(10):
                await writer.call_tool("update_profile", {"profile": "a", "create": True, "patch": {}})


class HungSession:
    """A 2025-era session whose peer stopped reading: every send blocks (a full stdio pipe,
    a stalled HTTP stream)."""

    def __init__(self) -> None:
        self.client_params = object()  # what identifies a handshake-era connection
        self.attempts = 0

    async def send_resource_updated(self, uri: str) -> None:
        self.attempts += 1
        await anyio.sleep_forever()

    async def send_resource_list_changed(self) -> None:
        self.attempts += 1
        await anyio.sleep_forever()


async def test_a_hung_session_does_not_block_the_writer_and_is_forgotten(config: Config) -> None:
    async with shared_server(config) as (app, server):
        app.bus.send_timeout = 0.5
        hung = HungSession()
        app.bus.remember_session(config.namespace, hung)
        async with Client(server) as writer:
            with anyio.fail_after(20):  # the old bus awaited the hung send inside this call, for ever
                for i in range(5):
                    await writer.call_tool("update_profile", {"profile": f"p{i}", "create": True})
            with anyio.fail_after(10):
                while app.bus.session_count(config.namespace):
                    await anyio.sleep(0.05)
        assert hung.attempts == 1  # one send timed out; the rest were never tried
