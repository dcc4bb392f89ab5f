"""HTTP deployment (``--transport http|sse``): bearer tokens mapped to namespaces, tenant
isolation of every tool, resource, job and notification, DNS-rebinding guard, request body
limit, ``/healthz``, the loopback rule, and stdio's single namespace.

Most tests serve the real ASGI app in-process (``httpx2.ASGITransport``); notifications
need a streaming response, so those run uvicorn in-process on a free port; and one test
per transport starts the installed ``mcp-profiles serve`` and talks to it over TCP.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ResourcesListChanged, ResourceUpdated
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from mcp_profiles.app import build_http_app
from mcp_profiles.cli import main
from mcp_profiles.config import Config
from mcp_profiles.errors import Invalid
from mcp_profiles.runtime import open_app
from tests.helpers import ACCEPT, INIT, next_events, text
from tests.procs.common import connect_ro, free_port, server_command, subprocess_env

TOKENS = {"tok-alpha-0123456789": "team-a", "tok-bravo-9876543210": "team-b"}
A, B = list(TOKENS)
BASE = "http://127.0.0.1:8000"


@asynccontextmanager
async def served(config: Config, transport: str = "http", **kw: Any) -> AsyncIterator[httpx2.ASGITransport]:
    """The deployment's ASGI app over ``config``, in-process (no socket)."""
    async with open_app(config) as app:
        asgi, mcp = build_http_app(config, transport, port=8000, app=app, **kw)
        if transport == "http":
            async with mcp.session_manager.run():  # what the app's lifespan does under uvicorn
                yield httpx2.ASGITransport(asgi)
        else:
            yield httpx2.ASGITransport(asgi)


@asynccontextmanager
async def client_for(
    transport: httpx2.AsyncBaseTransport | None, url: str, token: str | None, mode: str = "auto", **kw: Any
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(transport=transport, headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **kw) as client,
    ):
        yield client


@asynccontextmanager
async def uvicorn_served(config: Config, transport: str = "http") -> AsyncIterator[str]:
    """The same app under uvicorn on a free loopback port (streaming responses work)."""
    port = free_port()
    async with open_app(config) as app:
        asgi, _ = build_http_app(config, transport, port=port, app=app)
        server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.01)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True


@pytest.fixture
def tenants(config: Config) -> Config:
    return config.with_overrides(tokens=TOKENS)


async def _search_order_of_b(config: Config, flood: str | None) -> list[list[str]]:
    """Team-b's result order for its own queries, after team-a stored 60 documents full of
    ``flood`` (or nothing)."""
    url = f"{BASE}/mcp"
    async with served(config) as asgi, client_for(asgi, url, A) as a, client_for(asgi, url, B) as b:
        for i in range(60 if flood else 0):
            patch = {"name": f"A {i}", "summary": f"{flood} " * (1 + i % 5) + "filler words " * i}
            await a.call_tool("update_profile", {"profile": f"a{i:02d}", "create": True, "patch": patch})
        for ref, patch in (
            ("b1", {"name": "One", "summary": "alpine alpine alpine alpine hiking"}),
            ("b2", {"name": "Two", "summary": "alpine hiking hiking hiking hiking"}),
            ("b3", {"name": "Three", "summary": "alpine and more hiking, with much more to say " * 3}),
            ("b4", {"name": "Alpine Hiking Club", "summary": "a club"}),
            ("b5", {"name": "Five", "attributes": {"interests.outdoor": "alpine hiking"}}),
        ):
            await b.call_tool("update_profile", {"profile": ref, "create": True, "patch": patch})
        orders = []
        for query in ("alpine hik", "hiking", "alpine"):
            page = (await b.call_tool("list_profiles", {"query": query})).structured_content
            orders.append([p["id"] for p in page["profiles"]])
        return orders


async def test_one_tenants_data_has_no_effect_on_anothers_search_order(
    tenants: Config, tmp_path: Path
) -> None:
    """Regression: the shared full-text index ranked by bm25, whose statistics count every
    namespace's documents, so team-b's order revealed which words team-a stores."""
    runs = {}
    for flood in (None, "alpine", "hiking"):
        config = tenants.with_overrides(db=str(tmp_path / f"{flood}.sqlite3"))
        runs[flood] = await _search_order_of_b(config, flood)
    assert runs["alpine"] == runs[None] == runs["hiking"], runs
    # a match in the name or alias first, then by id; the last word is still a prefix
    assert runs[None] == [["b4", "b1", "b2", "b3", "b5"]] * 3


