"""``process --batch`` and ``ingest --batch``: the real SDK against a scripted Message Batches
endpoint (create, retrieve, JSONL results, errors, expiry) on ``httpx2.MockTransport``."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx2
import pytest

from bench.batch_api import BatchesAPI
from mcp_profiles import runtime
from mcp_profiles.cli import main
from mcp_profiles.config import Config
from mcp_profiles.extract import TOOL_NAME
from mcp_profiles.llm import AnthropicLLM
from tests import helpers

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

_DATA = re.compile(r'<data id="([^"]*)"[^>]*>\n(.*?)\n</data>', re.DOTALL)
USAGE = {
    "input_tokens": 100,
    "output_tokens": 20,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}

NOTES = {
    "alice": "I work as a backend engineer at a bank in Lisbon.\nWeekends are for surfing with friends.",
    "bob": "I moved to Oslo last spring for a job in shipping.\nI prefer short answers without jargon.",
    "carol": "I teach chemistry at a secondary school in Leeds.\nI have two cats called Salt and Pepper.",
}


def echo(params: dict[str, Any]) -> dict[str, Any]:
    """A tool call recording the first line of every data block, quoted exactly."""
    text = "\n".join(b["text"] for b in params["messages"][0]["content"] if b.get("type") == "text")
    operations = []
    for data_id, block in _DATA.findall(text):
        line = block.splitlines()[0].strip()
        key = "interests.note_" + hashlib.sha256(line.encode()).hexdigest()[:6]
        operations.append(
            {
                "op": "set",
                "key": key,
                "value": line[:60],
                "confidence": 0.9,
                "evidence": line,
                "data_id": data_id,
            }
        )
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": TOOL_NAME, "input": {"operations": operations}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": USAGE,
    }


def use(api: BatchesAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    def llm_from_env(config: Config, env: Any = None) -> AnthropicLLM:
        client = httpx2.AsyncClient(transport=httpx2.MockTransport(api.handler))
        return AnthropicLLM(config.model, api_key="test-key", max_retries=0, http_client=client)

    monkeypatch.setattr(runtime, "llm_from_env", llm_from_env)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def queue_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text in NOTES.items():
        path = tmp_path / f"{name}.txt"
        path.write_text(text)
        assert run(capsys, "ingest", name, str(path), "--no-wait")[0] == 0


def rows(db: str, sql: str) -> list[Any]:
    """Rows as tuples of text, read with the database's own client (SQLite or PostgreSQL)."""
    return [tuple(r) for r in helpers.rows(db, sql)]


