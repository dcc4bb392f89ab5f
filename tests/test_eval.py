"""bench/eval.py end to end: the real pipeline and SDK against a scripted extraction model
and a scripted judge (both on ``httpx2.MockTransport``). The scores must be exactly what
the scripted answers imply; nothing here measures quality."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from bench import eval as bench_eval
from bench.eval import JUDGE_TOOL, SCRIPTED_LABEL, is_grounded, run_eval, scripted_llm
from bench.eval_data import DATASETS, EvalItem, load_items
from mcp_profiles.extract import TOOL_NAME
from tests.eval_fixtures import write_eval_data

Answer = dict[str, Any] | int  # a tool input, or an HTTP error status


def _message(body: dict[str, Any], tool_input: dict[str, Any], n: int) -> httpx2.Response:
    return httpx2.Response(
        200,
        json={
            "id": f"msg_{n}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [
                {
                    "type": "tool_use",
                    "id": f"toolu_{n}",
                    "name": body["tool_choice"]["name"],
                    "input": tool_input,
                }
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 1000, "output_tokens": 50, "cache_read_input_tokens": 200},
        },
    )


class Router:
    """Scripted answers keyed by profile (extraction) and by item (judge), so concurrency
    cannot mix them up; a list of answers is used in order (for repairs)."""

    def __init__(
        self,
        extraction: Callable[[str, str], list[Answer]],
        judge: Callable[[str, int, int], list[Answer]],
    ) -> None:
        self.extraction, self.judge = extraction, judge
        self.queues: dict[tuple[str, str], list[Answer]] = {}
        self.bodies: list[dict[str, Any]] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        text = "\n".join(b.get("text", "") for b in body["messages"][0]["content"])
        if body["tool_choice"]["name"] == TOOL_NAME:
            match = re.search(r'<current_profile id="([^"]+)">', text)
            data = re.search(r'<data id="[^"]*"[^>]*>\n(.*?)\n</data>', text, re.DOTALL)
            assert match and data
            key = ("extract", match.group(1))
            queue = self.queues.setdefault(key, self.extraction(match.group(1), data.group(1)))
        else:
            assert body["tool_choice"]["name"] == JUDGE_TOOL
            item = re.search(r'<item id="([^"]+)"/>', text)
            gold = re.search(r"<gold_persona>\n(.*?)\n</gold_persona>", text, re.DOTALL)
            facts = re.search(r"<extracted_facts>\n(.*?)\n</extracted_facts>", text, re.DOTALL)
            assert item and gold and facts
            n_facts = 0 if facts.group(1) == "(none)" else len(facts.group(1).splitlines())
            key = ("judge", item.group(1))
            queue = self.queues.setdefault(
                key, self.judge(item.group(1), len(gold.group(1).splitlines()), n_facts)
            )
        answer = queue.pop(0)
        if isinstance(answer, int):
            return httpx2.Response(
                answer,
                json={"type": "error", "error": {"type": "invalid_request_error", "message": "scripted"}},
            )
        return _message(body, answer, len(self.bodies))


def scripted_extraction(profile_id: str, data: str) -> list[Answer]:
    """Per item: one verbatim quote, one elided quote ("A ... B": the merge accepts it, the
    grounding check does not), one invented quote and one low-confidence operation (both
    dropped by the merge). So every item stores exactly 2 facts, 1 of them grounded."""
    lines = [ln for ln in data.splitlines() if len(ln.split()) >= 6 and not ln.startswith("Profile subject")]
    first, second = lines[0], lines[1]
    words = second.split()
    return [
        {
            "operations": [
                {
                    "op": "set",
                    "key": "interests.first",
                    "value": "first",
                    "confidence": 0.9,
                    "evidence": first,
                },
                {
                    "op": "set",
                    "key": "interests.second",
                    "value": ["second", 2],
                    "confidence": 0.8,
                    "evidence": f"{' '.join(words[:3])} ... {' '.join(words[-3:])}",
                },
                {
                    "op": "set",
                    "key": "interests.invented",
                    "value": "x",
                    "confidence": 0.9,
                    "evidence": "this sentence occurs nowhere in the data",
                },
                {"op": "set", "key": "interests.unsure", "value": "y", "confidence": 0.2, "evidence": first},
            ],
            "summary": f"Scripted summary of {profile_id}.",
        }
    ]


def scripted_judge(item_id: str, n_gold: int, n_facts: int) -> list[Answer]:
    """Gold 1 is entailed and the rest are not; fact 1 is supported and fact 2 is not."""
    return [
        {
            "gold": [{"id": i, "entailed": i == 1} for i in range(1, n_gold + 1)],
            "facts": [{"id": j, "supported": j == 1} for j in range(1, n_facts + 1)],
        }
    ]


def items_of(data: Path, dataset: str, n: int = 3) -> list[EvalItem]:
    return load_items(data, dataset)[:n]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_eval_data(tmp_path / "eval-data")


async def evaluate(
    items: list[EvalItem], router: Router, tmp_path: Path, concurrency: int = 3
) -> dict[str, Any]:
    extraction = scripted_llm(router.handler, "claude-haiku-5-5")
    judge = scripted_llm(router.handler, "claude-sonnet-5-5")
    try:
        return await run_eval(
            items, extraction, judge, mode="scripted", concurrency=concurrency, workdir=tmp_path
        )
    finally:
        await judge.aclose()


@pytest.mark.parametrize("dataset", DATASETS)
async def test_scores_are_what_the_scripted_answers_imply(dataset: str, data: Path, tmp_path: Path) -> None:
    items = items_of(data, dataset)
    router = Router(scripted_extraction, scripted_judge)
    report = await evaluate(items, router, tmp_path)
    s = report["summary"]
    n, gold = len(items), sum(len(i.gold) for i in items)
    assert report["mode"] == "scripted" and report["label"] == SCRIPTED_LABEL
    assert s["items"] == s["judged_items"] == n
    assert s["extraction_failures"] == s["judge_failures"] == 0
    assert s["gold_sentences"] == gold and s["gold_entailed"] == n
    assert s["recall"] == round(n / gold, 4)
    assert s["recall_macro"] == round(sum(1 / len(i.gold) for i in items) / n, 4)
    assert (s["facts_judged"], s["facts_supported"], s["precision"]) == (2 * n, n, 0.5)
    assert (s["facts_stored"], s["grounding"], s["facts_per_item"]) == (2 * n, 0.5, 2.0)
    assert s["dropped_operations"] == {"ungrounded": n, "low_confidence": n}
    # usage: what the scripted API reported, summed over the requests made
    assert s["extraction_usage"] == {
        "requests": n,
        "input_tokens": 1000 * n,
        "output_tokens": 50 * n,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 200 * n,
        "batch_requests": 0,
    }
    assert s["extraction_billed_input_per_raw"] == round(1020 * n / s["raw_tokens"], 4)
    assert s["judge_usage"]["requests"] == n
    # the judge saw exactly the stored facts, in key order, and the item's gold and source
    for item, result in zip(items, report["items"], strict=True):
        assert [f["key"] for f in result["facts"]] == ["interests.first", "interests.second"]
        assert [f["grounded"] for f in result["facts"]] == [True, False]
        [body] = [
            b
            for b in router.bodies
            if b["tool_choice"]["name"] == JUDGE_TOOL
            and f'<item id="{item.item_id}"/>' in b["messages"][0]["content"][0]["text"]
        ]
        context, source = (block["text"] for block in body["messages"][0]["content"])
        assert '1. interests.first = first\n2. interests.second = ["second", 2]' in context
        assert f"1. {item.gold[0]}" in context and item.support in source


async def test_named_speakers_get_a_profile_named_after_them(data: Path, tmp_path: Path) -> None:
    items = items_of(data, "spc", 2)
    router = Router(scripted_extraction, scripted_judge)
    await evaluate(items, router, tmp_path)
    contexts = [
        b["messages"][0]["content"][0]["text"] for b in router.bodies if b["tool_choice"]["name"] == TOOL_NAME
    ]
    assert any('name: "User 1"' in c and 'id="spc-0000-u1"' in c for c in contexts)
    assert any('name: "User 2"' in c and 'id="spc-0000-u2"' in c for c in contexts)


async def test_failures_are_counted_not_fatal(data: Path, tmp_path: Path) -> None:
    items = items_of(data, "spc", 4)
    ids = [i.item_id for i in items]
    incomplete: dict[str, Any] = {"gold": [{"id": 1, "entailed": True}], "facts": []}

    def extraction(profile_id: str, text: str) -> list[Answer]:
        if profile_id == ids[0]:  # invalid twice (no operations list): the job fails
            return [{"ops": []}, {"ops": []}]
        return scripted_extraction(profile_id, text)

    def judge(item_id: str, n_gold: int, n_facts: int) -> list[Answer]:
        if item_id == ids[1]:  # incomplete, then repaired
            return [incomplete, *scripted_judge(item_id, n_gold, n_facts)]
        if item_id == ids[2]:  # incomplete twice: a judge failure
            return [incomplete, incomplete]
        if item_id == ids[3]:  # the API refuses: a judge failure
            return [400]
        return scripted_judge(item_id, n_gold, n_facts)

    report = await evaluate(items, Router(extraction, judge), tmp_path)
    s = report["summary"]
    statuses = [r["status"] for r in report["items"]]
    assert statuses == ["extraction_failed", "ok", "judge_failed", "judge_failed"]
    assert (s["extraction_failures"], s["judge_failures"], s["judged_items"]) == (1, 2, 1)
    assert "after one repair" in report["items"][2]["error"]
    assert "judge call failed" in report["items"][3]["error"]
    repaired = report["items"][1]
    assert repaired["judge_usage"]["requests"] == 2
    # only the judged item counts for recall and precision; grounding counts all three extracted ones
    assert s["gold_sentences"] == len(items[1].gold) and s["gold_entailed"] == 1
    assert (s["facts_judged"], s["precision"]) == (2, 0.5)
    assert (s["facts_stored"], s["grounding"]) == (6, 0.5)
    assert report["items"][0]["extraction_usage"]["requests"] == 2  # the repair was paid for


def test_grounding_is_normalised_verbatim_without_elision() -> None:
    source = "User 1: I’m a “night-shift” nurse —  in Ohio."
    assert is_grounded(['i\'m a "night-shift" nurse - in ohio'], source)
    assert not is_grounded(["I'm a ... nurse"], source)
    assert not is_grounded([], source)


def test_the_command_line_labels_scripted_runs(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    code = bench_eval.main(
        ["--data", str(data), "--dataset", "convai2", "--n", "2", "--scripted", "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == printed[-1] == f"*** {SCRIPTED_LABEL} ***"
    for name in ("recall", "precision", "grounding", "cost"):
        assert len([ln for ln in printed if ln.split()[:2] == ["scripted", name]]) == 1
    report = json.loads(out.read_text())
    assert report["mode"] == "scripted" and report["n"] == 2 and report["seed"] == 0
    assert report["summary"]["items"] == 2 and report["summary"]["extraction_failures"] == 0


def test_a_real_run_needs_a_key(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_eval.main(["--data", str(data), "--dataset", "spc", "--n", "1"]) == 2
    assert "ANTHROPIC_API_KEY" in capsys.readouterr().err