# ---- authentication ----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_missing_or_wrong_token_is_401_and_healthz_is_open(tenants: Config, transport: str) -> None:
    async with served(tenants, transport) as asgi, httpx2.AsyncClient(transport=asgi, base_url=BASE) as raw:
        health = await raw.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {A}"}):
            if transport == "http":
                r = await raw.post("/mcp", json=INIT, headers={**ACCEPT, **headers})
            else:
                r = await raw.get("/sse", headers=headers)
            assert r.status_code == 401, (headers, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer")
        if transport == "sse":
            r = await raw.post("/messages/?session_id=00000000000000000000000000000000", json=INIT)
            assert r.status_code == 401
        else:
            ok = await raw.post("/mcp", json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {A}"})
            assert ok.status_code == 200


# ---- tenant isolation ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_token_sees_and_changes_only_its_namespace(tenants: Config, mode: str) -> None:
    async with open_app(tenants, worker=False) as app:  # a profile outside both tenants
        await app.service.update_profile("default", "local-only", {"name": "Local"}, create=True)
    url = f"{BASE}/mcp"
    async with (
        served(tenants) as asgi,
        client_for(asgi, url, A, mode) as a,
        client_for(asgi, url, B, mode) as b,
    ):
        for client, name in ((a, "Alpha"), (b, "Bravo")):  # the same id in both namespaces
            r = await client.call_tool(
                "update_profile", {"profile": "same", "create": True, "patch": {"name": name}}
            )
            assert not r.is_error, text(r)
        await a.call_tool(
            "update_profile", {"profile": "a-only", "create": True, "patch": {"name": "Secret A"}}
        )
        job = (
            await a.call_tool("upsert_profile_from_data", {"profile": "a-only", "data": "I like tea."})
        ).structured_content
        assert job["status"] == "pending"  # no model: the job waits, and only team-a can see it

        assert (await a.call_tool("get_profile", {"profile": "same"})).structured_content["name"] == "Alpha"
        assert (await b.call_tool("get_profile", {"profile": "same"})).structured_content["name"] == "Bravo"
        listed_b = (await b.call_tool("list_profiles", {})).structured_content["profiles"]
        assert [p["id"] for p in listed_b] == ["same"]
        assert [
            p["id"]
            for p in (await b.call_tool("list_profiles", {"query": "secret"})).structured_content["profiles"]
        ] == []
        listed_a = {p["id"] for p in (await a.call_tool("list_profiles", {})).structured_content["profiles"]}
        assert listed_a == {"same", "a-only"}
        # team-a's profile, job and the local one do not exist for team-b, for any tool
        for ref in ("a-only", "local-only"):
            for tool, args in (
                ("get_profile", {"profile": ref}),
                ("profile_history", {"profile": ref}),
                ("revert_profile", {"profile": ref, "version": 1}),
                ("update_profile", {"profile": ref, "patch": {"name": "Hijacked"}}),
                ("delete_profile", {"profile": ref}),
            ):
                result = await b.call_tool(tool, args)
                assert result.is_error and text(result).startswith("not_found:"), (tool, text(result))
        assert text(await b.call_tool("get_job", {"job_id": job["job_id"]})).startswith("not_found:")
        assert (await a.call_tool("get_job", {"job_id": job["job_id"]})).structured_content[
            "status"
        ] == "pending"
        # resources
        uris_b = {r.uri for r in (await b.list_resources()).resources}
        assert uris_b == {"connections://index", "profile://same"}
        uris_a = {r.uri for r in (await a.list_resources()).resources}
        assert uris_a == {"connections://index", "profile://same", "profile://a-only"}
        with pytest.raises(MCPError):
            await b.read_resource("profile://a-only")
        [same_b] = (await b.read_resource("profile://same")).contents
        assert json.loads(same_b.text)["name"] == "Bravo"  # type: ignore[union-attr]
        [index_b] = (await b.read_resource("profiles://index")).contents
        assert [p["id"] for p in json.loads(index_b.text)["profiles"]] == ["same"]  # type: ignore[union-attr]
        # a write by team-b with create makes team-b's own profile and leaves team-a's alone
        await b.call_tool(
            "update_profile", {"profile": "a-only", "create": True, "patch": {"name": "B's own"}}
        )
        assert (await a.call_tool("get_profile", {"profile": "a-only"})).structured_content[
            "name"
        ] == "Secret A"
        await b.call_tool("delete_profile", {"profile": "same"})
        assert (await a.call_tool("get_profile", {"profile": "same"})).structured_content["name"] == "Alpha"
    con = connect_ro(tenants.db_path)
    rows = sorted(con.execute("SELECT namespace, id, name FROM profiles").fetchall())
    con.close()
    assert rows == [
        ("default", "local-only", "Local"),
        ("team-a", "a-only", "Secret A"),
        ("team-a", "same", "Alpha"),
        ("team-b", "a-only", "B's own"),
    ]


def _remote(base: str, transport: str, token: str) -> Any:
    """A modern-era client over streamable HTTP or SSE to a server at ``base``."""
    if transport == "sse":
        return Client(sse_client(f"{base}/sse", headers={"Authorization": f"Bearer {token}"}))
    return client_for(None, f"{base}/mcp", token)


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_change_notifications_reach_only_the_writers_namespace(tenants: Config, transport: str) -> None:
    """Modern era (``subscriptions/listen``): the bus must see the listener's token when it
    subscribes and the writer's token when it publishes. Both listen to the same URIs; the
    first event each gets must come from its own namespace's write."""
    async with uvicorn_served(tenants, transport) as base:
        async with _remote(base, transport, A) as a, _remote(base, transport, B) as b:
            assert a.protocol_version == "2026-07-28"
            uris = ["profile://same", "profile://mark-a", "profile://mark-b"]
            async with (
                a.listen(resources_list_changed=True, resource_subscriptions=uris) as sub_a,
                b.listen(resources_list_changed=True, resource_subscriptions=uris) as sub_b,
            ):
                # team-b writes "same" first; then each team writes its own marker
                await b.call_tool(
                    "update_profile", {"profile": "same", "create": True, "patch": {"name": "B"}}
                )
                await a.call_tool("update_profile", {"profile": "mark-a", "create": True, "patch": {}})
                assert await next_events(sub_a, 2) == [
                    ResourceUpdated(uri="profile://mark-a"),
                    ResourcesListChanged(),
                ]
                assert await next_events(sub_b, 2) == [
                    ResourceUpdated(uri="profile://same"),
                    ResourcesListChanged(),
                ]
                await a.call_tool(
                    "update_profile", {"profile": "same", "create": True, "patch": {"name": "A"}}
                )
                await b.call_tool("update_profile", {"profile": "mark-b", "create": True, "patch": {}})
                listed = ResourcesListChanged()  # both were creations in their namespace
                assert await next_events(sub_b, 2) == [ResourceUpdated(uri="profile://mark-b"), listed]
                assert await next_events(sub_a, 2) == [ResourceUpdated(uri="profile://same"), listed]
                # updates and deletes too
                await b.call_tool("update_profile", {"profile": "same", "patch": {"name": "B2"}})
                await a.call_tool("update_profile", {"profile": "mark-a", "patch": {"name": "A2"}})
                assert await next_events(sub_a, 1) == [ResourceUpdated(uri="profile://mark-a")]
                assert await next_events(sub_b, 1) == [ResourceUpdated(uri="profile://same")]
                await b.call_tool("delete_profile", {"profile": "same"})
                await a.call_tool("delete_profile", {"profile": "mark-a"})
                assert await next_events(sub_a, 2) == [ResourceUpdated(uri="profile://mark-a"), listed]
                assert await next_events(sub_b, 2) == [ResourceUpdated(uri="profile://same"), listed]


async def test_handshake_era_notifications_stay_in_their_session(tenants: Config) -> None:
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def handler(who: str) -> Any:
        async def on_message(message: Any) -> None:
            seen[who].append(getattr(message, "method", type(message).__name__))

        return on_message

    async with uvicorn_served(tenants) as base:
        url = f"{base}/mcp"
        async with (
            client_for(None, url, A, "legacy", message_handler=handler("a")) as a,
            client_for(None, url, B, "legacy", message_handler=handler("b")) as b,
        ):
            assert a.protocol_version == "2025-11-25"
            with pytest.warns(MCPDeprecationWarning):  # both subscribe to the same URI
                await a.subscribe_resource("profile://same")
                await b.subscribe_resource("profile://same")
            await a.call_tool("update_profile", {"profile": "same", "create": True, "patch": {}})
            await anyio.sleep(0.3)
            await b.call_tool("get_profile", {"profile": "same"})
            await anyio.sleep(0.3)
    assert seen["a"].count("notifications/resources/updated") == 1
    assert seen["a"].count("notifications/resources/list_changed") == 1
    assert "notifications/resources/updated" not in seen["b"]
    assert "notifications/resources/list_changed" not in seen["b"]


async def test_a_session_cannot_be_reused_with_another_token(tenants: Config) -> None:
    async with served(tenants) as asgi, httpx2.AsyncClient(transport=asgi, base_url=BASE) as raw:
        opened = await raw.post("/mcp", json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {A}"})
        session = opened.headers["mcp-session-id"]
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "list_profiles", "arguments": {}},
        }
        headers = {**ACCEPT, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
        stolen = await raw.post("/mcp", json=call, headers={**headers, "Authorization": f"Bearer {B}"})
        assert stolen.status_code == 404


# ---- transport guards ----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_foreign_host_or_origin_is_refused(tenants: Config, transport: str) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not reach the server."""
    auth = {"Authorization": f"Bearer {A}"}
    async with (
        served(tenants, transport, allowed_hosts=["profiles.example.com"]) as asgi,
        httpx2.AsyncClient(transport=asgi, base_url=BASE) as raw,
    ):

        async def send(**headers: str) -> int:
            if transport == "http":
                r = await raw.post("/mcp", json=INIT, headers={**ACCEPT, **auth, **headers})
            else:
                r = await raw.post(
                    "/messages/?session_id=00000000000000000000000000000000",
                    json=INIT,
                    headers={**auth, **headers},
                )
            return r.status_code

        assert await send(Host="evil.example") == 421
        assert await send(Host="evil.example:8000") == 421
        assert await send(Origin="http://evil.example") == 403
        assert await send(Origin="http://127.0.0.1.evil.example:8000") == 403
        # the names the deployment serves pass the guard
        allowed = 200 if transport == "http" else 404  # sse: the guard passed; the session is unknown
        assert await send(Host="profiles.example.com") == allowed
        assert await send(Origin="http://127.0.0.1:8000") == allowed


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_request_body_over_the_limit_is_refused(config: Config, transport: str) -> None:
    small = config.with_overrides(tokens=TOKENS, limits=type(config.limits)(max_data_bytes=1000))
    limit = 1000 * 2 + 64 * 1024
    body = json.dumps({**INIT, "params": {**INIT["params"], "padding": "x" * (limit + 1)}})  # type: ignore[dict-item]
    async with served(small, transport) as asgi, httpx2.AsyncClient(transport=asgi, base_url=BASE) as raw:
        headers = {**ACCEPT, "Authorization": f"Bearer {A}"}
        if transport == "http":
            r = await raw.post("/mcp", content=body, headers=headers)
        else:
            r = await raw.post(
                "/messages/?session_id=00000000000000000000000000000000", content=body, headers=headers
            )
        assert r.status_code == 413


def test_cli_refuses_to_listen_beyond_loopback_without_tokens(tmp_path: Path) -> None:
    """The installed command, not just the function: exits 1 before opening anything."""
    db = tmp_path / "never.sqlite3"
    for transport, host in (("http", "0.0.0.0"), ("sse", "::"), ("http", "192.0.2.10")):
        command, args = server_command("serve", "--transport", transport, "--host", host, "--port", "1")
        done = subprocess.run(
            [command, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=subprocess_env(MCP_PROFILES_DB=str(db)),
        )
        assert done.returncode == 1, done.stderr
        assert f"refusing to listen on {host} without bearer tokens" in done.stderr
    assert not db.exists()


def test_wildcard_bind_with_tokens_needs_the_served_host_names(tmp_path: Path, capsys: Any) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{A} team-a\n", "utf-8")
    code = main(["serve", "--transport", "http", "--host", "0.0.0.0", "--tokens-file", str(tokens)])
    assert code == 1 and "needs --allowed-host" in capsys.readouterr().err
    with pytest.raises(Invalid):
        build_http_app(Config(tokens={}), "http", host="0.0.0.0", app=None)  # type: ignore[arg-type]


# ---- the installed command over TCP --------------------------------------------------


@asynccontextmanager
async def running(tmp_path: Path, transport: str, *extra: str, **env: str) -> AsyncIterator[str]:
    """``mcp-profiles serve --transport TRANSPORT`` on a free port; yields the base URL."""
    port = free_port()
    command, args = server_command("serve", "--transport", transport, "--port", str(port), *extra)
    log = (tmp_path / f"{transport}.log").open("w")
    proc = subprocess.Popen(
        [command, *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=subprocess_env(MCP_PROFILES_DB=str(tmp_path / f"{transport}.sqlite3"), **env),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient() as http:
            with anyio.fail_after(30):
                while True:
                    assert proc.poll() is None, (tmp_path / f"{transport}.log").read_text()
                    try:
                        if (await http.get(f"{base}/healthz")).status_code == 200:
                            break
                    except httpx2.TransportError:
                        pass
                    await anyio.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
async def test_serve_http_subprocess_with_env_and_file_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"# team b\n{B} team-b\n", "utf-8")
    async with running(
        tmp_path, "http", "--tokens-file", str(tokens), MCP_PROFILES_TOKENS=f"{A}=team-a"
    ) as base:
        async with httpx2.AsyncClient() as raw:
            r = await raw.post(f"{base}/mcp", json=INIT, headers=ACCEPT)
            assert r.status_code == 401
            forged = {**ACCEPT, "Host": "evil.example", "Authorization": f"Bearer {A}"}
            assert (await raw.post(f"{base}/mcp", json=INIT, headers=forged)).status_code == 421
        async with client_for(None, f"{base}/mcp", A) as a, client_for(None, f"{base}/mcp", B, "legacy") as b:
            await a.call_tool("update_profile", {"profile": "p", "create": True, "patch": {"name": "From A"}})
            assert text(await b.call_tool("get_profile", {"profile": "p"})).startswith("not_found:")
            await b.call_tool("update_profile", {"profile": "p", "create": True, "patch": {"name": "From B"}})
            assert (await a.call_tool("get_profile", {"profile": "p"})).structured_content["name"] == "From A"
    con = connect_ro(tmp_path / "http.sqlite3")
    assert sorted(con.execute("SELECT namespace, name FROM profiles")) == [
        ("team-a", "From A"),
        ("team-b", "From B"),
    ]
    con.close()


@pytest.mark.slow
async def test_serve_sse_subprocess(tmp_path: Path) -> None:
    async with running(tmp_path, "sse", MCP_PROFILES_TOKENS=f"{A}=team-a,{B}=team-b") as base:
        async with httpx2.AsyncClient() as raw:
            assert (await raw.get(f"{base}/sse")).status_code == 401
        for token, name in ((A, "From A"), (B, "From B")):
            async with Client(
                sse_client(f"{base}/sse", headers={"Authorization": f"Bearer {token}"})
            ) as client:
                other = await client.call_tool("get_profile", {"profile": "p"})
                assert other.is_error and text(other).startswith("not_found:")  # the other team's p
                await client.call_tool(
                    "update_profile", {"profile": "p", "create": True, "patch": {"name": name}}
                )
                assert (await client.call_tool("get_profile", {"profile": "p"})).structured_content[
                    "name"
                ] == name
    con = connect_ro(tmp_path / "sse.sqlite3")
    assert sorted(con.execute("SELECT namespace, name FROM profiles")) == [
        ("team-a", "From A"),
        ("team-b", "From B"),
    ]
    con.close()


# ---- stdio ---------------------------------------------------------------------------


async def test_stdio_serves_one_namespace(tmp_path: Path) -> None:
    db = tmp_path / "stdio.sqlite3"
    async with open_app(Config(db=str(db)), worker=False) as app:
        await app.service.update_profile("default", "dflt", {"name": "Default"}, create=True)

    def params(*extra: str, **env: str) -> StdioServerParameters:
        command, args = server_command("serve", *extra)
        return StdioServerParameters(
            command=command, args=args, env=subprocess_env(MCP_PROFILES_DB=str(db), **env)
        )

    async with Client(params("--namespace", "team-a")) as a:
        assert text(await a.call_tool("get_profile", {"profile": "dflt"})).startswith("not_found:")
        await a.call_tool("update_profile", {"profile": "mine", "create": True, "patch": {"name": "Team A"}})
        assert [p["id"] for p in (await a.call_tool("list_profiles", {})).structured_content["profiles"]] == [
            "mine"
        ]
    async with Client(params(MCP_PROFILES_NAMESPACE="team-b")) as b:  # the variable works too
        assert (await b.call_tool("list_profiles", {})).structured_content["profiles"] == []
    async with Client(params()) as d:  # default: 'default'
        ids = [p["id"] for p in (await d.call_tool("list_profiles", {})).structured_content["profiles"]]
        assert ids == ["dflt"]
    con = connect_ro(db)
    assert sorted(con.execute("SELECT namespace, id FROM profiles")) == [
        ("default", "dflt"),
        ("team-a", "mine"),
    ]
    con.close()
