"""The byte-level proof of erasure: where in the database files a piece of PII can still be found.

Since migrations 007 and 008, documents, revision diffs and snapshots are stored
zlib-compressed, so a plaintext search of the files no longer sees them: a compressed copy
of an erased value would pass unseen. :func:`scan` therefore looks three ways, and each
covers what the others cannot:

* **plaintext**: the raw bytes of the database, ``-wal``, ``-shm`` and ``-journal`` files,
  ASCII case-insensitively (the search index stores case-folded terms).
* **zlib in the raw bytes**: at every offset where a zlib header can start (0x78 followed
  by 0x01, 0x5e, 0x9c or 0xda), inflate with ``zlib.decompressobj()``, keep whatever comes
  out before an error, and search it. This is what sees residue no row points to any more:
  old WAL frames, the free space of a page, a freed page, a rollback journal. SQLite's
  ``secure_delete`` should have zeroed all of that, and this scan is what shows it did.
  It cannot see all of a live blob, though: SQLite keeps only the first part of a large
  value on the row's page and chains the rest through overflow pages, so a raw stream is
  cut at the page boundary (and, in the WAL, by frame headers). Inflation therefore stops
  at the end of the page the header is on (the database and WAL headers give the page
  size): the bytes after it belong to something else, and inflating them anyway yields
  plausible noise, back-references into the real text included, which once spelled out a
  needle that was one character away from a live value.
* **logical**: the database opened read-only, every BLOB of every row of every table
  decoded with the store's own decoder (:func:`mcp_profiles.store.unpack`) and every TEXT
  searched as it is. This sees whole values however SQLite split them, and no freed bytes.

The logical scan opens a copy of the bytes just read, so it never holds a read lock on the
real file (which would hold back the server's truncating checkpoint and make the erasure
under test ``wal_pending``) and leaves no ``-wal`` or ``-shm`` behind.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mcp_profiles.store import unpack
from tests.procs.common import database_files

# A zlib header: CM=8 with a 32 KiB window (0x78), then each FLEVEL's check byte.
_ZLIB_HEADER = re.compile(rb"(?=\x78[\x01\x5e\x9c\xda])")
_CHUNK = 512  # input fed per step; a failing step is replayed a byte at a time
_MAX_OUT = 8 << 20  # a stream inflating past this is not one of ours (documents stay under 1 MiB)


@dataclass
class Scan:
    """What one scan found, and how much it read to find it."""

    hits: dict[str, list[str]] = field(default_factory=dict)
    """Where each needle was found: a file's name (plaintext), ``"<file> zlib"`` (inside a
    compressed stream in that file's raw bytes) or ``"<table>.<column>"`` (logical scan)."""
    bytes: int = 0  # raw bytes read from the files
    headers: int = 0  # offsets where a zlib header could start
    streams: int = 0  # of those, streams that inflated to some output
    inflated: int = 0  # bytes those streams inflated to
    values: int = 0  # compressed values decoded by the logical scan
    decoded: int = 0  # bytes they decoded to
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.bytes} bytes, {self.streams} zlib streams ({self.inflated} bytes inflated, "
            f"{self.headers} headers tried), {self.values} compressed values decoded ({self.decoded} bytes), "
            f"{self.seconds * 1000:.0f} ms"
        )


def _needles(needles: Iterable[bytes | str]) -> list[tuple[str, bytes]]:
    out = []
    for n in needles:
        raw = n.encode() if isinstance(n, str) else n
        out.append((raw.decode(), raw.lower()))
    return out


def _find(haystack: bytes, needles: list[tuple[str, bytes]]) -> list[str]:
    folded = haystack.lower()
    return [name for name, low in needles if low in folded]


def page_ends(name: str, data: bytes) -> tuple[int, int, int] | None:
    """(first page's offset, page size, distance between pages) in a database or WAL file,
    read from its header; None for other files (shared memory, journal) or a bad header."""
    if name.endswith("-wal"):
        if len(data) < 32:
            return None
        size = int.from_bytes(data[8:12], "big")
        return (32 + 24, size, size + 24) if size >= 512 else None  # each frame: 24-byte header, page
    if name.endswith(("-shm", "-journal")) or len(data) < 100 or not data.startswith(b"SQLite format 3\0"):
        return None
    size = int.from_bytes(data[16:18], "big")
    size = 65536 if size == 1 else size
    return (0, size, size) if size >= 512 else None


