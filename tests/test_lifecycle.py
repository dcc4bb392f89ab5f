"""The data lifecycle through the MCP client with a scripted model: list_data, forget_data,
retention of raw data, version pruning, and export/import of what is left.

Erasure is checked the way ``test_erasure`` checks ``delete_profile``, with the shared scan
of ``tests/scan.py``: every byte of the database file and its WAL, shared-memory and journal
files, plain and inside zlib streams, and every row with its compressed columns decoded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.subscriptions import ResourceUpdated

from mcp_profiles.cli import main
from mcp_profiles.config import Config
from mcp_profiles.llm import AnthropicLLM
from mcp_profiles.runtime import open_app
from mcp_profiles.stores import is_postgres_url
from tests.fakes import MessagesAPI, anthropic_llm
from tests.helpers import all_pages, psql, text
from tests.procs.common import integrity_check
from tests.scan import scan

pytestmark = pytest.mark.backends  # on SQLite and PostgreSQL; file scans on SQLite only (conftest)

# Item A and item B both say she keeps a lighthouse; only B mentions the cat.
ITEM_A = "User: I'm a lighthouse keeper in Quenwick and I love kayaking on calm days.\n"
ITEM_B = (
    "User: Still keeping the lighthouse, mostly night shifts.\n"
    "User: My cat is called Zorbulax and sleeps on the lamp room stairs.\n"
)
# What forgetting B must remove from every byte of the database: its own words and the
# values that came only from it.
B_ONLY = [b"zorbulax", b"night shifts", b"lamp room stairs", b"Cat person"]


async def cli(argv: list[str]) -> int:
    """The command line, from an async test (it runs its own event loop)."""
    return int(await anyio.to_thread.run_sync(main, argv))


def op(key: str, value: Any, evidence: str, confidence: float = 0.9) -> dict[str, Any]:
    return {"op": "set", "key": key, "value": value, "confidence": confidence, "evidence": evidence}


def script_two_items(api: MessagesAPI) -> None:
    api.enqueue_tool(
        {
            "operations": [
                op("work.role", "lighthouse keeper", "I'm a lighthouse keeper"),
                op("basic_info.city", "Quenwick", "lighthouse keeper in Quenwick"),
            ]
        }
    )
    api.enqueue_tool(
        {
            "operations": [
                op("work.role", "lighthouse keeper", "Still keeping the lighthouse"),
                op("work.schedule", "night shifts", "mostly night shifts"),
                op("relationships.pet", "a cat called Zorbulax", "My cat is called Zorbulax"),
            ],
            "summary": "Cat person who keeps a lighthouse at night; her cat is Zorbulax.",
        }
    )


def hits(db: str, needles: list[bytes]) -> dict[str, list[str]]:
    """Which needles occur (ASCII case-insensitively) in which database file. On PostgreSQL,
    in which table's rows (any column, the search vector included), read with ``psql``: what
    PostgreSQL promises at commit, its files keeping dead rows until ``compact`` (README)."""
    found: dict[str, list[str]] = {}
    if is_postgres_url(db):
        for (table,) in psql(
            db, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ):
            present = [
                n.decode()
                for n in needles
                if psql(
                    db,
                    f"SELECT count(*) FROM {table} t WHERE strpos(lower(t::text), '{n.decode().lower()}') > 0",
                )
                != [["0"]]
            ]
            if present:
                found[table] = present
        return found
    return scan(db, needles).hits  # plain, in zlib streams, and in decoded rows (tests/scan.py)


async def upsert(client: Any, data: str, **kw: Any) -> dict[str, Any]:
    result = await client.call_tool("upsert_profile_from_data", {"profile": "ada", "data": data, **kw})
    assert not result.is_error, text(result)
    return dict(result.structured_content)


async def test_forgetting_one_item_removes_exactly_what_only_it_supports(
    connect: Any, config: Config
) -> None:
    api = MessagesAPI()
    script_two_items(api)
    async with connect(server_kwargs={"llm": anthropic_llm(api)}) as client:
        await client.call_tool(
            "update_profile",
            {"profile": "ada", "create": True, "patch": {"attributes": {"basic_info.name": "Ada"}}},
        )
        a = (await upsert(client, ITEM_A, input_type="chat history"))["job_id"]
        b = (await upsert(client, ITEM_B))["job_id"]
        listed = (await client.call_tool("list_data", {"profile": "ada"})).structured_content
        assert [(i["data_id"], i["status"], i["facts"]) for i in listed["items"]] == [
            (a, "done", ["basic_info.city", "work.role"]),
            (b, "done", ["relationships.pet", "work.role", "work.schedule"]),
        ]
        assert listed["items"][0]["input_type"] == "chat history"
        assert listed["items"][0]["bytes"] == len(ITEM_A.encode()) and listed["items"][0]["content_kept"]
        assert listed["next_cursor"] is None
        seen = hits(config.db_path, B_ONLY)
        assert seen, "the scan must see B's values before the forget"
        if not is_postgres_url(config.db_path):  # and inside what SQLite stores compressed
            compressed = {"profiles.document", "revisions.diff", "revisions.snapshot"}
            assert compressed <= set(seen) and all("night shifts" in seen[k] for k in compressed), seen
        before = (await client.call_tool("get_profile", {"profile": "ada"})).structured_content

        async with client.listen(resource_subscriptions=["profile://ada"]) as sub:
            forgot = await client.call_tool("forget_data", {"profile": "ada", "data_id": b})
            with anyio.fail_after(5):
                event = await sub.__anext__()
        assert event == ResourceUpdated(uri="profile://ada")
        assert not forgot.is_error, text(forgot)
        out = forgot.structured_content
        assert out["removed_facts"] == ["relationships.pet", "work.schedule"]
        assert out["removed_evidence"] == ["work.role"]
        assert out["removed_summary"] is True and out["forgotten"] is True
        assert out["version"] == before["version"] + 1 and out["revisions_rewritten"] >= 1

        doc = (await client.call_tool("get_profile", {"profile": "ada"})).structured_content
        assert set(doc["attributes"]) == {"basic_info.name", "basic_info.city", "work.role"}
        role = doc["attributes"]["work.role"]
        assert role["value"] == "lighthouse keeper"  # shared: kept, with only A's evidence
        assert role["evidence"] == [{"data_id": a, "quote": "I'm a lighthouse keeper"}]
        assert doc["attributes"]["basic_info.name"] == before["attributes"]["basic_info.name"]  # manual
        assert doc["summary"] is None
        history = (await client.call_tool("profile_history", {"profile": "ada"})).structured_content
        dumped = json.dumps(history)
        assert "Zorbulax" not in dumped and "night shifts" not in dumped
        assert {"forgotten": b} in [c["new"] for v in history["versions"] for c in v["changes"]]
        assert history["versions"][0]["reason"] == f"forget data {b}"
        # the item is gone everywhere
        assert text(await client.call_tool("get_job", {"job_id": b})).startswith("not_found:")
        again = await client.call_tool("forget_data", {"profile": "ada", "data_id": b})
        assert again.is_error and text(again).startswith("not_found:")
        listed = (await client.call_tool("list_data", {"profile": "ada"})).structured_content
        assert [i["data_id"] for i in listed["items"]] == [a]
        search = await client.call_tool("list_profiles", {"query": "zorbulax"})
        assert search.structured_content["profiles"] == []
        assert hits(config.db_path, B_ONLY) == {}  # server running: live WAL and shm
        assert hits(config.db_path, [b"quenwick", b"kayaking"])  # A is untouched
    assert hits(config.db_path, B_ONLY) == {}
    if not is_postgres_url(config.db_path):
        assert integrity_check(config.db_path) == "ok"


async def test_forgetting_rewrites_every_version_and_other_items_results(
    connect: Any, config: Config
) -> None:
    """B's values reach history through several versions, a batch-mate's job result, and a
    conflict with a value set by hand; all of it goes, the rest of history stays."""
    api = MessagesAPI()
    api.enqueue_tool(
        {
            "operations": [
                op("work.schedule", "night shifts", "mostly night shifts"),
                op("basic_info.city", "Quenwick", "lighthouse keeper in Quenwick"),
                op("work.role", "cat minder", "My cat is called Zorbulax"),  # conflicts with a manual value
            ],
            "summary": "Cat person in Quenwick.",
        }
    )
    async with connect(server_kwargs={"llm": anthropic_llm(api)}) as client:
        await client.call_tool(
            "update_profile",
            {"profile": "ada", "create": True, "patch": {"attributes": {"work.role": "keeper"}}},
        )
        a = (await upsert(client, ITEM_A, wait=False))["job_id"]
        b = (await upsert(client, ITEM_B, wait=False))["job_id"]
        with anyio.fail_after(10):  # the worker extracts both in one call
            while any(
                i["status"] != "done"
                for i in (await client.call_tool("list_data", {"profile": "ada"})).structured_content["items"]
            ):
                await anyio.sleep(0.02)
        job_a = (await client.call_tool("get_job", {"job_id": a})).structured_content
        assert job_a["conflicts"][0]["proposed"] == "cat minder"
        await client.call_tool("update_profile", {"profile": "ada", "patch": {"name": "Ada"}})
        out = (await client.call_tool("forget_data", {"profile": "ada", "data_id": b})).structured_content
        assert out["removed_facts"] == ["work.schedule"] and out["job_results_rewritten"] == 1
        job_a = (await client.call_tool("get_job", {"job_id": a})).structured_content
        assert job_a["conflicts"][0]["proposed"] == {"forgotten": b}
        assert "night shifts" not in json.dumps(job_a)
        changes = {c["path"]: c["new"] for c in job_a["changes"]}
        assert changes["attributes.work.schedule"] == changes["summary"] == {"forgotten": b}
        assert changes["attributes.basic_info.city"]["value"] == "Quenwick"
        doc = (await client.call_tool("get_profile", {"profile": "ada"})).structured_content
        assert doc["attributes"]["work.role"]["value"] == "keeper"  # manual, untouched
        assert doc["attributes"]["basic_info.city"]["evidence"][0]["data_id"] == a
        assert doc["name"] == "Ada"
    assert hits(config.db_path, B_ONLY) == {}


def _llm_over(handler: Callable[[httpx2.Request], Awaitable[httpx2.Response]]) -> AnthropicLLM:
    """The real adapter over a handler that wraps ``MessagesAPI`` (to hold or slow its answers)."""
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return AnthropicLLM("claude-haiku-5-5", api_key="test-key", max_retries=0, http_client=client)


async def test_an_item_being_extracted_cannot_be_forgotten_until_it_is_done(
    connect: Any, config: Config
) -> None:
    api = MessagesAPI()
    api.enqueue_tool({"operations": [op("relationships.pet", "Zorbulax", "My cat is called Zorbulax")]})
    called, release = anyio.Event(), anyio.Event()

    async def gated(request: Any) -> Any:
        called.set()
        await release.wait()
        return api.handler(request)

    async with connect(server_kwargs={"llm": _llm_over(gated)}) as client:
        job = (await upsert(client, ITEM_B, wait=False))["job_id"]
        with anyio.fail_after(10):
            await called.wait()
        refused = await client.call_tool("forget_data", {"profile": "ada", "data_id": job})
        assert refused.is_error and text(refused).startswith("conflict:") and "get_job" in text(refused)
        release.set()
        with anyio.fail_after(10):
            while (await client.call_tool("get_job", {"job_id": job})).structured_content["status"] != "done":
                await anyio.sleep(0.02)
        out = await client.call_tool("forget_data", {"profile": "ada", "data_id": job})
        assert out.structured_content["removed_facts"] == ["relationships.pet"]
        doc = (await client.call_tool("get_profile", {"profile": "ada"})).structured_content
        assert doc["attributes"] == {}
    assert hits(config.db_path, [b"zorbulax"]) == {}


async def test_forget_racing_extraction_never_leaves_a_fact_citing_a_forgotten_item(
    config: Config, connect: Any
) -> None:
    """Twenty items, each extracted by the background worker (a model that takes 0-30 ms)
    while forget_data is called at a random moment (retried while the item is being
    extracted). Whatever wins, no fact, version or job result may cite a forgotten item."""
    import random

    api = MessagesAPI(when_empty="echo")  # sets basic_info.fake_note, quoting the item's first line
    rng = random.Random(13)

    async def slow(request: Any) -> Any:
        await anyio.sleep(rng.uniform(0, 0.03))
        return api.handler(request)

    llm = _llm_over(slow)
    forgotten: list[str] = []
    kept: list[str] = []
    outcomes = {"before extraction": 0, "after extraction": 0, "refused while extracting": 0}
    async with connect(server_kwargs={"llm": llm}) as client:
        for i in range(20):
            data = f"Note {i}: my secret word is qx{i:02d}vellumbrook.\n"
            job = (await upsert(client, data, wait=False))["job_id"]
            if i % 4 == 3:  # some items are never forgotten
                kept.append(job)
                continue
            await anyio.sleep(rng.uniform(0, 0.04))
            with anyio.fail_after(20):
                while True:
                    status = (await client.call_tool("get_job", {"job_id": job})).structured_content["status"]
                    result = await client.call_tool("forget_data", {"profile": "ada", "data_id": job})
                    if not result.is_error:
                        outcomes["after extraction" if status == "done" else "before extraction"] += 1
                        break
                    assert text(result).startswith("conflict:"), text(result)
                    outcomes["refused while extracting"] += 1
                    await anyio.sleep(0.005)
            forgotten.append(job)
        with anyio.fail_after(20):  # let the worker finish what is left
            while any(
                i["status"] in ("pending", "processing")
                for i in (await client.call_tool("list_data", {"profile": "ada"})).structured_content["items"]
            ):
                await anyio.sleep(0.02)
        doc = (await client.call_tool("get_profile", {"profile": "ada"})).structured_content
        history = (
            await client.call_tool("profile_history", {"profile": "ada", "limit": 200})
        ).structured_content
        jobs = [(await client.call_tool("get_job", {"job_id": k})).structured_content for k in kept]
        listed = (await client.call_tool("list_data", {"profile": "ada"})).structured_content
    cited = {e["data_id"] for attr in doc["attributes"].values() for e in attr["evidence"]}
    assert cited <= set(kept) and not cited & set(forgotten)
    assert {i["data_id"] for i in listed["items"]} == set(kept)
    for record in (history, jobs):
        dumped = json.dumps(record)
        assert not [f for f in forgotten if f'"data_id": "{f}"' in dumped]
    secrets = [f"qx{i:02d}vellumbrook".encode() for i in range(20) if i % 4 != 3]
    assert hits(config.db_path, secrets) == {}
    assert hits(config.db_path, [b"qx03vellumbrook"])  # a kept item is still there
    print(f"\nforget race: {outcomes}")


async def test_a_sampled_answer_for_a_forgotten_item_writes_nothing(config: Config) -> None:
    """MCP sampling applies an answer without a claim: if the item was forgotten while the
    client's model was answering, nothing it says may land in the profile."""
    async with open_app(config, worker=False) as app:
        ex = app.extractor
        assert await ex.sampling_request("default", "ada", ITEM_B, None, None) is not None
        item, _, _ = await ex.submit("default", "ada", ITEM_B, None, None)
        await app.lifecycle.forget_data("default", "ada", item.id)
        answer = json.dumps(
            {
                "operations": [op("relationships.pet", "Zorbulax", "My cat is called Zorbulax")],
                "summary": "Has a cat called Zorbulax.",
            }
        )
        with pytest.raises(Exception, match="forgotten"):
            await ex.from_sample("default", item, answer)
        doc = await app.service.get_profile("default", "ada")
        assert doc.attributes == {} and doc.summary is None


