"""Two ``mcp-profiles serve --transport http`` replicas on one PostgreSQL database.

The installed command, as an operator runs it behind a load balancer, with a scripted
Messages API on a local port (``ANTHROPIC_BASE_URL``). Checked through both replicas:
queued extraction done exactly once while both workers run; 16 concurrent writers with no
lost update and every version acknowledged once; tenants isolated; a change through one
replica heard by a ``subscriptions/listen`` client of the other; and a replica killed
(SIGKILL) mid-extraction, whose item the other completes. Every check of the database
goes through ``psql``, not the store under test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ResourceUpdated
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_profiles.config import Config
from mcp_profiles.runtime import open_app
from tests.fakes import MessagesAPI
from tests.helpers import psql, text
from tests.procs.common import free_port, server_command, subprocess_env

pytestmark = pytest.mark.slow

A, B = "token-alpha-0123456789", "token-beta-0123456789"
CHAT = "user: I moved to Lisbon last spring and work as a backend engineer.\nassistant: Noted."


class FakeAnthropic:
    """The scripted Messages API over HTTP; ``hang_next`` holds the next request forever."""

    def __init__(self) -> None:
        self.api = MessagesAPI(when_empty="echo")
        self.hang_next = False
        self.hung = anyio.Event()
        self.release = anyio.Event()
        self.arrivals: list[tuple[float, bytes]] = []  # (time.time(), body) of each answered request

    async def messages(self, request: Request) -> Response:
        body = await request.body()
        if self.hang_next:
            self.hang_next = False
            self.hung.set()
            await self.release.wait()
            return Response(status_code=503)
        self.arrivals.append((time.time(), body))
        reply = self.api.handler(httpx2.Request("POST", "http://fake/v1/messages", content=body))
        return Response(reply.content, status_code=reply.status_code, media_type="application/json")

    @property
    def answered(self) -> int:
        return len(self.api.requests)


@asynccontextmanager
async def fake_anthropic() -> AsyncIterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic()
    port = free_port()
    app = Starlette(routes=[Route("/v1/messages", fake.messages, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield fake, f"http://127.0.0.1:{port}"
        finally:
            fake.release.set()
            server.should_exit = True


@asynccontextmanager
async def replica(
    name: str, db: str, api: str, log_dir: Path, **settings: str
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """``mcp-profiles serve --transport http`` on a free port, with extra environment
    ``settings``; yields (base URL, process)."""
    port = free_port()
    command, args = server_command("serve", "--transport", "http", "--port", str(port))
    log_path = log_dir / f"{name}.log"
    env = subprocess_env(
        MCP_PROFILES_DB=db,
        MCP_PROFILES_TOKENS=f"{A}=alpha,{B}=beta",
        ANTHROPIC_API_KEY="test-key",
        ANTHROPIC_BASE_URL=api,
        MCP_PROFILES_LLM_MAX_RETRIES="0",
        **settings,
    )
    with log_path.open("w") as log:
        proc = subprocess.Popen([command, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient() as http:
            with anyio.fail_after(60):
                while True:
                    assert proc.poll() is None, log_path.read_text()
                    try:
                        if (await http.get(f"{base}/healthz")).status_code == 200:
                            break
                    except httpx2.TransportError:
                        pass
                    await anyio.sleep(0.05)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@asynccontextmanager
async def client(base: str, token: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c,
    ):
        yield c


async def until(check: Any, what: str, seconds: float = 45) -> None:
    with anyio.fail_after(seconds, shield=False):
        while not check():
            await anyio.sleep(0.1)
    assert check(), what


def rows(url: str, sql: str) -> list[list[str]]:
    return psql(url, sql)


async def test_two_replicas_on_one_database(pg_url: str, tmp_path: Path) -> None:
    db = pg_url
    # Eight items wait in the queue before any replica runs (stored with no model configured).
    async with open_app(Config(db=db, namespace="alpha"), worker=False) as app:
        for i in range(8):
            await app.extractor.submit("alpha", f"queued-{i}", f"{CHAT}\nnote {i}", "chat history", None)

    async with (
        fake_anthropic() as (fake, api),
        replica("one", db, api, tmp_path) as (one, proc_one),
        replica("two", db, api, tmp_path) as (two, proc_two),
    ):
        # -- exactly once: both workers drain the same queue at start
        def all_done() -> bool:
            return rows(db, "SELECT count(*) FROM data_items WHERE status = 'done'") == [["8"]]

        await until(all_done, "the eight queued items are done")
        assert fake.answered == 8, "each queued item was extracted once, by one replica"
        assert rows(db, "SELECT count(*) FROM revisions") == [["16"]]  # created, then extracted once

        # -- 16 concurrent writers across both replicas: no lost update, each version once
        acked: list[int] = []
        async with client(one, A) as c1, client(two, A) as c2:

            async def writer(w: int) -> None:
                c = (c1, c2)[w % 2]
                for r in range(3):
                    result = await c.call_tool(
                        "update_profile",
                        {
                            "profile": "shared",
                            "create": True,
                            "patch": {"attributes": {f"load.w{w}_r{r}": r}},
                        },
                    )
                    assert not result.is_error, text(result)
                    acked.append(result.structured_content["profile"]["version"])

            async with anyio.create_task_group() as tg:
                for w in range(16):
                    tg.start_soon(writer, w)
            assert sorted(acked) == list(range(1, 49))
            final = (await c2.call_tool("get_profile", {"profile": "shared"})).structured_content
            assert final["version"] == 48 and len(final["attributes"]) == 48

            # -- tenants: beta sees nothing of alpha through either replica
            async with client(two, B) as b2, client(one, B) as b1:
                for b in (b1, b2):
                    missing = await b.call_tool("get_profile", {"profile": "shared"})
                    assert missing.is_error and text(missing).startswith("not_found:")
                    listed = (await b.call_tool("list_profiles", {})).structured_content
                    assert listed["profiles"] == []
                await b1.call_tool(
                    "update_profile", {"profile": "shared", "create": True, "patch": {"name": "Beta"}}
                )
                assert (await c1.call_tool("get_profile", {"profile": "shared"})).structured_content[
                    "name"
                ] is None

                # -- a change through replica 1 reaches a listener on replica 2 (its tenant only)
                uris = ["profile://shared"]
                async with (
                    c2.listen(resource_subscriptions=uris) as heard_a,
                    b2.listen(resource_subscriptions=uris) as heard_b,
                ):
                    await anyio.sleep(0.3)
                    await c1.call_tool("update_profile", {"profile": "shared", "patch": {"name": "Alpha"}})
                    with anyio.fail_after(10):
                        event = await heard_a.__anext__()
                    assert event == ResourceUpdated(uri="profile://shared")
                    with anyio.move_on_after(1):
                        stray = await heard_b.__anext__()
                        raise AssertionError(f"tenant beta heard alpha's change: {stray}")

        # -- SIGKILL the replica that is extracting: the other completes the item
        fake.hang_next = True

        async def doomed() -> None:
            with contextlib.suppress(Exception):  # the replica dies under the call
                async with client(one, A) as c1:
                    await c1.call_tool("upsert_profile_from_data", {"profile": "victim", "data": CHAT})

        async with anyio.create_task_group() as tg:
            tg.start_soon(doomed)
            with anyio.fail_after(30):
                await fake.hung.wait()
            [[owner]] = rows(db, "SELECT claimed_by FROM data_items WHERE status = 'processing'")
            assert owner.split(":")[1] == str(proc_one.pid), "replica one holds the claim"
            os.kill(proc_one.pid, signal.SIGKILL)
            proc_one.wait(timeout=10)
            tg.cancel_scope.cancel()
        async with client(two, A) as c2:  # any submission wakes the survivor's worker
            nudge = await c2.call_tool("upsert_profile_from_data", {"profile": "nudge", "data": CHAT})
            assert not nudge.is_error, text(nudge)

        def victim_done() -> bool:
            return rows(
                db,
                "SELECT d.status FROM data_items d JOIN profiles p ON p.pk = d.profile_pk WHERE p.id = 'victim'",
            ) == [["done"]]

        await until(victim_done, "the survivor completed the killed replica's item")
        assert rows(db, "SELECT version FROM profiles WHERE id = 'victim'") == [["2"]]
        versions = rows(
            db,
            "SELECT p.version, count(r.version) FROM profiles p JOIN revisions r ON r.profile_pk = p.pk GROUP BY p.pk, p.version",
        )
        assert all(v == n for v, n in versions), "every version has exactly its revision"
        assert proc_two.poll() is None


async def test_a_replica_of_another_host_killed_mid_extraction_is_taken_over_after_its_lease(
    pg_url: str, tmp_path: Path
) -> None:
    """Replicas on different hosts (``MCP_PROFILES_HOST_ID``), lease 2 s. The one extracting
    is SIGKILLed: the survivor, though woken at once, leaves the claim alone until its lease
    runs out (a dead pid of another host proves nothing here), then its worker wakes by
    itself and completes the item: one model answer merged, the item done."""
    db, lease = pg_url, 2.0
    victim = f"{CHAT}\nvictim: the item of the killed replica."
    async with (
        fake_anthropic() as (fake, api),
        replica(
            "there", db, api, tmp_path, MCP_PROFILES_HOST_ID="elsewhere", MCP_PROFILES_LEASE_SECONDS="2"
        ) as (
            one,
            proc_one,
        ),
        replica("here", db, api, tmp_path, MCP_PROFILES_LEASE_SECONDS="2") as (two, proc_two),
        client(two, A) as c2,
    ):
        warm = await c2.call_tool("upsert_profile_from_data", {"profile": "warm", "data": CHAT})
        assert not warm.is_error, text(warm)  # the survivor's first call is slow; this one is not
        fake.hang_next = True

        async def doomed() -> None:
            with contextlib.suppress(Exception):  # the replica dies under the call
                async with client(one, A) as c1:
                    await c1.call_tool("upsert_profile_from_data", {"profile": "victim", "data": victim})

        async with anyio.create_task_group() as tg:
            tg.start_soon(doomed)
            with anyio.fail_after(30):
                await fake.hung.wait()
            [[owner]] = rows(db, "SELECT claimed_by FROM data_items WHERE status = 'processing'")
            assert owner.startswith(f"elsewhere:{proc_one.pid}:"), "the replica of the other host holds it"
            claimed = rows(db, "SELECT claimed_at FROM data_items WHERE status = 'processing'")
            with anyio.fail_after(10):  # kill just after a renewal: the lease has 2 s to run
                while rows(db, "SELECT claimed_at FROM data_items WHERE status = 'processing'") == claimed:
                    await anyio.sleep(0.02)
            os.kill(proc_one.pid, signal.SIGKILL)
            proc_one.wait(timeout=10)
            killed = time.time()
            tg.cancel_scope.cancel()
        [[renewed]] = rows(db, "SELECT claimed_at FROM data_items WHERE status = 'processing'")
        expires = float(renewed) + lease

        # A submission wakes the survivor's worker during the lease.
        nudge = await c2.call_tool("upsert_profile_from_data", {"profile": "nudge", "data": CHAT})
        assert not nudge.is_error, text(nudge)
        await anyio.sleep(0.5)  # its worker has looked for abandoned work
        if time.time() < expires - 0.2:  # and left the claim alone (unless this machine lagged)
            assert rows(db, "SELECT claimed_by FROM data_items WHERE status = 'processing'") == [[owner]]

        def victim_done() -> bool:
            return rows(
                db,
                "SELECT d.status FROM data_items d JOIN profiles p ON p.pk = d.profile_pk WHERE p.id = 'victim'",
            ) == [["done"]]

        await until(victim_done, "the survivor completed the item after the lease", seconds=15)
        taken_over = time.time() - killed
        answered = [at for at, body in fake.arrivals if b"victim: the item" in body]
        assert len(answered) == 1, "one model answer for the victim's item, from the survivor"
        assert answered[0] >= expires, f"taken {expires - answered[0]:.2f} s before the lease ran out"
        assert rows(db, "SELECT version FROM profiles WHERE id = 'victim'") == [["2"]]
        assert rows(
            db,
            "SELECT count(*) FROM revisions r JOIN profiles p ON p.pk = r.profile_pk WHERE p.id = 'victim'",
        ) == [["2"]]
        assert proc_two.poll() is None
        print(f"taken over {taken_over:.2f} s after SIGKILL (lease {lease:g} s)")
