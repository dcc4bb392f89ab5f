"""Protocol correctness with other clients in mind: 2025-era sessions and subscriptions,
declared capabilities, notification delivery off the writer's path, and error shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import INVALID_PARAMS

from mcp_profiles.app import build_http_app
from mcp_profiles.config import Config
from mcp_profiles.errors import Invalid
from mcp_profiles.runtime import AppContext, open_app
from mcp_profiles.server import create_server
from tests.helpers import ACCEPT, INIT, add_connection, text


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


# ---- errors -----------------------------------------------------------------------------


async def test_argument_errors_name_every_field_once_with_one_code_word(connect: Any) -> None:
    async with connect() as client:
        result = await client.call_tool("list_profiles", {"kind": "robot", "limit": "many", "tag": 5})
        message = text(result)
    assert result.is_error
    assert message.startswith("invalid: ") and message.count("invalid") == 1, message
    assert "pydantic" not in message and "http" not in message and "[type=" not in message
    parts = message.removeprefix("invalid: ").split("; ")
    assert sorted(p.split(":")[0] for p in parts) == ["kind", "limit", "tag"], message


async def test_missing_arguments_are_named(connect: Any) -> None:
    async with connect() as client:
        result = await client.call_tool("revert_profile", {})
    assert text(result) == (
        "invalid: profile: required argument is missing; version: required argument is missing"
    )


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("list_profiles", {"limit": True}),
        ("profile_history", {"profile": "a", "limit": True}),
        ("revert_profile", {"profile": "a", "version": True}),
        ("update_profile", {"profile": "a", "create": True, "expected_version": False}),
    ],
)
async def test_booleans_are_not_numbers(connect: Any, tool: str, args: dict[str, Any]) -> None:
    async with connect() as client:
        result = await client.call_tool(tool, args)
    assert result.is_error and text(result).startswith("invalid: "), text(result)
    assert list(args)[-1] in text(result)


async def test_unknown_tool_is_not_found(connect: Any) -> None:
    async with connect() as client:
        result = await client.call_tool("no_such_tool", {})
    assert text(result) == "not_found: no tool named 'no_such_tool'; tools/list shows the tools"


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("no_such_prompt", {}, "not_found: no prompt named 'no_such_prompt'"),
        ("personalize", {}, "invalid: user: required argument is missing"),
        ("remember", {"user": "a"}, "invalid: note: required argument is missing"),
        ("review_profile", {"profile": "a", "extra": "x"}, "invalid: extra: unknown argument"),
    ],
)
async def test_prompt_mistakes_are_invalid_params_without_a_traceback(
    connect: Any, caplog: pytest.LogCaptureFixture, name: str, args: dict[str, str], expected: str
) -> None:
    async with connect() as client:
        with pytest.raises(MCPError) as exc:
            await client.get_prompt(name, args)
    assert exc.value.code == INVALID_PARAMS
    assert str(exc.value.error.message).startswith(expected), exc.value.error.message
    assert not [r for r in caplog.records if r.exc_info], "a client mistake logged a traceback"


# ---- resources ----------------------------------------------------------------------------


async def test_profiles_index_pages_with_the_cursor_its_template_takes(connect: Any) -> None:
    async with connect() as client:
        for name in ("a", "b", "c"):
            await client.call_tool("update_profile", {"profile": name, "create": True})
        templates = {
            t.name: t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
        assert templates["profiles-index"] == "profiles://index{?kind,tag,limit,cursor}"
        first = json.loads((await client.read_resource("profiles://index?limit=2")).contents[0].text)
        assert [p["id"] for p in first["profiles"]] == ["a", "b"] and first["next_cursor"]
        uri = f"profiles://index?limit=2&cursor={first['next_cursor']}"
        rest = json.loads((await client.read_resource(uri)).contents[0].text)
        assert [p["id"] for p in rest["profiles"]] == ["c"] and rest["next_cursor"] is None


@pytest.mark.parametrize(
    "uri", ["profiles://index?cursor=garbage", "profiles://index?limit=0", "profiles://index?limit=true"]
)
async def test_index_errors_carry_one_code_word(connect: Any, uri: str) -> None:
    async with connect() as client:
        with pytest.raises(MCPError) as exc:
            await client.read_resource(uri)
    message = str(exc.value.error.message)
    assert exc.value.code == INVALID_PARAMS
    assert message.startswith("invalid: ") and message.count("invalid:") == 1, message


async def test_connections_index_honours_its_limit(config: Config, connect: Any) -> None:
    for name in ("c1", "c2", "c3"):
        await add_connection(config, name)
    async with connect() as client:
        page = json.loads((await client.read_resource("connections://index?limit=2")).contents[0].text)
        everything = json.loads((await client.read_resource("connections://index")).contents[0].text)
    assert [c["id"] for c in page] == ["c1", "c2"] and len(everything) == 3


# ---- OAuth metadata ---------------------------------------------------------------------

TOKENS = {"tok-alpha-0123456789": "team-a"}


@asynccontextmanager
async def asgi_client(config: Config, **kw: Any) -> AsyncIterator[httpx2.AsyncClient]:
    async with open_app(config) as app:
        asgi, mcp = build_http_app(config, "http", port=8000, app=app, **kw)
        async with mcp.session_manager.run():
            transport = httpx2.ASGITransport(asgi)
            async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as raw:
                yield raw


async def test_static_tokens_publish_no_oauth_metadata(config: Config) -> None:
    async with asgi_client(config.with_overrides(tokens=TOKENS)) as raw:
        refused = await raw.post("/mcp", json=INIT, headers=ACCEPT)
        assert refused.status_code == 401
        assert "resource_metadata" not in refused.headers["www-authenticate"]
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
            assert (await raw.get(path)).status_code == 404


async def test_oauth_metadata_names_the_authorization_server_and_the_public_url(config: Config) -> None:
    kw = {"auth_server": "https://login.example.com", "public_url": "https://profiles.example.com/"}
    async with asgi_client(config.with_overrides(tokens=TOKENS), **kw) as raw:
        refused = await raw.post("/mcp", json=INIT, headers=ACCEPT)
        assert (
            "https://profiles.example.com/.well-known/oauth-protected-resource/mcp"
            in (refused.headers["www-authenticate"])
        )
        meta = (await raw.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert meta["resource"] == "https://profiles.example.com/mcp"
    assert [s.rstrip("/") for s in meta["authorization_servers"]] == ["https://login.example.com"]


async def test_an_authorization_server_needs_the_public_url(config: Config) -> None:
    with pytest.raises(Invalid, match="--public-url"):
        async with asgi_client(config.with_overrides(tokens=TOKENS), auth_server="https://login.example.com"):
            pass


# ---- stdio --------------------------------------------------------------------------------


async def test_stdio_answers_unparsable_lines_with_parse_errors(tmp_path: Path) -> None:
    env = {**os.environ, "MCP_PROFILES_DB": str(tmp_path / "stdio.sqlite3")}
    lines = [
        json.dumps(INIT),
        '{"jsonrpc":"2.0","method":"notifications/initialized"}',
        "this is not json",
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_profile",'
        '"arguments":{"profile":"\\ud800"}}}',
        '{"jsonrpc":"2.0","id":3,"method":"ping"}',
    ]
    async with await anyio.open_process(
        [sys.executable, "-m", "mcp_profiles", "serve"], env=env, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        await proc.stdin.send(("\n".join(lines) + "\n").encode())
        received = b""
        with anyio.fail_after(60):
            while received.count(b"\n") < 4:
                received += await proc.stdout.receive()
        await proc.stdin.aclose()
    replies = [json.loads(line) for line in received.splitlines()]
    assert replies[0]["id"] == 1 and "result" in replies[0]
    assert replies[1]["id"] is None and replies[1]["error"]["code"] == -32700
    assert replies[2]["id"] == 2 and replies[2]["error"]["code"] == -32700
    assert replies[3] == {"jsonrpc": "2.0", "id": 3, "result": {}}