async def test_a_summary_written_from_a_profile_that_held_forgotten_values_is_dropped(config: Config) -> None:
    """The model is shown the profile; if an item it saw is forgotten before the answer is
    applied, the summary it wrote may restate what was forgotten, so it is not applied."""
    api = MessagesAPI()
    api.enqueue_tool(
        {"operations": [op("relationships.pet", "Zorbulax", "My cat is called Zorbulax")], "summary": "Cat."}
    )
    api.enqueue_tool(
        {
            "operations": [op("work.role", "lighthouse keeper", "I'm a lighthouse keeper")],
            "summary": "A lighthouse keeper whose cat is Zorbulax.",
        }
    )
    async with open_app(config, llm=anthropic_llm(api), worker=False) as app:
        ex = app.extractor
        b, _, _ = await ex.submit("default", "ada", ITEM_B, None, None)
        await ex.wait_for("default", b)
        a, _, _ = await ex.submit("default", "ada", ITEM_A, None, None)
        original = ex._commit

        async def forget_first(*args: Any, **kwargs: Any) -> None:  # forget lands mid-extraction
            await app.lifecycle.forget_data("default", "ada", b.id)
            await original(*args, **kwargs)

        ex._commit = forget_first  # type: ignore[method-assign]
        result = await ex.wait_for("default", a)
        doc = await app.service.get_profile("default", "ada")
    assert result.status == "done"
    assert doc.attributes["work.role"].value == "lighthouse keeper"
    assert doc.summary is None and "relationships.pet" not in doc.attributes
    assert hits(config.db_path, [b"zorbulax"]) == {}


