"""The extraction queue under real use: claims, leases, apply checks, retries, the worker guard.

The models here are scripted in-process (``GatedLLM``) where a test must hold a call open
at a chosen moment; retry tests run the real Anthropic SDK over ``tests/fakes.py``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from mcp import Client

from mcp_profiles.config import Config
from mcp_profiles.llm import LLMAnswer, LLMRequest, Repair, Usage
from mcp_profiles.runtime import open_app
from mcp_profiles.server import create_server
from tests.fakes import MessagesAPI, anthropic_llm
from tests.helpers import text

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

CHAT = "User: I'm Alice, a backend engineer in Berlin. I love sailing on weekends.\n"
_DATA = re.compile(r'<data id="([^"]*)"[^>]*>\n(.*?)\n</data>', re.DOTALL)


def op(key: str, value: Any, evidence: str, confidence: float = 0.9) -> dict[str, Any]:
    return {"op": "set", "key": key, "value": value, "confidence": confidence, "evidence": evidence}


class GatedLLM:
    """A model that answers each call only when the test lets it (``release``), quoting the
    first line of the first data block as a fact, so the answer always survives the merge."""

    name = "gated"

    def __init__(self, *, gated: bool = True) -> None:
        self.calls: list[LLMRequest] = []
        self.started = anyio.Event()
        self._gate = anyio.Event()
        if not gated:
            self._gate.set()

    def release(self) -> None:
        self._gate.set()

    async def complete(self, request: LLMRequest, repair: Repair | None = None) -> LLMAnswer:
        self.calls.append(request)
        self.started.set()
        await self._gate.wait()
        found = _DATA.search(request.data)
        assert found is not None
        data_id, body = found.group(1), found.group(2)
        line = next(ln.strip() for ln in body.splitlines() if ln.strip())[:200]
        operation = {
            "op": "set",
            "key": f"interests.note_{len(self.calls)}",
            "value": line,
            "confidence": 0.9,
            "evidence": line,
            "data_id": data_id,
        }
        return LLMAnswer(
            tool_input={"operations": [operation], "summary": f"Summary from {line[:40]}"},
            text="",
            usage=Usage(requests=1, input_tokens=100, output_tokens=20),
            stop_reason="tool_use",
            model="gated",
        )

    async def aclose(self) -> None:
        return None


async def test_an_extraction_in_flight_never_lands_in_another_tenants_profile(config: Config) -> None:
    """Tenant A's extraction is in flight; A deletes the profile; tenant B creates one with the
    same id on the same database; then the model answers. B's profile holds nothing of A's."""
    llm = GatedLLM()
    config_a = Config(db=config.db, namespace="tenant-a")
    config_b = Config(db=config.db, namespace="tenant-b")
    async with (
        open_app(config_a, llm=llm, worker=False) as app_a,  # type: ignore[arg-type]
        open_app(config_b, worker=False) as app_b,
        Client(create_server(config_a, app=app_a)) as tenant_a,
        Client(create_server(config_b, app=app_b)) as tenant_b,
    ):
        answers: list[Any] = []

        async def upsert_a() -> None:
            answers.append(
                await tenant_a.call_tool("upsert_profile_from_data", {"profile": "alice", "data": CHAT})
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(upsert_a)
            with anyio.fail_after(10):
                await llm.started.wait()
            deleted = await tenant_a.call_tool("delete_profile", {"profile": "alice"})
            assert deleted.is_error is False, text(deleted)
            created = await tenant_b.call_tool(
                "update_profile", {"profile": "alice", "create": True, "patch": {"name": "Bob's Alice"}}
            )
            assert created.is_error is False, text(created)
            llm.release()
        doc = (await tenant_b.call_tool("get_profile", {"profile": "alice"})).structured_content
        assert doc["attributes"] == {} and doc["summary"] is None and doc["version"] == 1
        history = (await tenant_b.call_tool("profile_history", {"profile": "alice"})).structured_content
        assert [v["actor"] for v in history["versions"]] == ["agent"]
        [answer] = answers
        assert answer.is_error and text(answer).startswith("not_found:"), text(answer)
        gone = await tenant_a.call_tool("get_profile", {"profile": "alice"})
        assert text(gone).startswith("not_found:")


@pytest.mark.sqlite_only  # edits the file with sqlite3
async def test_profile_keys_are_never_reused_also_in_a_file_made_before_the_migration(config: Config) -> None:
    import sqlite3
    from importlib import resources

    from mcp_profiles.models import Profile

    con = sqlite3.connect(config.db_path)  # a file as an older version left it: migrations 1 and 2
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
    for version, name in ((1, "001_init.sql"), (2, "002_job_claims.sql")):
        con.executescript((resources.files("mcp_profiles") / "migrations" / name).read_text("utf-8"))
        con.execute("INSERT INTO schema_migrations VALUES (?, datetime('now'))", (version,))
    for ref in ("a", "b", "c"):
        doc = Profile(
            id=ref,
            kind="user",
            version=1,
            created_at="2026-01-01T00:00:00Z",
            updated_at="2026-01-01T00:00:00Z",
        )
        con.execute(
            "INSERT INTO profiles (namespace, id, kind, version, created_at, updated_at, document) "
            "VALUES ('default', ?, 'user', 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', ?)",
            (ref, doc.model_dump_json()),
        )
    con.commit()
    con.close()
    async with open_app(config, worker=False) as app:
        await app.service.delete_profile("default", "c")
        await app.service.update_profile("default", "d", {}, create=True)
        await app.service.delete_profile("default", "d")
        await app.service.update_profile("default", "e", {}, create=True)
    con = sqlite3.connect(config.db_path)
    keys = dict(con.execute("SELECT id, pk FROM profiles").fetchall())
    con.close()
    assert keys == {"a": 1, "b": 2, "e": 5}


class SlowLLM(GatedLLM):
    """Answers every call after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(gated=False)
        self.delay = delay

    async def complete(self, request: LLMRequest, repair: Repair | None = None) -> LLMAnswer:
        await anyio.sleep(self.delay)
        return await super().complete(request, repair)


