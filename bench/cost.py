#!/usr/bin/env python3
"""Cost bench: tokens per raw token of the real extraction pipeline, with a scripted model.

    python bench/cost.py [--data ../shared/eval-data] [--budgets 1000,4000,8000]
                         [--min-cacheable 4096,1024] [--model claude-haiku-5-5]
                         [--spc 50] [--locomo 2] [--tokenizer estimate|chars4] [--json out.json]

Stored dialogues from ``eval-data`` (never bundled; the path is an argument) go through
the real pipeline: ``open_app`` → ``Extractor.submit`` for every data item of a profile →
``process``/``drain`` (real splitting, coalescing up to ``Config.batch_tokens``, request
building and the real Anthropic SDK). The only fake is the wire: an
``httpx2.MockTransport`` that answers every call with a small fixed operation list and
computes ``usage`` from the request body the SDK actually sent:

* tokens: one tokenizer approximation for everything — raw data and request text alike
  (default: the package's ``estimate_tokens``, ASCII 3.5 characters a token, deliberately
  high; ``--tokenizer chars4`` uses characters / 4). Ratios barely depend on the choice.
* the prompt is, in Anthropic's cache order, tools → system → message content blocks,
  plus a fixed tool-use system prompt (``TOOL_USE_OVERHEAD`` = 313 tokens, the documented
  figure for ``tool_choice`` any/tool); per-message framing tokens are ignored.
* prompt caching per Anthropic's rules: a ``cache_control`` breakpoint caches the prefix
  up to and including its block when that prefix is at least the model's minimum
  cacheable length (``--min-cacheable``; by default the ``--model``'s, from the table in
  ``mcp_profiles/cache_limits.py``: 4096 for the default ``claude-haiku-5-5``, which has no
  published figure). The request builder reads the same minimum and sizes the cached
  prefix for it, so each minimum is a separate run of the pipeline. A prefix is written on first use
  (``cache_creation_input_tokens``, billed 1.25×) and read by later requests whose prefix
  is identical (``cache_read_input_tokens``, billed 0.1×), looked up at each breakpoint
  and up to 20 blocks before it. "warm": nothing expires during a run (back-to-back calls
  refresh the five-minute TTL); "cold": every request finds the cache empty (calls more
  than five minutes apart), so each cacheable prefix is written again.
* output tokens: the scripted answer's tool input JSON, so output/raw describes the fixed
  answer (≤ 3 ``set`` operations quoting lines of the data), not a real model.

Scenarios: ``spc`` — the first N Synthetic-Persona-Chat dialogues, one profile each, data =
the conversation (one item per profile, submitted, then drained); ``locomo-batch`` — the
first M LoCoMo conversations, one profile each, every session submitted as its own item,
then drained (items of a profile coalesce); ``locomo-live`` — the same, processed after
every session, as a host calling ``upsert_profile_from_data(wait=true)`` per session.
After each run every item is submitted again: re-sent data must cost 0 requests.
See bench/EVAL.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import httpx2

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.batch_api import BatchesAPI  # noqa: E402
from bench.eval_data import load_locomo, load_spc  # noqa: E402
from mcp_profiles.batches import run_batches  # noqa: E402
from mcp_profiles.cache_limits import min_cacheable_tokens  # noqa: E402
from mcp_profiles.config import Config  # noqa: E402
from mcp_profiles.extract import TOOL_NAME, TOOL_USE_OVERHEAD, estimate_tokens  # noqa: E402
from mcp_profiles.llm import DEFAULT_MODEL, AnthropicLLM, Usage  # noqa: E402
from mcp_profiles.runtime import open_app  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO / ".." / "shared" / "eval-data"
NAMESPACE = "default"
MODEL = DEFAULT_MODEL
BATCH_RATE = 0.5
LOOKBACK = 20

Tokenizer = Callable[[str], int]


def chars4(text: str) -> int:
    """Characters / 4, rounded up: the usual rule of thumb for English."""
    return -(-len(text) // 4)


TOKENIZERS: dict[str, Tokenizer] = {"estimate": estimate_tokens, "chars4": chars4}


# ---- usage from a request body ------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One cacheable unit of the prompt: a tool, a system block or a message block."""

    identity: str  # what must be byte-identical for a cache hit
    text: str  # what is counted as tokens
    breakpoint: bool