async def test_keep_data_days_zero_deletes_raw_content_but_still_recognises_duplicates(
    connect: Any, config: Config
) -> None:
    data = "User: I'm a lighthouse keeper.\nUser: my locker code is 48151623, don't tell anyone.\n"
    api = MessagesAPI()
    api.enqueue_tool({"operations": [op("work.role", "lighthouse keeper", "I'm a lighthouse keeper")]})
    cfg = replace(config, keep_data_days=0)
    async with connect(cfg, server_kwargs={"llm": anthropic_llm(api)}) as client:
        first = await upsert(client, data)
        assert first["status"] == "updated"
        [item] = (await client.call_tool("list_data", {"profile": "ada"})).structured_content["items"]
        assert item["content_kept"] is False and item["bytes"] == len(data.encode())
        assert item["status"] == "done" and item["facts"] == ["work.role"]
        assert hits(config.db_path, [b"48151623", b"locker code"]) == {}
        again = await upsert(client, data)
        assert again["status"] == "duplicate" and again["job_id"] == first["job_id"]
        assert len(api.requests) == 1  # no model call for the duplicate
        job = (await client.call_tool("get_job", {"job_id": first["job_id"]})).structured_content
        assert job["usage"]["requests"] == 1 and job["status"] == "done"
    assert hits(config.db_path, [b"48151623"]) == {}