async def test_a_long_item_outliving_its_lease_costs_each_batch_one_model_call(config: Config) -> None:
    """Lease 1 s, ten batches of 0.4 s each: the lease is renewed during and after every
    batch, so neither this process's worker nor a second process on the same file takes the
    work over, and every part of the data is sent to the model exactly once."""
    cfg = Config(db=config.db, batch_tokens=500, lease_seconds=1.0)
    data = "\n".join(f"User: note {i:03d}, my hobby number {i} is one I enjoy a lot." for i in range(300))
    llm = SlowLLM(0.4)
    async with (
        open_app(cfg, llm=llm) as app,  # type: ignore[arg-type]
        open_app(cfg, llm=llm) as other,  # type: ignore[arg-type]  # a second process on the file
        Client(create_server(cfg, app=app)) as client,
    ):
        stop = anyio.Event()

        async def meddle() -> None:  # both workers keep looking for abandoned work
            while not stop.is_set():
                await other.extractor.recover()
                await other.extractor.drain()
                await app.extractor.recover()
                await anyio.sleep(0.1)

        async with anyio.create_task_group() as tg:
            tg.start_soon(meddle)
            with anyio.fail_after(60):
                result = await client.call_tool("upsert_profile_from_data", {"profile": "u", "data": data})
            stop.set()
        body = result.structured_content
        assert body is not None and body["status"] == "updated", text(result)
        job = (await client.call_tool("get_job", {"job_id": body["job_id"]})).structured_content
    sent = [request.data for request in llm.calls]
    assert len(sent) >= 8 and len(set(sent)) == len(sent)  # no part extracted twice
    assert body["usage"]["requests"] == len(sent) == job["usage"]["requests"]
    assert len(sent) * llm.delay > 3 * cfg.lease_seconds  # the work outlived the lease


