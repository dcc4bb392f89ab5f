"""Negative controls for the byte-level erasure scan (``tests/scan.py``): PII that is only
stored compressed must be found while it is still there, or a clean scan would prove nothing."""

from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import Any

from mcp_profiles.config import Config
from tests.helpers import text
from tests.scan import inflate_prefix, page_ends, scan

# Metadata is not in the search index or any plain column: once stored, these exist only
# inside the zlib-compressed document, diff and snapshot.
SECRET = "vexmorrow.plimsoll@example.net"
COMPRESSED = {"profiles.document", "revisions.diff", "revisions.snapshot"}


async def test_pii_kept_only_compressed_is_found_by_the_zlib_and_the_logical_scan(
    connect: Any, config: Config
) -> None:
    async with connect() as client:
        created = await client.call_tool(
            "update_profile",
            {"profile": "ada", "create": True, "patch": {"name": "Ada", "metadata": {"contact": SECRET}}},
        )
        assert not created.is_error, text(created)
        live = scan(config.db_path, [SECRET])
        # a plaintext search of the files sees nothing: this is what the scan is for
        assert "profiles.sqlite3" not in live.hits and "profiles.sqlite3-wal" not in live.hits, live.hits
        raw = set(live.hits) - COMPRESSED  # the WAL, or the main file if it was checkpointed
        assert COMPRESSED <= set(live.hits) and raw, live.hits
        assert raw <= {"profiles.sqlite3-wal zlib", "profiles.sqlite3 zlib"}, live.hits
    closed = scan(config.db_path, [SECRET])  # checkpointed into the main file on close
    assert set(closed.hits) == COMPRESSED | {"profiles.sqlite3 zlib"}, closed.hits
    assert closed.values == 3 and closed.streams >= 3, closed.summary()


async def test_a_document_spread_over_overflow_pages_is_found_whole_only_by_the_logical_scan(
    connect: Any, config: Config
) -> None:
    """SQLite keeps the first part of a large value on the row's page and chains the rest
    through overflow pages: a raw stream is cut there, so only the logical scan reads it all."""
    rng = random.Random(7)
    noise = " ".join(f"{rng.getrandbits(32):08x}" for _ in range(4000))  # ~36 KB, ~20 KB compressed
    async with connect() as client:
        await client.call_tool(
            "update_profile",
            {
                "profile": "ada",
                "create": True,
                "patch": {"metadata": {"a_head": "headmarker-quillon", "b_noise": noise, "c_tail": SECRET}},
            },
        )
        wal = Path(f"{config.db_path}-wal").read_bytes()
        assert page_ends("profiles.sqlite3-wal", wal) == (56, 4096, 4120)  # frames: 24-byte header, page
    assert page_ends("profiles.sqlite3", Path(config.db_path).read_bytes()) == (0, 4096, 4096)
    found = scan(config.db_path, ["headmarker-quillon", SECRET])
    assert found.hits["profiles.sqlite3 zlib"] == ["headmarker-quillon"], found.hits  # the page's part
    for column in COMPRESSED - {"revisions.diff"}:
        assert found.hits[column] == ["headmarker-quillon", SECRET], found.hits
    assert SECRET in found.hits["revisions.diff"]


def test_a_stream_cut_short_still_yields_what_came_before_the_cut() -> None:
    rng = random.Random(3)
    body = ("filler " * 40 + SECRET + " ".join(f"{rng.getrandbits(32):08x}" for _ in range(400))).encode()
    packed = zlib.compress(body, 6)
    assert inflate_prefix(packed, 0) == (body, True)
    half = packed[: len(packed) // 2]
    before_cut = zlib.decompressobj().decompress(half)
    assert SECRET.encode() in before_cut
    cut = b"junk" + half + bytes(range(256)) * 4  # a page boundary, then other bytes
    out, ended = inflate_prefix(cut, 4)
    assert not ended and out.startswith(before_cut)
    assert inflate_prefix(cut, 4, 4 + len(half)) == (before_cut, False)  # stopped at its page's end
