#!/usr/bin/env python3
"""Latency as ratios to the SDK floor, with every server measured in the same moments.

    python bench/interleaved.py [--k 10000] [--rounds 1000]
                                [--server before=/path/serve.py:/path/seed.sqlite3 ...]

``bench/speed.py`` measures the floor and mcp-profiles one after the other, so on a shared
machine a load spike that hits one and not the other moves the ratio by a factor of two.
Here the floor server, the installed ``mcp-profiles serve`` and any other servers
(``--server LABEL=COMMAND:SEED``, e.g. a scratch copy of an older commit with a seed its
own code made) all run at once, each over stdio through the SDK's ``Client``, and every
round sends one request of each kind to each of them, in a shuffled order. The p50 of each
(server, request) is reported with its ratio to the floor's p50 of the same kind (tool
call or resource read) over the same rounds.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from mcp import StdioServerParameters

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speed import (  # noqa: E402
    FLOOR_SERVER,
    Workload,
    check,
    connect,
    prepare_db,
    profile_id,
    server_command,
)

Op = Callable[[], Awaitable[Any]]


async def measure(k: int, rounds: int, servers: dict[str, tuple[str, Path]], log: Any) -> dict[str, float]:
    """p50 (ms) of every (server, request kind), all measured in the same rounds."""
    rng = random.Random(k)
    work = Workload()
    samples: dict[str, list[float]] = {}
    async with AsyncExitStack() as stack:
        ops: dict[str, Op] = {}
        floor = await stack.enter_async_context(
            connect(StdioServerParameters(command=sys.executable, args=[str(FLOOR_SERVER)]), log, work)
        )
        ops["floor call"] = lambda: floor.call_tool("echo", {"profile": profile_id(rng.randrange(k))})
        ops["floor read"] = lambda: floor.read_resource(f"floor://{profile_id(rng.randrange(k))}")
        for label, (command, db) in servers.items():
            params = StdioServerParameters(command=command, args=["serve"], env={"MCP_PROFILES_DB": str(db)})
            client = await stack.enter_async_context(connect(params, log, work))
            await client.list_tools()

            def bind(c: Any = client, name: str = label) -> None:
                ops[f"{name} profile:// read"] = lambda: c.read_resource(
                    f"profile://{profile_id(rng.randrange(k))}"
                )
                ops[f"{name} get_profile"] = lambda: c.call_tool(
                    "get_profile", {"profile": profile_id(rng.randrange(k))}
                )
                ops[f"{name} update_profile"] = lambda: c.call_tool(
                    "update_profile",
                    {
                        "profile": profile_id(rng.randrange(k)),
                        "patch": {"attributes": {"bench.n": rng.random()}},
                    },
                )

            bind()
        await floor.list_tools()
        names = list(ops)
        for _ in range(5):  # warm-up
            for name in names:
                await ops[name]()
        for _ in range(rounds):
            rng.shuffle(names)
            for name in names:
                start = time.perf_counter()
                result = await ops[name]()
                samples.setdefault(name, []).append((time.perf_counter() - start) * 1000)
                if hasattr(result, "is_error"):
                    check(result)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(p50: dict[str, float], labels: list[str]) -> str:
    lines = [
        "| server | profile:// read p50 (ms) / floor | get_profile p50 (ms) / floor | update_profile p50 (ms) / floor |",
        "|---|---:|---:|---:|",
    ]
    call, read = p50["floor call"], p50["floor read"]
    for label in labels:
        r, g, u = (p50[f"{label} {op}"] for op in ("profile:// read", "get_profile", "update_profile"))
        lines.append(
            f"| {label} | {r:.2f} / {r / read:.2f}× | {g:.2f} / {g / call:.2f}× | {u:.2f} / {u / call:.2f}× |"
        )
    lines.append(f"| SDK floor | {read:.2f} | {call:.2f} | {call:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--k", type=int, default=10_000, help="profiles in each database")
    parser.add_argument("--rounds", type=int, default=1000, help="requests of each kind to each server")
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="LABEL=COMMAND:SEED",
        help="another server to measure, started as 'COMMAND serve' over a copy of SEED",
    )
    parser.add_argument("--workdir", default=str(Path(__file__).resolve().parent / ".data"))
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    async def run() -> dict[str, float]:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            db, _ = await prepare_db(workdir, args.k, reseed=False)
            servers: dict[str, tuple[str, Path]] = {"mcp-profiles": (server_command(), db)}
            for spec in args.server:
                label, _, rest = spec.partition("=")
                command, _, seed = rest.rpartition(":")
                copy = Path(tmp) / f"{label}.sqlite3"
                shutil.copyfile(seed, copy)
                servers[label] = (command, copy)
            with (Path(tmp) / "servers.log").open("w") as log:
                return await measure(args.k, args.rounds, servers, log)

    p50 = anyio.run(run)
    labels = ["mcp-profiles", *(s.partition("=")[0] for s in args.server)]
    print(f"K = {args.k:,}, {args.rounds} rounds, every server measured in the same rounds\n")
    print(report(p50, labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
