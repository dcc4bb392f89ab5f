"""A write loop that reports every acknowledged write, for the crash tests.

    python tests/procs/writer.py DB RUN [COUNT]

Round-robins ``update_profile`` over a few profiles through the service layer (each edit
sets a new attribute and grows the summary, so documents span several pages) and prints
``ack PROFILE KEY VERSION`` after each commit returns. The parent kills it at random.
"""

from __future__ import annotations

import sys

import anyio

from mcp_profiles.config import Config
from mcp_profiles.runtime import open_app

PROFILES = ("crash-a", "crash-b", "crash-c")


async def main(db: str, run: str, count: int) -> None:
    async with open_app(Config(db=db), worker=False) as app:
        print("ready", flush=True)
        for n in range(count):
            profile = PROFILES[n % len(PROFILES)]
            key = f"burst.r{run}_n{n:05d}"
            result = await app.service.update_profile(
                "default",
                profile,
                {"attributes": {key: n}, "summary": f"run {run} write {n} " + "x" * (n % 700)},
                create=True,
            )
            print(f"ack {profile} {key} {result.profile.version}", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000)
