#!/usr/bin/env python3
"""Notification bench: does a write cost more when many 2025-era sessions are connected?

    python bench/notify.py [--writes 50] [--sessions 256]

Through the SDK's in-process ``Client`` against one running app, it times ``update_profile``
(each creates a profile, so every remembered session is sent ``list_changed``) in three
settings: no other session; ``--sessions`` remembered sessions whose peer never reads (every
send blocks until its timeout); and after that many 2025-era clients connected, made a
call and closed. Prints median and 95th-percentile latency and how many sessions the bus
still remembers. Before the bus delivered off the writer's path, the first write with one
hung session never returned.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_profiles.config import Config  # noqa: E402
from mcp_profiles.runtime import open_app  # noqa: E402
from mcp_profiles.server import create_server  # noqa: E402


class HungSession:
    """A handshake-era session whose peer stopped reading."""

    def __init__(self) -> None:
        self.client_params = object()

    async def send_resource_updated(self, uri: str) -> None:
        await anyio.sleep_forever()

    async def send_resource_list_changed(self) -> None:
        await anyio.sleep_forever()


async def timed_writes(client: Client, prefix: str, n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        result = await client.call_tool("update_profile", {"profile": f"{prefix}{i}", "create": True})
        out.append((time.perf_counter() - start) * 1000)
        if result.is_error:
            raise SystemExit(f"write failed: {result.content}")
    return out


def summary(name: str, ms: list[float], remembered: int) -> None:
    p95 = sorted(ms)[max(0, int(len(ms) * 0.95) - 1)]
    print(
        f"{name:34} median {statistics.median(ms):6.2f} ms   p95 {p95:6.2f} ms   sessions remembered {remembered}"
    )


async def main(writes: int, sessions: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(db=str(Path(tmp) / "bench.sqlite3"))
        async with open_app(config) as app:
            server = create_server(config, app=app)
            ns = config.namespace
            async with Client(server) as writer:
                await timed_writes(writer, "warm", 10)
                summary(
                    "no other session", await timed_writes(writer, "a", writes), app.bus.session_count(ns)
                )
                hung: list[Any] = [HungSession() for _ in range(sessions)]
                for session in hung:
                    app.bus.remember_session(ns, session)
                with anyio.fail_after(600):
                    ms = await timed_writes(writer, "b", writes)
                summary(f"{sessions} hung sessions", ms, app.bus.session_count(ns))
                with anyio.fail_after(60):
                    while app.bus.session_count(ns):
                        await anyio.sleep(0.1)
                for _ in range(sessions):
                    async with Client(server, mode="legacy") as gone:
                        await gone.call_tool("list_profiles", {"limit": 1})
                summary(
                    f"after {sessions} closed sessions",
                    await timed_writes(writer, "c", writes),
                    app.bus.session_count(ns),
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--writes", type=int, default=50, help="writes per setting (under 64: hung sessions stay)"
    )
    parser.add_argument("--sessions", type=int, default=256)
    args = parser.parse_args()
    logging.getLogger("mcp_profiles").setLevel(logging.ERROR)  # one warning per forgotten session
    anyio.run(main, args.writes, args.sessions)
