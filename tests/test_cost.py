"""bench/cost.py on a miniature corpus: usage is computed from the request bodies the SDK
sent, caching follows Anthropic's rules, coalescing saves calls, re-sent data costs nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.cost import (
    TOOL_USE_OVERHEAD,
    CacheSimulator,
    Corpus,
    ScriptedMessagesAPI,
    corpora,
    main,
    measure,
    run,
)
from mcp_profiles.extract import estimate_tokens
from tests.eval_fixtures import REAL_DATA, write_eval_data


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_eval_data(tmp_path / "eval-data")


def corpus(data: Path, name: str) -> Corpus:
    [found] = [c for c in corpora(data, spc=3, locomo=1) if c.name == name]
    return found


def body_tokens(body: dict[str, Any]) -> tuple[int, int, int]:
    """(tools + system prefix, context, whole prompt) of an extraction request, recounted here."""
    [tool] = body["tools"]
    [system] = body["system"]
    context, data = body["messages"][0]["content"]
    prefix = (
        TOOL_USE_OVERHEAD
        + estimate_tokens(json.dumps(tool, ensure_ascii=False))
        + estimate_tokens(system["text"])
    )
    ctx = estimate_tokens(context["text"])
    return prefix, ctx, prefix + ctx + estimate_tokens(data["text"])


async def test_usage_comes_from_the_bodies_and_resending_costs_nothing(data: Path, tmp_path: Path) -> None:
    api = ScriptedMessagesAPI(min_cacheable=1024)
    spc = corpus(data, "spc")
    m = await measure(spc, 8000, str(tmp_path / "db.sqlite3"), api=api)
    assert m.requests == len(api.bodies) == 3  # one profile per dialogue, one call each
    assert m.resent_items == m.resent_duplicates == 3 and m.resent_requests == 0
    assert m.failed_items == 0
    assert m.raw_tokens == sum(estimate_tokens(d) for f in spc.feeds for d in f.items)
    # every dialogue was sent, and the prompt total is recounted from the bodies
    sent = "".join(b["messages"][0]["content"][1]["text"] for b in api.bodies)
    assert all(f.items[0] in sent for f in spc.feeds)
    counted = [body_tokens(b) for b in api.bodies]
    assert m.prompt_tokens == sum(total for _, _, total in counted)
    # caching: the first call writes tools+system, later calls read it (identical across
    # profiles); the context (the current profile) carries no breakpoint and is plain input
    (prefix, ctx0, total0), *rest = counted
    assert prefix >= 1024
    assert api.usages[0] == {
        "input_tokens": total0 - prefix,
        "cache_creation_input_tokens": prefix,
        "cache_read_input_tokens": 0,
        "output_tokens": api.output_tokens[0],
    }
    for usage, (p, _ctx, total) in zip(api.usages[1:], rest, strict=True):
        assert usage["cache_read_input_tokens"] == p == prefix
        assert usage["cache_creation_input_tokens"] == 0
        assert usage["input_tokens"] == total - p
    # what the pipeline stored per item sums to what the API reported
    assert m.recorded == m.usage["warm/1024"]
    assert m.recorded["cache_read_input_tokens"] == 2 * prefix
    expected = sum(
        u["input_tokens"] + 1.25 * u["cache_creation_input_tokens"] + 0.1 * u["cache_read_input_tokens"]
        for u in api.usages
    )
    assert m.billed["warm/1024"] == pytest.approx(expected)
    # cold caches write every time
    assert m.usage["cold/1024"]["cache_read_input_tokens"] == 0
    # for a 4,096 minimum the builder adds the extended examples, and the prefix is cached
    assert m.usage["warm/4096"]["cache_read_input_tokens"] > 0
    assert m.usage["warm/4096"]["cache_read_input_tokens"] >= 2 * 4096
    assert m.usage["warm/4096"]["cache_read_input_tokens"] > m.usage["warm/1024"]["cache_read_input_tokens"]


async def test_the_catalogue_is_cached_with_the_instructions(data: Path, tmp_path: Path) -> None:
    """The topic catalogue is static per deployment: it ends the cached system block."""
    api = ScriptedMessagesAPI(min_cacheable=4096)
    await measure(corpus(data, "spc"), 8000, str(tmp_path / "db.sqlite3"), api=api, minimums=(4096,))
    for body in api.bodies:
        [system] = body["system"]
        assert system["cache_control"] == {"type": "ephemeral"}
        assert system["text"].rstrip().endswith("</topic_catalogue>")
        assert "topic_catalogue" not in body["messages"][0]["content"][0]["text"]


async def test_coalescing_batches_sessions_and_live_mode_does_not(data: Path, tmp_path: Path) -> None:
    batch = await measure(corpus(data, "locomo-batch"), 8000, str(tmp_path / "a.sqlite3"))
    live = await measure(corpus(data, "locomo-live"), 8000, str(tmp_path / "b.sqlite3"))
    assert batch.items == live.items == 3
    assert batch.requests == 1 and live.requests == 3
    assert batch.raw_tokens == live.raw_tokens
    assert batch.billed["warm/1024"] < live.billed["warm/1024"]
    assert batch.resent_requests == live.resent_requests == 0


def test_cache_rules() -> None:
    def body(system: str, context: str, data: str) -> dict[str, Any]:
        return {
            "model": "m",
            "tools": [{"name": "t", "input_schema": {}}],
            "tool_choice": {"type": "tool", "name": "t"},
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": context, "cache_control": {"type": "ephemeral"}},
                        {"type": "text", "text": data},
                    ],
                }
            ],
        }

    def tokens(text: str) -> int:
        return len(text)

    overhead = TOOL_USE_OVERHEAD + len(json.dumps({"name": "t", "input_schema": {}}))
    system = "s" * 2000
    cache = CacheSimulator(min_cacheable=overhead + 2000, tokens=tokens)
    first = cache.usage(body(system, "c" * 10, "d" * 5))
    assert first == {
        "input_tokens": 5,
        "cache_creation_input_tokens": overhead + 2010,
        "cache_read_input_tokens": 0,
    }
    # same system, other context: read the system prefix, write the new context
    second = cache.usage(body(system, "x" * 10, "d" * 5))
    assert second == {
        "input_tokens": 5,
        "cache_creation_input_tokens": 10,
        "cache_read_input_tokens": overhead + 2000,
    }
    # the same context again (a repair): read everything up to it
    third = cache.usage(body(system, "x" * 10, "e" * 7))
    assert third == {
        "input_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": overhead + 2010,
    }
    # another model shares nothing
    other = body(system, "x" * 10, "e" * 7) | {"model": "n"}
    assert cache.usage(other)["cache_read_input_tokens"] == 0
    # a prefix under the minimum is never cached
    short = CacheSimulator(min_cacheable=10_000, tokens=tokens)
    assert short.usage(body(system, "c", "d"))["cache_creation_input_tokens"] == 0
    assert short.usage(body(system, "c", "d"))["cache_read_input_tokens"] == 0
    # cold: every request writes again
    cold = CacheSimulator(min_cacheable=100, tokens=tokens, cold=True)
    cold.usage(body(system, "c", "d"))
    assert cold.usage(body(system, "c", "d"))["cache_read_input_tokens"] == 0


async def test_run_measures_every_scenario_at_every_budget(data: Path, tmp_path: Path) -> None:
    results = await run(data, (1000, 8000), spc=2, locomo=1, workdir=tmp_path)
    assert [(r.corpus, r.batch_tokens) for r in results] == [
        (name, budget) for budget in (1000, 8000) for name in ("spc", "locomo-batch", "locomo-live")
    ]
    assert all(r.resent_requests == 0 and r.recorded == r.usage["warm/1024"] for r in results)


def test_the_command_line_prints_assumptions_and_a_table(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cost.json"
    assert (
        main(["--data", str(data), "--budgets", "8000", "--spc", "2", "--locomo", "1", "--json", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "scripted model" in printed and "warm/4096" in printed and "warm/1024" not in printed
    assert "claude-haiku-5-5: minimum cacheable prefix 4096 tokens (no published figure" in printed
    assert "| all | 8000 |" in printed
    report = json.loads(out.read_text())
    assert report["scripted"] is True and len(report["results"]) == 3


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="../shared/eval-data is not present")
async def test_a_slice_of_the_stored_dialogues(tmp_path: Path) -> None:
    results = await run(REAL_DATA, (8000,), spc=3, locomo=1, locomo_sessions=4, workdir=tmp_path)
    for r in results:
        assert r.requests > 0 and r.resent_requests == 0 and r.failed_items == 0
        assert r.recorded == r.usage["warm/1024"]
    batch = next(r for r in results if r.corpus == "locomo-batch")
    live = next(r for r in results if r.corpus == "locomo-live")
    assert batch.requests < live.requests == 4


async def test_the_batch_api_scenario_bills_half_and_merges_like_the_synchronous_one(
    data: Path, tmp_path: Path
) -> None:
    [sync, via] = [c for c in corpora(data, spc=3, locomo=0, batch_api=True) if c.name.startswith("spc")]
    assert via.batches and via.name == "spc via batches"
    a = await measure(sync, 8000, str(tmp_path / "a.sqlite3"), minimums=(4096,))
    b = await measure(via, 8000, str(tmp_path / "b.sqlite3"), minimums=(4096,))
    assert a.requests == b.requests and a.failed_items == b.failed_items == 0
    assert b.recorded["batch_requests"] == b.requests and a.recorded["batch_requests"] == 0
    assert b.billed["warm/4096"] == pytest.approx(a.billed["warm/4096"] / 2)