def _block_text(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_use":
        return f"{block.get('name', '')} {json.dumps(block.get('input', {}), ensure_ascii=False)}"
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            return "\n".join(str(b.get("text", "")) for b in content)
        return str(content)
    return json.dumps(block, ensure_ascii=False)


def _identity(value: Any) -> str:
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "cache_control"}
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def segments(body: dict[str, Any]) -> list[Segment]:
    """The prompt of a Messages API body in cache order: tools, system, message blocks."""
    out: list[Segment] = []
    for tool in body.get("tools") or []:
        text = json.dumps({k: v for k, v in tool.items() if k != "cache_control"}, ensure_ascii=False)
        out.append(Segment(_identity(tool), text, "cache_control" in tool))
    system = body.get("system")
    if isinstance(system, str):
        out.append(Segment(_identity(system), system, False))
    else:
        out.extend(
            Segment(_identity(block), str(block.get("text", "")), "cache_control" in block)
            for block in system or []
        )
    for message in body.get("messages", []):
        content = message.get("content", "")
        role = message.get("role", "")
        if isinstance(content, str):
            out.append(Segment(_identity([role, content]), content, False))
            continue
        out.extend(
            Segment(_identity([role, block]), _block_text(block), "cache_control" in block)
            for block in content
        )
    return out


@dataclass
class CacheSimulator:
    """Anthropic prompt caching over a run: which prefixes were written, and at what size."""

    min_cacheable: int = 1024
    tokens: Tokenizer = estimate_tokens
    cold: bool = False
    written: set[str] = field(default_factory=set)

    def usage(self, body: dict[str, Any]) -> dict[str, int]:
        """input/cache-write/cache-read tokens of one request; records what it writes."""
        if self.cold:
            self.written.clear()
        segs = segments(body)
        # The model and the tool choice are part of every prefix (changing either misses).
        head = json.dumps([body.get("model"), body.get("tool_choice")], sort_keys=True)
        digest = hashlib.sha256(head.encode())
        hashes: list[str] = []
        cumulative: list[int] = []
        total = TOOL_USE_OVERHEAD if body.get("tools") else 0
        for seg in segs:
            digest.update(b"\x00" + seg.identity.encode())
            hashes.append(digest.copy().hexdigest())
            total += self.tokens(seg.text)
            cumulative.append(total)
        breakpoints = [i for i, seg in enumerate(segs) if seg.breakpoint]
        read = 0
        for b in breakpoints:
            for j in range(b, max(-1, b - LOOKBACK - 1), -1):
                if hashes[j] in self.written:
                    read = max(read, cumulative[j])
                    break
        cacheable = [b for b in breakpoints if cumulative[b] >= self.min_cacheable]
        write_end = max((cumulative[b] for b in cacheable), default=0)
        creation = max(0, write_end - read)
        for b in cacheable:
            self.written.add(hashes[b])
        return {
            "input_tokens": total - read - creation,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
        }


# ---- the scripted Messages API --------------------------------------------------------------

_DATA_BLOCK = re.compile(r'<data id="([^"]*)"[^>]*>\n(.*?)\n</data>', re.DOTALL)


def fixed_answer(body: dict[str, Any], max_operations: int = 3) -> dict[str, Any]:
    """The tool input every call gets: ≤ N ``set`` operations quoting the first data lines.

    Keys are derived from the quoted line, so the profile (and with it the context sent
    on the next call) grows as a real one would, a little.
    """
    content = body["messages"][0]["content"]
    text = content if isinstance(content, str) else "\n".join(_block_text(b) for b in content)
    operations: list[dict[str, Any]] = []
    for data_id, block in _DATA_BLOCK.findall(text):
        for line in block.splitlines():
            line = line.strip()[:120].strip()
            if len(operations) >= max_operations:
                break
            if len(line) < 3 or "&lt;" in line:
                continue
            key = "interests.note_" + hashlib.sha256(line.encode()).hexdigest()[:8]
            operations.append(
                {"op": "set", "key": key, "value": line[:60], "confidence": 0.9, "evidence": line}
                | {"data_id": data_id}
            )
    return {"operations": operations}


