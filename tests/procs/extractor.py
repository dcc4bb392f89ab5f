"""A server process whose model hangs mid-extraction, for the crash tests.

    python tests/procs/extractor.py DB PROFILE DATA_FILE

Opens the app with its background worker (which first requeues items of dead owners),
stores the data as a new item, and lets the worker extract. The scripted Messages API
prints ``llm DATA_IDS`` when a request arrives, then never answers: the parent kills
the process while its items are claimed ``processing``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import anyio
import httpx2

from mcp_profiles.config import Config
from mcp_profiles.llm import AnthropicLLM
from mcp_profiles.runtime import open_app
from tests.fakes import user_text


async def hang(request: httpx2.Request) -> httpx2.Response:
    ids = re.findall(r'<data id="([^"]+)"', user_text(json.loads(request.content)))
    print("llm " + " ".join(ids), flush=True)
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def main(db: str, profile: str, data_file: str) -> None:
    llm = AnthropicLLM(
        "claude-haiku-5-5",
        api_key="test-key",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(hang)),
    )
    async with open_app(Config(db=db), llm=llm) as app:
        item, duplicate, _ = await app.extractor.submit(
            "default", profile, Path(data_file).read_text("utf-8"), "chat history", None
        )
        print(f"submitted {item.id} {duplicate}", flush=True)
        app.extractor.wake()
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:4])
