#!/usr/bin/env python3
"""asyncpg against psycopg 3 (async, pooled) on this server's workload.

    python bench/pg_drivers.py [--url postgresql://…] [--seconds 3] [--rows 2000]

Two operations, each at 1, 4 and 16 tasks in flight over a pool of 16 connections:
``read`` is the single-row lookup behind ``get_profile`` (a ~2 KB JSON document by
namespace and id); ``rmw`` is the read-modify-write transaction behind ``update_profile``
(read the document and version, ``UPDATE … WHERE version = $n``, insert a revision). Each
figure is operations per second over ``--seconds``, and the p50 latency in milliseconds.
Without ``--url`` a throwaway cluster is started (tests/pgcluster.py) and removed after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import psycopg_pool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCHEMA = """
DROP TABLE IF EXISTS bench_revisions, bench_profiles;
CREATE TABLE bench_profiles (pk bigserial PRIMARY KEY, namespace text NOT NULL, id text NOT NULL,
    version int NOT NULL, document text NOT NULL, UNIQUE (namespace, id));
CREATE TABLE bench_revisions (pk bigint NOT NULL, version int NOT NULL, snapshot text NOT NULL,
    PRIMARY KEY (pk, version));
"""
IN_FLIGHT = (1, 4, 16)
Op = Callable[[int], Awaitable[None]]


def document(i: int, version: int) -> str:
    attrs = {f"topic{j}": {"value": f"value {i} {j} " * 6, "confidence": 0.9} for j in range(12)}
    return json.dumps({"id": f"p{i}", "version": version, "attributes": attrs})


async def run(op: Op, in_flight: int, seconds: float) -> tuple[float, float]:
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await op(w * 1_000_003 + n)
            lat.append(time.perf_counter() - t)
            n += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(in_flight)))
    return len(lat) / (time.perf_counter() - t0), statistics.median(lat) * 1000


async def bench_asyncpg(url: str, rows: int, seconds: float) -> dict[str, Any]:
    pool = await asyncpg.create_pool(url, min_size=16, max_size=16)
    rng = random.Random(1)

    async def read(_: int) -> None:
        async with pool.acquire() as con:
            await con.fetchrow(
                "SELECT document FROM bench_profiles WHERE namespace = $1 AND id = $2",
                "default",
                f"p{rng.randrange(rows)}",
            )

    async def rmw(_: int) -> None:
        i = rng.randrange(rows)
        async with pool.acquire() as con, con.transaction():
            pk, version, _doc = await con.fetchrow(
                "SELECT pk, version, document FROM bench_profiles WHERE namespace = $1 AND id = $2",
                "default",
                f"p{i}",
            )
            new = document(i, version + 1)
            done = await con.execute(
                "UPDATE bench_profiles SET version = $1, document = $2 WHERE pk = $3 AND version = $4",
                version + 1,
                new,
                pk,
                version,
            )
            if done == "UPDATE 1":
                await con.execute("INSERT INTO bench_revisions VALUES ($1, $2, $3)", pk, version + 1, new)

    out = await measure({"read": read, "rmw": rmw}, seconds)
    await pool.close()
    return out


async def bench_psycopg(url: str, rows: int, seconds: float) -> dict[str, Any]:
    pool = psycopg_pool.AsyncConnectionPool(url, min_size=16, max_size=16, open=False)
    await pool.open(wait=True)
    rng = random.Random(1)

    async def read(_: int) -> None:
        async with pool.connection() as con:
            cur = await con.execute(
                "SELECT document FROM bench_profiles WHERE namespace = %s AND id = %s",
                ("default", f"p{rng.randrange(rows)}"),
            )
            await cur.fetchone()

    async def rmw(_: int) -> None:
        i = rng.randrange(rows)
        async with pool.connection() as con, con.transaction():
            cur = await con.execute(
                "SELECT pk, version, document FROM bench_profiles WHERE namespace = %s AND id = %s",
                ("default", f"p{i}"),
            )
            row = await cur.fetchone()
            assert row is not None
            pk, version, _doc = row
            new = document(i, version + 1)
            cur = await con.execute(
                "UPDATE bench_profiles SET version = %s, document = %s WHERE pk = %s AND version = %s",
                (version + 1, new, pk, version),
            )
            if cur.rowcount == 1:
                await con.execute("INSERT INTO bench_revisions VALUES (%s, %s, %s)", (pk, version + 1, new))

    out = await measure({"read": read, "rmw": rmw}, seconds)
    await pool.close()
    return out


async def measure(ops: dict[str, Op], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, op in ops.items():
        for n in IN_FLIGHT:
            await run(op, n, min(seconds, 0.5))  # warm-up
            out[f"{name}@{n}"] = await run(op, n, seconds)
    return out


async def seed(url: str, rows: int) -> None:
    con = await asyncpg.connect(url)
    await con.execute(SCHEMA)
    await con.copy_records_to_table(
        "bench_profiles",
        records=[("default", f"p{i}", 1, document(i, 1)) for i in range(rows)],
        columns=["namespace", "id", "version", "document"],
    )
    await con.execute("ANALYZE")
    await con.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rows", type=int, default=2000)
    args = ap.parse_args()
    cluster = None
    url = args.url
    if url is None:
        from tests.pgcluster import Cluster, pg_bin

        bindir = pg_bin()
        if bindir is None:
            sys.exit("no PostgreSQL binaries: apt-get install -y postgresql, or pass --url")
        cluster = Cluster(bindir).start()
        url = cluster.url()
    try:
        results = {}
        for name, fn in (("asyncpg", bench_asyncpg), ("psycopg", bench_psycopg)):
            await seed(url, args.rows)
            results[name] = await fn(url, args.rows, args.seconds)
        print(
            f"{'operation':12} {'asyncpg ops/s':>14} {'p50 ms':>8} {'psycopg ops/s':>14} {'p50 ms':>8}  ratio"
        )
        for key in results["asyncpg"]:
            a, b = results["asyncpg"][key], results["psycopg"][key]
            print(f"{key:12} {a[0]:14.0f} {a[1]:8.2f} {b[0]:14.0f} {b[1]:8.2f}  {a[0] / b[0]:5.2f}x")
        print(
            f"asyncpg {asyncpg.__version__}, psycopg {psycopg.__version__}, pool 16, {args.seconds}s per figure"
        )
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