async def test_retention_by_age_spares_pending_and_failed_items(config: Config) -> None:
    api = MessagesAPI()
    api.enqueue_tool({"operations": [op("work.role", "lighthouse keeper", "I'm a lighthouse keeper")]})
    api.enqueue_error(400, "invalid_request_error")
    async with open_app(config, llm=anthropic_llm(api), worker=False) as app:
        ex = app.extractor
        done, _, _ = await ex.submit("default", "ada", ITEM_A, None, None)
        await ex.wait_for("default", done)
        failed, _, _ = await ex.submit("default", "ada", ITEM_B, None, None)
        assert (await ex.wait_for("default", failed)).status == "failed"
        pending, _, _ = await ex.submit("default", "ada", "User: pending words pendulumquark.\n", None, None)
        counts = await app.lifecycle.prune()
        assert (counts.data_contents, counts.revisions) == (0, 0)  # nothing is 30 days old yet
        counts = await app.lifecycle.prune(datetime.now(UTC) + timedelta(days=31))
        assert counts.data_contents == 1
        page = await app.lifecycle.list_data("default", "ada")
        kept = {item.id: (item.status, item.content_deleted_at is None) for item, _ in page.items}
        assert kept == {done.id: ("done", False), failed.id: ("failed", True), pending.id: ("pending", True)}
    assert hits(config.db_path, [b"kayaking"]) == {}
    assert hits(config.db_path, [b"zorbulax", b"pendulumquark"])