def _end_of_page(layout: tuple[int, int, int] | None, offset: int, length: int) -> int:
    """Where the page holding ``offset`` ends: no stored value runs on past it contiguously
    (its next part is on an overflow page elsewhere, after a 4-byte link)."""
    if layout is None:
        return length
    first, size, stride = layout
    if offset < first:
        return first
    index, within = divmod(offset - first, stride)
    return first + index * stride + size if within < size else length


def inflate_prefix(data: bytes, start: int, end: int | None = None) -> tuple[bytes, bool]:
    """What a zlib stream starting at ``start`` inflates to before it ends, breaks or reaches
    ``end`` (its page's end); and whether it ended cleanly. A stream cut by a page boundary
    still yields its first part."""
    d = zlib.decompressobj()
    out: list[bytes] = []
    size, pos = 0, start
    stop = len(data) if end is None else min(end, len(data))
    while pos < stop and not d.eof and size < _MAX_OUT:
        chunk = data[pos : min(pos + _CHUNK, stop)]
        before = d.copy()
        try:
            piece = d.decompress(chunk)
        except zlib.error:
            d = before  # replay the step byte by byte to keep every byte before the error
            for i in range(len(chunk)):
                try:
                    piece = d.decompress(chunk[i : i + 1])
                except zlib.error:
                    return b"".join(out), False
                out.append(piece)
                if d.eof:
                    break
            return b"".join(out), d.eof
        out.append(piece)
        size += len(piece)
        pos += len(chunk)
    return b"".join(out), d.eof


def _logical(files: dict[str, bytes], needles: list[tuple[str, bytes]], report: Scan) -> None:
    """Every column of every row, compressed values decoded, from a copy of ``files``."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "copy.sqlite3"
        for name, data in files.items():
            # The database and its WAL only: SQLite rebuilds the shared-memory index from
            # the WAL, and a read-only connection cannot roll a hot journal back (the raw
            # scan has already searched both).
            if name.endswith("-wal"):
                Path(f"{base}-wal").write_bytes(data)
            elif not name.endswith(("-shm", "-journal")):
                base.write_bytes(data)
        con = sqlite3.connect(f"file:{base}?mode=ro", uri=True)
        try:
            tables = [
                str(r[0])
                for r in con.execute(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'"
                )
            ]
            for table in tables:
                cur = con.execute(f'SELECT * FROM "{table}"')
                columns = [c[0] for c in cur.description]
                for row in cur:
                    for column, value in zip(columns, row, strict=True):
                        if isinstance(value, bytes):
                            try:
                                value = unpack(value).encode()
                                report.values += 1
                                report.decoded += len(value)
                            except (zlib.error, UnicodeDecodeError):
                                pass  # not compressed (FTS5 index segments): searched as it is
                        elif isinstance(value, str):
                            value = value.encode()
                        else:
                            continue
                        for name in _find(value, needles):
                            found = report.hits.setdefault(f"{table}.{column}", [])
                            if name not in found:
                                found.append(name)
        finally:
            con.close()


def scan(db: str | Path, needles: Iterable[bytes | str]) -> Scan:
    """Search the database files of ``db`` for ``needles``, plain, compressed and logically."""
    t0 = time.perf_counter()
    wanted = _needles(needles)
    report = Scan()
    files: dict[str, bytes] = {}
    for path in database_files(db):
        data = path.read_bytes()
        files[path.name] = data
        report.bytes += len(data)
        if found := _find(data, wanted):
            report.hits[path.name] = found
        inflated: list[str] = []
        layout = page_ends(path.name, data)
        for match in _ZLIB_HEADER.finditer(data):
            report.headers += 1
            out, _ = inflate_prefix(data, match.start(), _end_of_page(layout, match.start(), len(data)))
            if not out:
                continue
            report.streams += 1
            report.inflated += len(out)
            inflated += [n for n in _find(out, wanted) if n not in inflated]
        if inflated:
            report.hits[f"{path.name} zlib"] = inflated
    if files:
        _logical(files, wanted, report)
    report.seconds = time.perf_counter() - t0
    return report