class ScriptedMessagesAPI:
    """``POST /v1/messages`` answered with ``fixed_answer``, usage computed from the body."""

    def __init__(self, min_cacheable: int = 1024, tokens: Tokenizer = estimate_tokens) -> None:
        self.tokens = tokens
        self.cache = CacheSimulator(min_cacheable, tokens)
        self.bodies: list[dict[str, Any]] = []
        self.usages: list[dict[str, int]] = []
        self.output_tokens: list[int] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST" or request.url.path != "/v1/messages":
            return httpx2.Response(404, json={"type": "error", "error": {"type": "not_found_error"}})
        return httpx2.Response(200, json=self.answer(json.loads(request.content)))

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The message answering one request body (a call, or one request of a batch)."""
        self.bodies.append(body)
        answer = fixed_answer(body)
        output = self.tokens(f"{TOOL_NAME} {json.dumps(answer, ensure_ascii=False)}")
        self.output_tokens.append(output)
        usage = {**self.cache.usage(body), "output_tokens": output}
        self.usages.append(usage)
        n = len(self.bodies)
        return {
            "id": f"msg_scripted_{n:05d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", MODEL),
            "content": [
                {"type": "tool_use", "id": f"toolu_scripted_{n:05d}", "name": TOOL_NAME, "input": answer}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": usage,
        }

    def batch_llm(self, model: str = MODEL) -> AnthropicLLM:
        """The real adapter and SDK over a scripted Message Batches endpoint answering like this API."""
        batches = BatchesAPI(self.answer, polls=0)
        client = httpx2.AsyncClient(transport=httpx2.MockTransport(batches.handler))
        return AnthropicLLM(model, api_key="scripted", max_retries=0, http_client=client)

    def llm(self, model: str = MODEL) -> AnthropicLLM:
        """The real adapter and SDK over this API (no network)."""
        client = httpx2.AsyncClient(transport=httpx2.MockTransport(self.handler))
        return AnthropicLLM(model, api_key="scripted", max_retries=0, http_client=client)


def replay(
    bodies: Iterable[dict[str, Any]],
    outputs: Sequence[int],
    min_cacheable: int,
    tokens: Tokenizer,
    cold: bool,
) -> Usage:
    """Usage of recorded request bodies under another caching assumption."""
    cache = CacheSimulator(min_cacheable, tokens, cold)
    total = Usage()
    for body, output in zip(bodies, outputs, strict=True):
        total = total + Usage(requests=1, output_tokens=output, **cache.usage(body))
    return total


# ---- scenarios ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    """One profile and its data items, sent in order."""

    ref: str
    items: tuple[str, ...]
    input_type: str = "chat history"


@dataclass(frozen=True)
class Corpus:
    name: str
    feeds: tuple[Feed, ...]
    live: bool  # process after every submit, instead of submitting everything and draining
    batches: bool = False  # extracted through the Message Batches API (process --batch)


def corpora(
    root: Path | str,
    spc: int = 50,
    locomo: int = 2,
    locomo_sessions: int | None = None,
    batch_api: bool = False,
) -> list[Corpus]:
    """The scenarios: the first ``spc`` SPC dialogues, the first ``locomo`` LoCoMo conversations."""
    out: list[Corpus] = []
    if spc:
        feeds = tuple(Feed(f"spc-{d.index:04d}", (d.conversation,)) for d in load_spc(root)[:spc])
        out.append(Corpus("spc", feeds, live=False))
    if locomo:
        feeds = tuple(
            Feed(f"locomo-{c.sample_id}", c.sessions[:locomo_sessions]) for c in load_locomo(root)[:locomo]
        )
        out += [Corpus("locomo-batch", feeds, live=False), Corpus("locomo-live", feeds, live=True)]
    if batch_api:
        out += [Corpus(f"{c.name} via batches", c.feeds, live=False, batches=True) for c in out if not c.live]
    return out


@dataclass
class Measurement:
    """One scenario at one budget: counts, and usage under each caching assumption."""

    corpus: str
    batch_tokens: int
    profiles: int
    items: int
    raw_tokens: int
    requests: int
    prompt_tokens: int  # all input tokens, cached or not
    output_tokens: int
    recorded: dict[str, int]  # what the pipeline stored per item, summed (mcp-profiles stats)
    usage: dict[str, dict[str, int]]  # assumption -> usage of the same request bodies
    billed: dict[str, float]  # assumption -> billed-equivalent input tokens
    failed_items: int
    resent_items: int
    resent_duplicates: int
    resent_requests: int
    seconds: float

    def per_raw(self, value: float) -> float:
        return value / self.raw_tokens if self.raw_tokens else 0.0


async def ingest(
    corpus: Corpus, batch_tokens: int, db_path: str, api: ScriptedMessagesAPI, minimum: int
) -> tuple[int, dict[str, Any], tuple[int, int, int], float]:
    """Feed a corpus through the real pipeline with prompts built for ``minimum``, then re-send it.

    Returns (requests, stats, (re-sent items, duplicates, re-sent requests), seconds).
    """
    config = Config(db=db_path, batch_tokens=batch_tokens, cache_min_tokens=minimum)
    started = time.perf_counter()
    llm = api.batch_llm() if corpus.batches else api.llm()
    async with open_app(config, llm=llm, worker=False) as app:
        extractor = app.extractor
        for feed in corpus.feeds:
            for data in feed.items:
                item, _, _ = await extractor.submit(NAMESPACE, feed.ref, data, feed.input_type, "user")
                if corpus.live:
                    await extractor.process(NAMESPACE, item.profile_pk)
        if corpus.batches:
            await run_batches(extractor, llm, NAMESPACE, poll_seconds=0)
        await extractor.drain()
        requests = len(api.bodies)
        stats = await app.service.stats(NAMESPACE)
        duplicates = resent = 0
        for feed in corpus.feeds:
            for data in feed.items:
                _, duplicate, _ = await extractor.submit(NAMESPACE, feed.ref, data, feed.input_type, "user")
                resent += 1
                duplicates += duplicate
        await extractor.drain()
        resent_requests = len(api.bodies) - requests
    return requests, stats, (resent, duplicates, resent_requests), time.perf_counter() - started


async def measure(
    corpus: Corpus,
    batch_tokens: int,
    db_path: str,
    *,
    tokens: Tokenizer = estimate_tokens,
    minimums: Sequence[int] = (1024, 4096),
    api: ScriptedMessagesAPI | None = None,
) -> Measurement:
    """Ingest a corpus once per minimum cacheable length; usage from request bodies.

    The request builder sizes the cached prefix for the model's minimum (extended examples
    fill it up to a 4,096 minimum, and are left out under a 1,024 one), so each minimum is
    its own run with its own request bodies. The first minimum's run gives the counts, the
    stored usage and the cold figure. ``api`` (fresh, with ``minimums[0]``) may be passed in
    to inspect what that run sent.
    """
    usage: dict[str, dict[str, int]] = {}
    billed: dict[str, float] = {}
    first: tuple[ScriptedMessagesAPI, int, dict[str, Any], tuple[int, int, int]] | None = None
    seconds = 0.0
    for n, minimum in enumerate(minimums):
        run_api = api if (api is not None and n == 0) else ScriptedMessagesAPI(minimum, tokens)
        requests, stats, resent, took = await ingest(
            corpus, batch_tokens, f"{db_path}.{minimum}", run_api, minimum
        )
        seconds += took
        bodies, outputs = run_api.bodies[:requests], run_api.output_tokens[:requests]
        labels = [(f"warm/{minimum}", False)] + ([(f"cold/{minimum}", True)] if n == 0 else [])
        for label, cold in labels:
            u = replay(bodies, outputs, minimum, tokens, cold)
            if corpus.batches:
                u = replace(u, batch_requests=u.requests)
            # Message Batches bill every token at half the price of the same call
            rate = BATCH_RATE if corpus.batches else 1.0
            usage[label], billed[label] = u.as_dict(), rate * u.billed_input_equivalent()
        if first is None:
            first = (run_api, requests, stats, resent)
    if first is None:
        raise ValueError("measure needs at least one minimum")
    run_api, requests, stats, (resent, duplicates, resent_requests) = first
    main_usage = usage[f"warm/{minimums[0]}"]
    return Measurement(
        corpus=corpus.name,
        batch_tokens=batch_tokens,
        profiles=len(corpus.feeds),
        items=sum(len(f.items) for f in corpus.feeds),
        raw_tokens=sum(tokens(d) for f in corpus.feeds for d in f.items),
        requests=requests,
        prompt_tokens=main_usage["input_tokens"]
        + main_usage["cache_creation_input_tokens"]
        + main_usage["cache_read_input_tokens"],
        output_tokens=main_usage["output_tokens"],
        recorded=dict(stats["usage"]),
        usage=usage,
        billed=billed,
        failed_items=sum(n for status, n in stats["items"].items() if status != "done"),
        resent_items=resent,
        resent_duplicates=duplicates,
        resent_requests=resent_requests,
        seconds=seconds,
    )


async def run(
    root: Path | str,
    budgets: Sequence[int] = (1000, 4000, 8000),
    *,
    spc: int = 50,
    locomo: int = 2,
    locomo_sessions: int | None = None,
    tokenizer: str = "estimate",
    minimums: Sequence[int] = (1024, 4096),
    workdir: Path | str | None = None,
    batch_api: bool = False,
) -> list[Measurement]:
    """Every scenario at every budget, each in a fresh database."""
    tokens = TOKENIZERS[tokenizer]
    scenarios = corpora(root, spc, locomo, locomo_sessions, batch_api)
    results = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for budget in budgets:
            for corpus in scenarios:
                db = str(Path(tmp) / f"{corpus.name}-{budget}.sqlite3")
                results.append(await measure(corpus, budget, db, tokens=tokens, minimums=minimums))
    return results


# ---- report ---------------------------------------------------------------------------------


def total(rows: Sequence[Measurement], name: str = "all") -> Measurement:
    """The sum of several scenarios at one budget."""

    def add(dicts: Iterable[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for d in dicts:
            for k, v in d.items():
                out[k] = out.get(k, 0) + v
        return out

    first = rows[0]
    return Measurement(
        corpus=name,
        batch_tokens=first.batch_tokens,
        profiles=sum(r.profiles for r in rows),
        items=sum(r.items for r in rows),
        raw_tokens=sum(r.raw_tokens for r in rows),
        requests=sum(r.requests for r in rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        output_tokens=sum(r.output_tokens for r in rows),
        recorded=add(r.recorded for r in rows),
        usage={k: add(r.usage[k] for r in rows) for k in first.usage},
        billed={k: sum(r.billed[k] for r in rows) for k in first.billed},
        failed_items=sum(r.failed_items for r in rows),
        resent_items=sum(r.resent_items for r in rows),
        resent_duplicates=sum(r.resent_duplicates for r in rows),
        resent_requests=sum(r.resent_requests for r in rows),
        seconds=sum(r.seconds for r in rows),
    )


def table(results: Sequence[Measurement]) -> str:
    """A Markdown table: one row per scenario and budget, plus the all-scenario total (and,
    apart, the scenarios run through the Message Batches API with their own total)."""
    labels = list(results[0].billed)
    head = (
        "| scenario | budget | profiles | items | raw tokens | requests | requests/1k raw | input/raw | "
        "output/raw | " + " | ".join(f"billed/raw {label}" for label in labels) + " | re-sent: requests |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    budgets = list(dict.fromkeys(r.batch_tokens for r in results))
    for budget in budgets:
        rows = [r for r in results if r.batch_tokens == budget and not r.corpus.endswith(" via batches")]
        via = [r for r in results if r.batch_tokens == budget and r.corpus.endswith(" via batches")]
        shown = [*rows, total(rows)] if len(rows) > 1 else rows
        shown += [*via, total(via, "all via batches")] if len(via) > 1 else via
        for r in shown:
            billed = " | ".join(f"{r.per_raw(r.billed[label]):.2f}" for label in labels)
            lines.append(
                f"| {r.corpus} | {budget} | {r.profiles} | {r.items} | {r.raw_tokens:,} | {r.requests} | "
                f"{1000 * r.per_raw(r.requests):.2f} | {r.per_raw(r.prompt_tokens):.2f} | "
                f"{r.per_raw(r.output_tokens):.3f} | {billed} | {r.resent_requests} |"
            )
    return "\n".join(lines)


ASSUMPTIONS = """\
Assumptions: scripted model (no live API); tokens = {tokenizer} for raw data and requests alike;
prompt = tools + system + message blocks + {overhead} tool-use system-prompt tokens; caching per
Anthropic's rules (breakpoint prefix cached when >= the minimum cacheable length; write 1.25x,
read 0.1x); warm/N = minimum N tokens (prompts built for that minimum), nothing expires during
the run; cold/N = every request finds the cache empty. input/raw counts every prompt token
(cached or not); output/raw is the scripted answer (<= 3 set operations), not a real model's.
Rows "via batches" went through the Message Batches API (process --batch), billed at half price."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the eval-data folder (not bundled)")
    parser.add_argument("--budgets", default="1000,4000,8000", help="comma-separated batch_tokens values")
    parser.add_argument("--spc", type=int, default=50, help="Synthetic-Persona-Chat dialogues (0: none)")
    parser.add_argument("--locomo", type=int, default=2, help="LoCoMo conversations (0: none)")
    parser.add_argument("--tokenizer", choices=sorted(TOKENIZERS), default="estimate")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="the model whose minimum is reported by default"
    )
    parser.add_argument(
        "--min-cacheable",
        help="comma-separated minimum cacheable prefixes to measure (default: the --model's, from "
        "mcp_profiles/cache_limits.py; the first also gives the cold figure)",
    )
    parser.add_argument(
        "--batch-api",
        action="store_true",
        help="also run the coalesced scenarios through the Message Batches API (process --batch)",
    )
    parser.add_argument("--json", help="also write the measurements to this file")
    args = parser.parse_args(argv)
    root = Path(args.data)
    if not root.is_dir():
        parser.error(f"--data {root}: no such folder (the eval data is not bundled; see bench/EVAL.md)")
    budgets = [int(b) for b in args.budgets.split(",")]
    minimum, published = min_cacheable_tokens(args.model)
    minimums = [int(m) for m in args.min_cacheable.split(",")] if args.min_cacheable else [minimum]
    results = anyio.run(
        lambda: run(
            root,
            budgets,
            spc=args.spc,
            locomo=args.locomo,
            tokenizer=args.tokenizer,
            minimums=minimums,
            batch_api=args.batch_api,
        )
    )
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"mcp-profiles cost bench, {when}, {platform.node()} ({platform.platform()}, Python {platform.python_version()})"
    )
    print(ASSUMPTIONS.format(tokenizer=args.tokenizer, overhead=TOOL_USE_OVERHEAD))
    source = "published" if published else "no published figure: the largest known minimum"
    print(f"Model {args.model}: minimum cacheable prefix {minimum} tokens ({source}).")
    print()
    print(table(results))
    mismatched = [r for r in results if r.recorded != r.usage[f"warm/{minimums[0]}"]]
    problems = [
        r for r in results if r.failed_items or r.resent_requests or r.resent_duplicates != r.resent_items
    ]
    if mismatched:
        print(f"\nwarning: stored usage differs from the replayed usage in {len(mismatched)} run(s)")
    if problems:
        print(f"\nwarning: failed items or re-sent data that cost requests in {len(problems)} run(s)")
    if args.json:
        payload = {
            "date": when,
            "machine": platform.platform(),
            "tokenizer": args.tokenizer,
            "tool_use_overhead": TOOL_USE_OVERHEAD,
            "scripted": True,
            "results": [asdict(r) for r in results],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 1 if mismatched or problems else 0


if __name__ == "__main__":
    sys.exit(main())
