"""How long forget_data and a retention sweep take on profiles with a long history.

For each size N, one profile receives N data items, each extracted on its own (so the
profile reaches N + 1 versions, of which ``MCP_PROFILES_KEEP_VERSIONS`` = 100 are kept by
the sweep). Item n says it likes topic n % 50, so every fact is supported by several items.
Then the sweep runs once (timed), and five items are forgotten one by one (timed): each
forget rewrites every kept version, the other items' job results and the search index,
and checkpoints the WAL. The model is scripted (no network); everything else is the real
pipeline and store on a file in a temporary folder.

    python bench/forget.py                 # N = 100, 300
    python bench/forget.py --sizes 1000 --json forget.json
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_profiles.config import Config  # noqa: E402
from mcp_profiles.extract import TOOL_NAME  # noqa: E402
from mcp_profiles.llm import AnthropicLLM  # noqa: E402
from mcp_profiles.runtime import open_app  # noqa: E402

_BLOCK = re.compile(r'<data id="([^"]*)"[^>]*>\n(.*?)\n</data>', re.DOTALL)
_TOPIC = re.compile(r"I like topic (\d+)")


def _answer(request: httpx2.Request) -> httpx2.Response:
    """One set operation per data block: interests.topic_K, quoting the block's first line."""
    body = json.loads(request.content)
    text = "\n".join(b.get("text", "") for b in body["messages"][0]["content"])
    operations = []
    for data_id, block in _BLOCK.findall(text):
        first = block.splitlines()[0]
        found = _TOPIC.search(first)
        if found:
            k = found.group(1)
            operations.append(
                {
                    "op": "set",
                    "key": f"interests.topic_{k}",
                    "value": f"topic {k}",
                    "confidence": 0.9,
                    "evidence": first,
                    "data_id": data_id,
                }
            )
    usage = {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    content = [
        {"type": "tool_use", "id": "toolu_bench", "name": TOOL_NAME, "input": {"operations": operations}}
    ]
    message = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude"),
        "content": content,
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": usage,
    }
    return httpx2.Response(200, json=message)


async def run(size: int, folder: Path) -> dict[str, Any]:
    config = Config(db=str(folder / f"forget-{size}.sqlite3"))
    llm = AnthropicLLM(
        "claude-haiku-5-5",
        api_key="bench",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(_answer)),
    )
    async with open_app(config, llm=llm, worker=False) as app:
        ids = []
        started = time.perf_counter()
        for n in range(size):
            data = f"Note {n}: I like topic {n % 50} a lot.\n" + f"Some more words about day {n}.\n" * 20
            item, _, _ = await app.extractor.submit("default", "bench", data, "note", None)
            await app.extractor.wait_for("default", item)
            ids.append(item.id)
        built = time.perf_counter() - started
        started = time.perf_counter()
        counts = await app.lifecycle.prune()
        sweep = time.perf_counter() - started
        timings = []
        rewritten = []
        for data_id in ids[-5:]:
            started = time.perf_counter()
            out = await app.lifecycle.forget_data("default", "bench", data_id)
            timings.append(time.perf_counter() - started)
            rewritten.append(out.revisions)
    size_bytes = sum(p.stat().st_size for p in folder.glob(f"forget-{size}.sqlite3*"))
    return {
        "items": size,
        "build_s": round(built, 2),
        "sweep_s": round(sweep, 4),
        "sweep_revisions_deleted": counts.revisions,
        "forget_median_ms": round(statistics.median(timings) * 1000, 1),
        "forget_max_ms": round(max(timings) * 1000, 1),
        "versions_rewritten_median": statistics.median(rewritten),
        "database_bytes": size_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,300", help="comma-separated item counts (default 100,300)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            result = anyio.run(run, size, Path(tmp))
            results.append(result)
            print(
                f"{size:6} items: sweep {result['sweep_s'] * 1000:7.1f} ms "
                f"({result['sweep_revisions_deleted']} versions deleted); forget median "
                f"{result['forget_median_ms']:6.1f} ms, max {result['forget_max_ms']:6.1f} ms, "
                f"{result['versions_rewritten_median']:g} versions rewritten; "
                f"database {result['database_bytes'] / 1e6:.1f} MB"
            )
    print(f"python {platform.python_version()}, {platform.machine()}, {time.strftime('%Y-%m-%d')}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