async def test_a_live_claim_of_another_host_is_never_taken_over_while_its_lease_is_renewed(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica of another host (``MCP_PROFILES_HOST_ID``) whose pid is dead here, as the pid
    of another machine or container may be, works 2.5 s with a 1 s lease while a replica of
    this host keeps looking for abandoned work: it never takes the claim over (a local pid
    check would have), and the item is extracted once."""
    import os
    import subprocess
    import sys
    from contextlib import AsyncExitStack

    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    there = Config(db=config.db, lease_seconds=1.0, host_id="elsewhere")
    here = Config(db=config.db, lease_seconds=1.0)
    llm = SlowLLM(2.5)
    taken: list[int] = []
    async with AsyncExitStack() as stack:
        with monkeypatch.context() as m:  # the other host's process: its pid is no live pid here
            m.setattr(os, "getpid", lambda: gone.pid)
            app = await stack.enter_async_context(open_app(there, llm=llm, worker=False))  # type: ignore[arg-type]
        other = await stack.enter_async_context(open_app(here, llm=llm, worker=False))  # type: ignore[arg-type]
        client = await stack.enter_async_context(Client(create_server(there, app=app)))
        assert app.extractor.owner.startswith(f"elsewhere:{gone.pid}:")
        stop = anyio.Event()

        async def meddle() -> None:
            while not stop.is_set():
                taken.append(await other.extractor.recover())
                await other.extractor.drain()
                await anyio.sleep(0.1)

        async with anyio.create_task_group() as tg:
            tg.start_soon(meddle)
            with anyio.fail_after(30):
                result = await client.call_tool("upsert_profile_from_data", {"profile": "u", "data": CHAT})
            stop.set()
        body = result.structured_content
        assert body is not None and body["status"] == "updated", text(result)
        assert body["version"] == 2
    assert len(taken) >= 10 and sum(taken) == 0  # looked all along, took nothing
    assert len(llm.calls) == 1


class MeddlingLLM(GatedLLM):
    """A model whose call, as it starts, lets another replica look for abandoned work."""

    def __init__(self, other: Any) -> None:
        super().__init__(gated=False)
        self.other = other
        self.taken: list[int] = []

    async def complete(self, request: LLMRequest, repair: Repair | None = None) -> LLMAnswer:
        self.taken.append(await self.other.extractor.recover())
        await self.other.extractor.drain()
        return await super().complete(request, repair)


async def test_a_call_starting_later_than_the_lease_after_its_claim_keeps_the_claim(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lease 1 s, and 1.3 s between the claim and the model call (a fresh replica's slow first
    call): the lease is renewed as the call starts, so a replica of this host that looks for
    abandoned work at that moment takes nothing, and the item is extracted once."""
    import os
    import subprocess
    import sys
    from contextlib import AsyncExitStack

    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    there = Config(db=config.db, lease_seconds=1.0, host_id="elsewhere")
    here = Config(db=config.db, lease_seconds=1.0)
    async with AsyncExitStack() as stack:
        other = await stack.enter_async_context(open_app(here, llm=GatedLLM(gated=False), worker=False))  # type: ignore[arg-type]
        llm = MeddlingLLM(other)
        with monkeypatch.context() as m:  # another host's process: only its lease protects its claim
            m.setattr(os, "getpid", lambda: gone.pid)
            app = await stack.enter_async_context(open_app(there, llm=llm, worker=False))  # type: ignore[arg-type]

        async def slow_start(done: float, total: float, message: str) -> None:
            if done == 0:
                await anyio.sleep(1.3)  # between the claim and the call

        with anyio.fail_after(30):
            outcome = await app.extractor.upsert("default", "u", CHAT, progress=slow_start)
        assert outcome.job.status == "done", outcome
    assert llm.taken == [0]  # the other replica looked as the call started, and took nothing
    assert len(llm.calls) == 1


async def test_a_call_whose_later_batch_fails_changes_nothing(connect: Any, config: Config) -> None:
    """Data split into three requests; the second is refused (400). No batch is merged: the
    tool answers extraction_failed, the profile is untouched, and get_job says the same."""
    api = MessagesAPI()
    api.enqueue_tool({"operations": [op("interests.first", "first part", "note 000")]})
    api.enqueue_error(400, "invalid_request_error", message="prompt is too long")
    data = "\n".join(f"User: note {i:03d}, my hobby number {i} is one I enjoy a lot." for i in range(90))
    small = Config(db=config.db, batch_tokens=500)
    async with connect(small, server_kwargs={"llm": anthropic_llm(api)}) as client:
        await client.call_tool("update_profile", {"profile": "u", "create": True, "patch": {"name": "U"}})
        result = await client.call_tool("upsert_profile_from_data", {"profile": "u", "data": data})
        assert result.is_error and text(result).startswith("extraction_failed:"), text(result)
        doc = (await client.call_tool("get_profile", {"profile": "u"})).structured_content
        assert doc["version"] == 1 and doc["attributes"] == {}
        job_id = re.search(r"job (d_\w+)", text(result)).group(1)  # type: ignore[union-attr]
        job = (await client.call_tool("get_job", {"job_id": job_id})).structured_content
        assert job["status"] == "failed" and job["changes"] == [] and "400" in job["error"]
        assert job["usage"]["requests"] == 1  # the answered request is still accounted
        history = (await client.call_tool("profile_history", {"profile": "u"})).structured_content
        assert len(history["versions"]) == 1
    assert len(api.requests) == 2


async def test_a_rate_limited_call_waits_for_retry_after_and_a_bad_request_fails_at_once(
    connect: Any, config: Config
) -> None:
    api = MessagesAPI()
    api.enqueue_error(429, "rate_limit_error", headers={"retry-after-ms": "", "retry-after": "120"})
    api.enqueue_error(400, "invalid_request_error", message="messages: bad")
    async with connect(server_kwargs={"llm": anthropic_llm(api, max_retries=0)}) as client:
        result = await client.call_tool("upsert_profile_from_data", {"profile": "u", "data": CHAT})
        body = result.structured_content
        assert body is not None and body["status"] == "pending", text(result)
        assert "429" in body["message"] and "tried again" in body["message"]
        job = (await client.call_tool("get_job", {"job_id": body["job_id"]})).structured_content
        assert job["status"] == "pending" and "429" in job["error"] and "attempt 1 of 5" in job["error"]
        assert job["attempts"] == 1
        wait = datetime.fromisoformat(job["next_attempt_at"].replace("Z", "+00:00")) - datetime.now(UTC)
        assert 110 < wait.total_seconds() <= 121  # retry-after honoured over a 30 s backoff
        refused = await client.call_tool("upsert_profile_from_data", {"profile": "v", "data": CHAT})
        assert refused.is_error and text(refused).startswith("extraction_failed:") and "400" in text(refused)
        failed = (await client.call_tool("list_profiles", {})).structured_content
        assert [p["id"] for p in failed["profiles"]] == ["u", "v"]
    assert len(api.requests) == 2  # no retry of the 400, no early retry of the 429


async def test_overloaded_and_timed_out_calls_are_retried_with_backoff_up_to_max_attempts(
    connect: Any, config: Config
) -> None:
    import httpx2

    api = MessagesAPI()
    api.enqueue_error(529, "overloaded_error")
    api.enqueue_exception(httpx2.ReadTimeout("read timed out"))
    api.enqueue_error(503, "api_error")
    api.enqueue_tool({"operations": [op("work.role", "backend engineer", "a backend engineer")]})
    fast = Config(db=config.db, retry_delay=0.05, max_attempts=4)

    async def settled(client: Client, job_id: str) -> dict[str, Any]:
        with anyio.fail_after(20):
            while True:
                job = (await client.call_tool("get_job", {"job_id": job_id})).structured_content
                assert job is not None
                if job["status"] in ("done", "failed"):
                    return job
                await anyio.sleep(0.02)

    async with connect(fast, server_kwargs={"llm": anthropic_llm(api, max_retries=0)}) as client:
        first = await client.call_tool(
            "upsert_profile_from_data", {"profile": "u", "data": CHAT, "wait": False}
        )
        done = await settled(client, first.structured_content["job_id"])  # type: ignore[index]
        for _ in range(4):
            api.enqueue_error(529, "overloaded_error")
        second = await client.call_tool(
            "upsert_profile_from_data", {"profile": "w", "data": CHAT, "wait": False}
        )
        failed = await settled(client, second.structured_content["job_id"])  # type: ignore[index]
    assert done["status"] == "done" and done["attempts"] == 4 and done["changes"]
    assert failed["status"] == "failed" and failed["attempts"] == 4 and "529" in failed["error"]
    assert len(api.requests) == 8


@pytest.mark.sqlite_only  # edits the file with sqlite3
async def test_a_row_the_worker_cannot_read_as_expected_neither_stops_it_nor_the_server(
    config: Config,
) -> None:
    """An imported item whose created_at is not ISO 8601 (the batching wait reads it)."""
    import sqlite3

    cfg = Config(db=config.db, min_batch_tokens=10_000, max_batch_wait=3600)
    async with open_app(cfg, worker=False) as app:
        item, _, _ = await app.extractor.submit("default", "u", CHAT, "chat history", None)
    con = sqlite3.connect(config.db_path)
    con.execute("UPDATE data_items SET created_at = '30/11/2026 09:15'")
    con.commit()
    con.close()
    llm = GatedLLM(gated=False)
    async with open_app(cfg, llm=llm) as app, Client(create_server(cfg, app=app)) as client:  # type: ignore[arg-type]
        with anyio.fail_after(10):
            while (await app.extractor.job("default", item.id)).status != "done":
                await anyio.sleep(0.02)
        listed = await client.call_tool("list_profiles", {})
        assert listed.is_error is False and listed.structured_content["profiles"][0]["id"] == "u"  # type: ignore[index]


@pytest.mark.sqlite_only  # edits the file with sqlite3
async def test_a_locked_database_neither_stops_the_worker_nor_the_server(
    config: Config, monkeypatch: Any, caplog: Any
) -> None:
    """Another process holds the write lock longer than the busy timeout when the worker
    wakes: the worker logs 'database is locked', backs off, and extracts once it is free."""
    import sqlite3

    from mcp_profiles import store

    monkeypatch.setattr(store, "_BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(store, "_PRAGMAS", ("PRAGMA busy_timeout=50", *store._PRAGMAS[1:]))
    llm = GatedLLM(gated=False)
    async with open_app(config, llm=llm) as app, Client(create_server(config, app=app)) as client:  # type: ignore[arg-type]
        await client.call_tool("list_profiles", {})
        other = sqlite3.connect(config.db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        app.extractor.wake()
        with anyio.fail_after(10):
            while "database is locked" not in caplog.text:
                await anyio.sleep(0.02)
        other.execute("ROLLBACK")
        other.close()
        result = await client.call_tool(
            "upsert_profile_from_data", {"profile": "u", "data": CHAT, "wait": False}
        )
        job_id = result.structured_content["job_id"]  # type: ignore[index]
        with anyio.fail_after(10):
            while (await client.call_tool("get_job", {"job_id": job_id})).structured_content[
                "status"
            ] != "done":  # type: ignore[index]
                await anyio.sleep(0.02)
    assert "the extraction worker failed" in caplog.text and len(llm.calls) == 1


@pytest.mark.sqlite_only  # edits the file with sqlite3
async def test_a_declined_sampling_request_keeps_the_data_pending_and_says_so(
    connect: Any, config: Config
) -> None:
    import json
    import sqlite3

    from mcp.client import ClientRequestContext
    from mcp.shared.exceptions import MCPError
    from mcp.types import CreateMessageRequestParams, CreateMessageResult, ErrorData, TextContent

    mode = {"answer": "decline"}

    async def sampler(
        ctx: ClientRequestContext, params: CreateMessageRequestParams
    ) -> CreateMessageResult | ErrorData:
        if mode["answer"] == "decline":
            return ErrorData(code=-1, message="User rejected sampling request")
        if mode["answer"] == "crash":
            raise RuntimeError("the host's model is down")
        answer = {"operations": [op("work.role", "backend engineer", "a backend engineer")]}
        return CreateMessageResult(
            role="assistant", model="client-llm", content=TextContent(type="text", text=json.dumps(answer))
        )

    def stored() -> list[tuple[str, str]]:
        con = sqlite3.connect(config.db_path)
        try:
            return con.execute("SELECT id, status FROM data_items ORDER BY rowid").fetchall()
        finally:
            con.close()

    async with connect(mode="legacy", sampling_callback=sampler) as client:  # handshake era: an answer
        result = await client.call_tool("upsert_profile_from_data", {"profile": "u", "data": CHAT})
        body = result.structured_content
        assert body is not None and body["status"] == "pending", text(result)
        assert "User rejected sampling request" in body["message"] and body["job_id"] in body["message"]
        job = (await client.call_tool("get_job", {"job_id": body["job_id"]})).structured_content
        assert job is not None and job["status"] == "pending"
        mode["answer"] = "crash"
        again = await client.call_tool("upsert_profile_from_data", {"profile": "u", "data": CHAT})
        assert again.structured_content["status"] == "pending"  # type: ignore[index]
        assert stored() == [(body["job_id"], "pending")]
    mode["answer"] = "decline"
    async with connect(sampling_callback=sampler) as client:  # 2026-07-28: the client ends the call itself
        with pytest.raises(MCPError, match="rejected"):
            await client.call_tool("upsert_profile_from_data", {"profile": "v", "data": CHAT})
        assert [status for _, status in stored()] == ["pending", "pending"]  # stored before asking
        mode["answer"] = "accept"
        done = await client.call_tool("upsert_profile_from_data", {"profile": "v", "data": CHAT})
        assert done.structured_content["status"] == "updated", text(done)  # type: ignore[index]
    assert [status for _, status in stored()] == ["pending", "done"]


def test_process_reports_and_exits_on_this_runs_failures_only(
    config: Config, monkeypatch: Any, capsys: Any
) -> None:
    from mcp_profiles import runtime
    from mcp_profiles.cli import main

    api = MessagesAPI()
    api.enqueue_error(400, "invalid_request_error", message="an earlier run's failure")

    async def seed() -> None:
        async with open_app(config, llm=anthropic_llm(api), worker=False) as app:
            old, _, _ = await app.extractor.submit("default", "u", CHAT, None, None)
            assert (await app.extractor.wait_for("default", old)).status == "failed"
            await app.extractor.submit("default", "u", CHAT + "User: I also play chess.\n", None, None)

    anyio.run(seed)
    monkeypatch.setattr(runtime, "llm_from_env", lambda config, env=None: anthropic_llm(api))
    api.enqueue_tool({"operations": [op("interests.chess", "chess", "I also play chess")]})
    code = main(["process"])
    out = capsys.readouterr().out
    assert code == 0 and "processed 1 item(s); 0 failed" in out, out

    async def store_more() -> None:
        async with open_app(config, worker=False) as app:
            await app.extractor.submit("default", "u", "User: I moved to Hamburg.\n", None, None)

    anyio.run(store_more)
    api.enqueue_error(400, "invalid_request_error", message="this run's failure")
    code = main(["process", "u"])
    out = capsys.readouterr().out
    assert code == 1 and "processed 1 item(s); 1 failed" in out and "this run's failure" in out, out


async def test_claims_are_capped_by_the_token_estimate_stored_at_submit(config: Config) -> None:
    from mcp_profiles.chunking import estimate_tokens
    from tests.helpers import rows

    cfg = Config(db=config.db, batch_tokens=500)  # a claim takes at most 8 x 500 tokens
    api = MessagesAPI(when_empty="echo")
    texts = [f"User: item {i}. " + " ".join(f"word{j}" for j in range(400)) for i in range(10)]
    async with open_app(cfg, llm=anthropic_llm(api), worker=False) as app:
        items = [(await app.extractor.submit("default", "u", t, None, None))[0] for t in texts]
        stored = {k: int(v) for k, v in rows(config.db_path, "SELECT id, tokens FROM data_items")}
        assert stored == {item.id: estimate_tokens(t) for item, t in zip(items, texts, strict=True)}
        first = await app.extractor.process("default", items[0].profile_pk)
        assert 1 <= len(first) < len(texts) and sum(stored[r.job_id] for r in first) <= 4000
        rest = await app.extractor.drain()
    assert {r.job_id for r in first + rest} == set(stored) and {r.status for r in first + rest} == {"done"}


async def test_a_waiter_is_woken_by_its_items_event_not_by_polling(config: Config) -> None:
    """The background worker holds the item for a second; a caller waiting on it reads the
    store a handful of times (it used to poll every 50 ms), and returns once it is done."""
    llm = GatedLLM()
    async with open_app(config, llm=llm) as app:  # type: ignore[arg-type]
        item, _, _ = await app.extractor.submit("default", "u", CHAT, None, None)
        with anyio.fail_after(10):
            await llm.started.wait()  # the worker has claimed it
        reads = 0
        read = app.store.read

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            return read(*args, **kwargs)

        app.store.read = counting  # type: ignore[method-assign]
        results: list[Any] = []

        async def wait() -> None:
            results.append(await app.extractor.wait_for("default", item))

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.sleep(1.0)
            llm.release()
        assert results[0].status == "done" and reads <= 8, (
            reads
        )  # the worker's own reads included; 50 ms polling made 20+


@pytest.mark.sqlite_only  # edits the file with sqlite3
async def test_waiting_for_work_another_process_holds_times_out_with_a_code(config: Config) -> None:
    import sqlite3
    import time

    from mcp_profiles.errors import Timeout

    async with open_app(config, llm=GatedLLM(gated=False), worker=False) as app:  # type: ignore[arg-type]
        app.extractor.lease_seconds = 1.0
        item, _, _ = await app.extractor.submit("default", "u", CHAT, None, None)
        con = sqlite3.connect(config.db_path)
        con.execute(
            "UPDATE data_items SET status = 'processing', claimed_by = 'another-host:7:run:1', claimed_at = ?",
            (time.time(),),
        )
        con.commit()
        con.close()
        with anyio.fail_after(10), pytest.raises(Timeout) as caught:
            await app.extractor.wait_for("default", item)
    assert str(caught.value).startswith("timeout: job ") and "get_job" in str(caught.value)


async def test_the_tool_and_the_cli_give_one_upsert_the_same_outcome(
    connect: Any, config: Config, monkeypatch: Any, capsys: Any, tmp_path: Any
) -> None:
    from mcp_profiles import runtime
    from mcp_profiles.cli import main

    api = MessagesAPI()
    api.enqueue_tool({"operations": [op("work.role", "backend engineer", "a backend engineer")]})
    monkeypatch.setattr(runtime, "llm_from_env", lambda config, env=None: anthropic_llm(api))
    chat = tmp_path / "chat.txt"
    chat.write_text(CHAT, encoding="utf-8")
    assert await anyio.to_thread.run_sync(main, ["ingest", "u", str(chat)]) == 0
    assert "version 2, 1 change(s)" in capsys.readouterr().out
    assert await anyio.to_thread.run_sync(main, ["ingest", "u", str(chat)]) == 0
    cli_says = capsys.readouterr().out
    async with connect(server_kwargs={"llm": anthropic_llm(api)}) as client:
        tool_says = (
            await client.call_tool("upsert_profile_from_data", {"profile": "u", "data": CHAT})
        ).structured_content
    assert tool_says is not None and tool_says["status"] == "duplicate"
    assert cli_says.strip() == f"{chat}: duplicate: {tool_says['message']}"
    assert len(api.requests) == 1