def test_process_batch_merges_like_a_synchronous_call_and_bills_at_the_batch_rate(
    tmp_path: Path, config: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_notes(tmp_path, capsys)
    api = BatchesAPI(echo, polls=2)
    use(api, monkeypatch)
    code, out, err = run(capsys, "process", "--batch", "--poll-seconds", "0")
    assert code == 0, (out, err)
    # one batch for the three profiles, polled while in progress, results read once
    assert api.sent_requests() == 3 and len(api.batches) == 1
    assert ("POST", "/v1/messages") not in api.calls
    assert err.count("in_progress") == 2 and "ended (succeeded 3)" in err
    assert "batches: 1 sent (3 request(s)), 0 resumed; 3 answered" in out
    # merged as a synchronous answer: a version with the quoted fact and its evidence
    for name, text in NOTES.items():
        code, shown, _ = run(capsys, "show", name, "--json")
        doc = json.loads(shown)
        first = text.splitlines()[0]
        [attr] = [a for a in doc["attributes"].values() if a["value"] == first[:60]]
        assert attr["source"] == "extracted" and attr["evidence"][0]["quote"] == first
        assert doc["version"] == 2
    code, stats, _ = run(capsys, "stats", "--json")
    usage = json.loads(stats)["usage"]
    assert usage["requests"] == usage["batch_requests"] == 3
    assert usage["input_tokens"] == 300 and json.loads(stats)["items"] == {"done": 3}
    code, text, _ = run(capsys, "stats")
    assert "3 at the batch rate" in text
    assert rows(config.db, "SELECT status FROM extraction_batches") == [("ended",)]


def test_items_the_batch_does_not_answer_go_back_to_the_queue(
    tmp_path: Path, config: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_notes(tmp_path, capsys)

    def outcome(custom_id: str, params: dict[str, Any]) -> str:
        text = json.dumps(params["messages"])
        return "errored" if "Oslo" in text else "expired" if "Leeds" in text else "succeeded"

    api = BatchesAPI(echo, polls=0, outcome=outcome)
    use(api, monkeypatch)
    code, out, err = run(capsys, "process", "--batch", "--poll-seconds", "0")
    assert code == 1
    assert "2 item(s) are back in the queue" in out and "overloaded_error" in out and "expired" in out
    statuses = dict(
        rows(config.db, "SELECT p.id, d.status FROM data_items d JOIN profiles p ON p.pk = d.profile_pk")
    )
    assert statuses == {"alice": "done", "bob": "pending", "carol": "pending"}
    # the next run sends only what is still waiting, and finishes it
    api.outcome = lambda custom_id, params: "succeeded"
    code, out, _ = run(capsys, "process", "--batch", "--poll-seconds", "0")
    assert code == 0 and api.sent_requests() == 3 + 2
    assert {s for (s,) in rows(config.db, "SELECT status FROM data_items")} == {"done"}


@pytest.mark.sqlite_only  # edits the claims with sqlite3
def test_an_interrupted_run_resumes_its_batch_without_sending_it_again(
    tmp_path: Path, config: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_notes(tmp_path, capsys)
    api = BatchesAPI(echo, polls=1000)  # never ends during the first run
    use(api, monkeypatch)
    polls = 0

    def interrupt(line: str) -> None:
        nonlocal polls
        polls += "in_progress" in line
        if polls == 2:
            raise KeyboardInterrupt  # Ctrl-C while waiting

    from mcp_profiles import batches

    original = batches.run_batches

    async def interrupted(*args: Any, **kwargs: Any) -> Any:
        return await original(*args, **{**kwargs, "progress": interrupt})

    monkeypatch.setattr(batches, "run_batches", interrupted)
    with pytest.raises(BaseExceptionGroup) as interrupted_run:  # task groups wrap it
        main(["process", "--batch", "--poll-seconds", "0"])
    assert interrupted_run.group_contains(KeyboardInterrupt)
    capsys.readouterr()
    assert api.sent_requests() == 3
    assert rows(config.db, "SELECT status FROM extraction_batches") == [("submitted",)]
    assert {s for (s,) in rows(config.db, "SELECT status FROM data_items")} <= {"pending", "processing"}
    monkeypatch.setattr(batches, "run_batches", original)
    # the claims of the interrupted run belong to a live pid (this test): make them stale
    with closing(sqlite3.connect(config.db)) as conn:
        conn.execute("UPDATE data_items SET claimed_by = 'gone:1:x', claimed_at = 0")
        conn.commit()
    api.batches["msgbatch_0001"].polls_left = 0
    code, out, err = run(capsys, "process", "--batch", "--poll-seconds", "0")
    assert code == 0, (out, err)
    assert api.sent_requests() == 3 and len(api.batches) == 1  # nothing sent twice
    assert "resuming, 3 request(s) already sent" in err and "0 sent (0 request(s)), 1 resumed" in out
    assert {s for (s,) in rows(config.db, "SELECT status FROM data_items")} == {"done"}


def test_ingest_batch_queues_the_files_and_extracts_them_in_one_batch(
    tmp_path: Path, config: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = BatchesAPI(echo, polls=0)
    use(api, monkeypatch)
    files = []
    for n, text in enumerate(NOTES.values()):
        files.append(tmp_path / f"part{n}.txt")
        files[-1].write_text(text)
    code, out, err = run(capsys, "ingest", "dora", *map(str, files), "--batch", "--poll-seconds", "0")
    assert code == 0, (out, err)
    assert out.count("queued as job") == 3 and api.sent_requests() == 1  # coalesced into one request
    doc = json.loads(run(capsys, "show", "dora", "--json")[1])
    assert len(doc["attributes"]) == 3


def test_batch_needs_the_anthropic_api(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "process", "--batch")
    assert code != 0 and "ANTHROPIC_API_KEY" in err


def test_later_parts_and_repairs_go_in_later_batches_built_on_the_merged_profile(
    tmp_path: Path, config: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile whose data needs two calls sends the second in a second batch, with the
    first one's facts in its context, as a synchronous run does; a rejected answer is
    repaired in the batch after it."""
    monkeypatch.setenv("MCP_PROFILES_BATCH_TOKENS", "500")
    calls = 0

    def answer(params: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first answer breaks the schema: repaired in the next batch
            return {
                **echo(params),
                "content": [{"type": "tool_use", "id": "t", "name": TOOL_NAME, "input": {}}],
            }
        return echo(params)

    api = BatchesAPI(answer, polls=0)
    use(api, monkeypatch)
    first = tmp_path / "first.txt"
    second = tmp_path / "second.txt"
    first.write_text("I live in Porto and work as a nurse.\n" + "I like long walks by the river.\n" * 60)
    second.write_text("I started learning the cello this year.\n" + "Practice takes an hour a day.\n" * 60)
    assert run(capsys, "ingest", "erin", str(first), str(second), "--no-wait")[0] == 0
    code, out, err = run(capsys, "process", "--batch", "--poll-seconds", "0")
    assert code == 0, (out, err, rows(config.db, "SELECT error FROM data_items"))
    assert len(api.batches) >= 3  # first part, its repair, then the second part
    last = api.batches[max(api.batches)].requests[-1]["params"]
    context = last["messages"][0]["content"][0]["text"]
    assert "I live in Porto and work as a nurse." in context  # built on the merged profile
    doc = json.loads(run(capsys, "show", "erin", "--json")[1])
    assert {a["value"] for a in doc["attributes"].values()} >= {
        "I live in Porto and work as a nurse.",
        "I started learning the cello this year.",
    }
