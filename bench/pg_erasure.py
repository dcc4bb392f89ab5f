#!/usr/bin/env python3
"""What bytes of an erased profile PostgreSQL still holds, and what ``compact`` removes.

    python bench/pg_erasure.py [--profiles 2000]

Starts a throwaway cluster (tests/pgcluster.py), stores ``--profiles`` profiles and one
whose name, attribute and revision carry a random marker, erases that one with
``delete_profile``, and after each step (a CHECKPOINT first, so pages reach the files)
counts the marker's occurrences in the cluster's files: table and index files apart from
WAL. Steps: before the erasure; after it (commit); after a plain VACUUM; after
``mcp-profiles compact`` (VACUUM FULL). The README quotes the result.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcp_profiles.config import Config  # noqa: E402
from mcp_profiles.pgstore import PgStore  # noqa: E402
from mcp_profiles.service import ProfileService  # noqa: E402
from tests.pgcluster import Cluster, pg_bin, psql_command  # noqa: E402


def occurrences(folder: Path, marker: bytes) -> dict[str, int]:
    found = {"table and index files": 0, "WAL": 0}
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                n = (Path(root) / name).read_bytes().count(marker)
            except OSError:
                continue
            found["WAL" if "pg_wal" in root else "table and index files"] += n
    return found


async def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--profiles", type=int, default=2000)
    args = ap.parse_args()
    bindir = pg_bin()
    if bindir is None:
        sys.exit("no PostgreSQL binaries: apt-get install -y postgresql")
    cluster = Cluster(bindir).start()
    marker = "Erasable" + os.urandom(8).hex()

    def sql(statement: str) -> None:
        subprocess.run([*psql_command(cluster.url()), "-c", statement], check=True, capture_output=True)

    try:
        url = cluster.url()
        async with PgStore.open(url) as store:
            svc = ProfileService(store, Config(db=url))
            for i in range(args.profiles):
                await svc.update_profile("ns", f"p{i}", {"name": f"Person {i}"}, create=True)
            await svc.update_profile(
                "ns", "gone", {"name": marker, "attributes": {"work.role": f"{marker} role"}}, create=True
            )
            await svc.update_profile("ns", "gone", {"summary": f"{marker} summary"})
            steps = []
            sql("CHECKPOINT")
            steps.append(("stored", occurrences(cluster.data, marker.encode())))
            await svc.delete_profile("ns", "gone")
            sql("CHECKPOINT")
            steps.append(("erased (committed)", occurrences(cluster.data, marker.encode())))
            sql("VACUUM")
            sql("CHECKPOINT")
            steps.append(("plain VACUUM", occurrences(cluster.data, marker.encode())))
            sizes = await store.compact()
            sql("CHECKPOINT")
            steps.append(("compact (VACUUM FULL)", occurrences(cluster.data, marker.encode())))
            sql("SELECT pg_switch_wal()")
            sql("CHECKPOINT")
            steps.append(("+ WAL switch and checkpoint", occurrences(cluster.data, marker.encode())))
        print("| step | marker in table and index files | marker in WAL |")
        print("|---|---:|---:|")
        for name, found in steps:
            print(f"| {name} | {found['table and index files']} | {found['WAL']} |")
        print(
            f"\ncompact: {sizes['bytes_before']:,} → {sizes['bytes_after']:,} bytes; {args.profiles} other profiles"
        )
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