async def test_version_pruning_keeps_the_newest_and_revert_to_a_pruned_version_is_not_found(
    connect: Any, config: Config, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connect() as client:
        for n in range(1, 7):
            await client.call_tool(
                "update_profile", {"profile": "ada", "create": True, "patch": {"name": f"Ada mk{n}"}}
            )
    # before the prune, the old names are only in compressed history: the scan must see them
    seen = hits(config.db_path, [b"Ada mk1", b"Ada mk2"])
    if is_postgres_url(config.db_path):
        assert "revisions" in seen, seen
    else:
        assert {"revisions.diff", "revisions.snapshot", "profiles.sqlite3 zlib"} <= set(seen), seen
        assert "profiles.sqlite3" not in seen and "profiles.name" not in seen, seen
    monkeypatch.setenv("MCP_PROFILES_KEEP_VERSIONS", "3")
    assert await cli(["prune"]) == 0
    assert "3 old version(s)" in capsys.readouterr().out
    async with connect() as client:
        history = (await client.call_tool("profile_history", {"profile": "ada"})).structured_content
        assert [v["version"] for v in history["versions"]] == [6, 5, 4]
        pruned = await client.call_tool("revert_profile", {"profile": "ada", "version": 2})
        assert pruned.is_error and text(pruned).startswith("not_found:")
        assert "was pruned" in text(pruned) and "4-6" in text(pruned)
        kept = await client.call_tool("revert_profile", {"profile": "ada", "version": 4})
        assert kept.structured_content["profile"]["name"] == "Ada mk4"
    # values only pruned versions held are gone (mk3 stays as what version 4 replaced)
    assert hits(config.db_path, [b"Ada mk1", b"Ada mk2"]) == {}
    assert await cli(["prune", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"data_contents": 0, "revisions": 1}  # 7 made 4 old


async def test_versions_older_than_keep_versions_days_go_but_the_current_one_stays(config: Config) -> None:
    async with open_app(replace(config, keep_versions_days=7), worker=False) as app:
        for n in range(3):
            await app.service.update_profile("default", "ada", {"name": f"n{n}"}, create=True)
        assert (await app.lifecycle.prune()).revisions == 0
        assert (await app.lifecycle.prune(datetime.now(UTC) + timedelta(days=8))).revisions == 2
        assert [v.version for v in await app.service.history("default", "ada")] == [3]


async def test_the_server_sweeps_periodically(connect: Any, config: Config) -> None:
    cfg = replace(config, keep_versions=2, prune_interval=0.05)
    async with connect(cfg) as client:
        for n in range(5):
            await client.call_tool(
                "update_profile", {"profile": "ada", "create": True, "patch": {"name": f"{n}"}}
            )
        with anyio.fail_after(10):
            while True:
                history = (await client.call_tool("profile_history", {"profile": "ada"})).structured_content
                if [v["version"] for v in history["versions"]] == [5, 4]:
                    break
                await anyio.sleep(0.05)


async def test_export_and_import_carry_forgotten_markers_and_pruned_history(
    connect: Any, config: Config, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = MessagesAPI()
    script_two_items(api)
    cfg = replace(config, keep_data_days=0)
    async with connect(cfg, server_kwargs={"llm": anthropic_llm(api)}) as client:
        for n in range(4):
            await client.call_tool(
                "update_profile", {"profile": "ada", "create": True, "patch": {"name": f"v{n}"}}
            )
        a = (await upsert(client, ITEM_A))["job_id"]
        b = (await upsert(client, ITEM_B))["job_id"]
        await client.call_tool("forget_data", {"profile": "ada", "data_id": b})
    monkeypatch.setenv("MCP_PROFILES_KEEP_VERSIONS", "4")
    assert await cli(["prune"]) == 0
    dump = tmp_path / "ada.jsonl"
    assert await cli(["export", "-o", str(dump)]) == 0
    record = json.loads(dump.read_text())
    assert [r["version"] for r in record["revisions"]] == [4, 5, 6, 7]
    assert "Zorbulax" not in dump.read_text() and {"forgotten": b} in [
        c["new"] for r in record["revisions"] for c in r["changes"]
    ]
    [item] = record["data_items"]
    assert item["id"] == a and item["content"] == "" and item["content_deleted_at"]

    other = str(tmp_path / "restored.sqlite3")
    capsys.readouterr()
    assert await cli(["import", str(dump), "--db", other]) == 0, capsys.readouterr().err
    assert await cli(["export", "--db", other]) == 0
    assert json.loads(capsys.readouterr().out) == record  # lossless, pruned history and markers included
    restored = replace(config, db=other)
    async with connect(restored) as client:
        gone = await client.call_tool("revert_profile", {"profile": "ada", "version": 2})
        assert text(gone).startswith("not_found:") and "pruned" in text(gone)
        [row] = (await client.call_tool("list_data", {"profile": "ada"})).structured_content["items"]
        assert row["bytes"] == len(ITEM_A.encode()) and row["content_kept"] is False
    # history that is not contiguous, or does not end at the document's version, is refused
    for revisions in (record["revisions"][:2] + record["revisions"][3:], record["revisions"][:-1]):
        broken = tmp_path / "broken.jsonl"
        broken.write_text(json.dumps({**record, "revisions": revisions, "data_items": []}))
        capsys.readouterr()
        assert await cli(["import", str(broken), "--db", str(tmp_path / "fresh.sqlite3")]) != 0
        assert "invalid:" in capsys.readouterr().err


async def test_list_data_pages_and_filters(connect: Any) -> None:
    async with connect() as client:  # no model: items stay pending
        ids = [(await upsert(client, f"note {n}\n"))["job_id"] for n in range(5)]
        items = await all_pages(client, "list_data", {"profile": "ada", "limit": 2}, "items")
        assert [i["data_id"] for i in items] == ids
        done = await client.call_tool("list_data", {"profile": "ada", "status": "done"})
        assert done.structured_content["items"] == []
        bad = await client.call_tool("list_data", {"profile": "ada", "cursor": "nope"})
        assert bad.is_error and text(bad).startswith("invalid:")
        missing = await client.call_tool("list_data", {"profile": "nobody"})
        assert text(missing).startswith("not_found:")
        pending = await client.call_tool("forget_data", {"profile": "ada", "data_id": ids[0]})
        assert (
            pending.structured_content["removed_facts"] == [] and pending.structured_content["version"] == 1
        )
        wrong = await client.call_tool("forget_data", {"profile": "other", "data_id": ids[1]})
        assert text(wrong).startswith("not_found:")


def test_cli_data_and_forget(capsys: Any, config: Config) -> None:
    async def seed() -> tuple[str, str]:
        api = MessagesAPI()
        script_two_items(api)
        async with open_app(config, llm=anthropic_llm(api), worker=False) as app:
            a, _, _ = await app.extractor.submit("default", "ada", ITEM_A, "chat history", None)
            await app.extractor.wait_for("default", a)
            b, _, _ = await app.extractor.submit("default", "ada", ITEM_B, None, None)
            await app.extractor.wait_for("default", b)
            return a.id, b.id

    a, b = anyio.run(seed)
    capsys.readouterr()
    assert main(["data", "ada"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(a) and "basic_info.city, work.role" in out[0]
    assert out[1].startswith(b) and "relationships.pet" in out[1]
    assert main(["forget", "ada", b]) == 0
    out = capsys.readouterr().out
    assert "removed facts: relationships.pet, work.schedule" in out and "summary removed" in out
    assert main(["data", "ada", "--json"]) == 0
    assert [i["data_id"] for i in json.loads(capsys.readouterr().out)["items"]] == [a]
    assert main(["forget", "ada", b]) == 1
    assert "not_found:" in capsys.readouterr().err
    assert hits(config.db_path, B_ONLY) == {}


async def test_a_summary_extracted_before_provenance_was_recorded_goes_with_any_forget(
    connect: Any, config: Config, tmp_path: Path
) -> None:
    """Snapshots written before ``summary_data_ids`` existed say nothing about where an
    extracted summary came from; forgetting any item removes it, from history too."""
    at = "2026-01-01T00:00:00Z"
    doc = {
        "id": "old",
        "summary": "Legacy summary about quasimodo bells.",
        "summary_source": "extracted",
        "attributes": {
            "work.role": {
                "value": "bell ringer",
                "source": "extracted",
                "evidence": [{"data_id": "d_legacy1", "quote": "I ring the bells"}],
            }
        },
        "version": 1,
        "created_at": at,
        "updated_at": at,
    }
    content = "I ring the bells of the cathedral."
    item = {
        "id": "d_legacy1",
        "profile_id": "old",
        "sha256": hashlib.sha256(content.encode()).hexdigest(),
        "content": content,
        "input_type": None,
        "status": "done",
        "created_at": at,
        "updated_at": at,
    }
    changes = [{"path": "summary", "old": None, "new": doc["summary"]}]
    record = {
        "profile": doc,
        "revisions": [
            {"version": 1, "actor": "extraction", "changed_at": at, "changes": changes, "snapshot": doc}
        ],
        "data_items": [item],
    }
    dump = tmp_path / "old.jsonl"
    dump.write_text(json.dumps(record))
    assert await cli(["import", str(dump)]) == 0
    async with connect() as client:
        out = (
            await client.call_tool("forget_data", {"profile": "old", "data_id": "d_legacy1"})
        ).structured_content
        assert out["removed_summary"] is True and out["removed_facts"] == ["work.role"]
        history = (await client.call_tool("profile_history", {"profile": "old"})).structured_content
        assert "quasimodo" not in json.dumps(history)
    assert hits(config.db_path, [b"quasimodo", b"cathedral", b"bell ringer"]) == {}


@pytest.mark.sqlite_only  # SQLite's WAL
async def test_a_reader_during_a_forget_makes_it_wal_pending_until_the_next_write(
    connect: Any, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcp_profiles import store
    from tests.test_erasure import reader_of

    monkeypatch.setattr(store, "ERASURE_CHECKPOINT_SECONDS", 0.3)
    api = MessagesAPI()
    script_two_items(api)
    async with connect(server_kwargs={"llm": anthropic_llm(api)}) as client:
        await upsert(client, ITEM_A)
        b = (await upsert(client, ITEM_B))["job_id"]
        with reader_of(config.db_path) as reader:
            out = (await client.call_tool("forget_data", {"profile": "ada", "data_id": b})).structured_content
            assert out["wal_pending"] is True
            assert hits(config.db_path, B_ONLY), "the reader should have kept the erased bytes on disk"
            reader.execute("COMMIT")
            await client.call_tool("update_profile", {"profile": "ada", "patch": {"name": "Ada"}})
            assert hits(config.db_path, B_ONLY) == {}
        out = await client.call_tool("list_data", {"profile": "ada"})
        assert len(out.structured_content["items"]) == 1


async def test_rest_lists_and_forgets_data_items(config: Config) -> None:
    from tests.test_rest import rest

    api = MessagesAPI()
    script_two_items(api)
    async with rest(config, token=None) as (http, app):
        app.extractor.llm = anthropic_llm(api)
        a, _, _ = await app.extractor.submit("default", "ada", ITEM_A, "chat history", None)
        await app.extractor.wait_for("default", a)
        b, _, _ = await app.extractor.submit("default", "ada", ITEM_B, None, None)
        await app.extractor.wait_for("default", b)
        listed = await http.get("/v1/profile/ada/data", params={"limit": 1})
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert [(i["data_id"], i["facts"]) for i in body["items"]] == [
            (a.id, ["basic_info.city", "work.role"])
        ]
        second = (await http.get("/v1/profile/ada/data", params={"cursor": body["next_cursor"]})).json()
        assert [i["data_id"] for i in second["items"]] == [b.id] and second["next_cursor"] is None
        forgot = await http.delete(f"/v1/profile/ada/data/{b.id}")
        assert forgot.status_code == 200, forgot.text
        assert forgot.json()["removed_facts"] == ["relationships.pet", "work.schedule"]
        again = await http.delete(f"/v1/profile/ada/data/{b.id}")
        assert again.status_code == 404 and again.json()["message"].startswith("not_found:")
        bad = await http.get("/v1/profile/ada/data", params={"status": "lost"})
        assert bad.status_code == 400 and bad.json()["message"].startswith("invalid:")
        assert [i["data_id"] for i in (await http.get("/v1/profile/ada/data")).json()["items"]] == [a.id]
        spec = (await http.get("/openapi.json")).json()
        assert {"/v1/profile/{id}/data", "/v1/profile/{id}/data/{data_id}"} <= set(spec["paths"])
    assert hits(config.db_path, B_ONLY) == {}
