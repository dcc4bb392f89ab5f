#!/usr/bin/env python3
"""Speed bench for mcp-profiles: the installed ``mcp-profiles serve`` driven over stdio.

    python bench/speed.py [--sizes 100,1000,10000,100000] [--runs 3] [--peer] [--json out.json]
    python bench/speed.py --db postgresql://USER@/DB?host=/run/postgresql [--sizes 1000,100000]

For every size K it seeds a database with K realistic profiles through the real store API
(``ProfileStore.write`` / ``WriteTx.insert_profile`` + ``add_revision``, 2,000 per
transaction, each document built by the service's own ``apply_patch`` and ``diff``), then
spawns the installed console script over stdio with the SDK's ``Client``, as a host would,
and measures per run: cold start against ``python -c "import mcp.server"``, read, write
and list latency, throughput with 1, 4 and 16 requests in flight over one session, lost
updates under 16 concurrent writers, the server's peak RSS (``VmHWM``) and bytes on disk
per profile. A trivial server (``bench/floor_server.py``) is measured the same way as the
floor the SDK and the transport set. Each figure is the median over ``--runs`` runs, each
against a fresh server process. ``--peer`` runs the same read, write and list workload
against ``@modelcontextprotocol/server-memory`` (installed from npm into ``bench/.peer/``),
capped at K = 10,000. See bench/README.md.

With ``--db postgresql://…`` every size runs on PostgreSQL (each K in its own schema
``bench_k{K}`` of that database, seeded through COPY and set-based inserts) and on SQLite in
the same run, and the report adds the PostgreSQL / SQLite ratios and the get_profile
throughput with 16 in flight through two server processes (replicas) against one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import get_default_environment, stdio_client
from mcp.types import CallToolResult, TextResourceContents

BENCH_DIR = Path(__file__).resolve().parent
FLOOR_SERVER = BENCH_DIR / "floor_server.py"
PEER_PACKAGE = "@modelcontextprotocol/server-memory@2026.8.31"
PEER_DIR = BENCH_DIR / ".peer"
PEER_JS = PEER_DIR / "node_modules" / "@modelcontextprotocol" / "server-memory" / "dist" / "index.js"
PEER_CAP = 10_000
NAMESPACE = "default"
IN_FLIGHT = (1, 4, 16)
WRITERS = 16
SEED_VERSION = 2  # bump when make_profile or seed_database change: cached seeds are rebuilt

Metrics = dict[str, float]
Mode = Literal["auto", "legacy"]


# ---- realistic profiles ----------------------------------------------------------------

FIRST = (
    "Alice Bruno Chen Dana Emeka Fatima Gustavo Hana Ines Jonas Kenji Lena Mateo Nadia Omar Priya "
    "Quinn Rosa Sven Tariq Uma Viktor Wen Ximena Yusuf Zoe Amara Bjorn Carmen Dmitri"
).split()
LAST = (
    "Chen Okafor Silva Novak Haddad Kowalski Tanaka Schmidt Rossi Dubois Larsen Moreau Patel Garcia "
    "Nguyen Kim Müller Ivanova Costa Mensah Andersson Fischer Ortega Yamamoto Ahmed Byrne"
).split()
CITIES = (
    "Berlin Lisbon Toronto Nairobi Osaka Austin Warsaw Lagos Madrid Seoul Dublin Oslo Lyon Pune Bogotá "
    "Melbourne Prague Montreal Accra Tallinn"
).split()
ROLES = (
    "backend engineer",
    "data scientist",
    "product manager",
    "nurse",
    "teacher",
    "designer",
    "site reliability engineer",
    "lawyer",
    "accountant",
    "chef",
    "researcher",
    "student",
    "sales lead",
    "photographer",
    "architect",
)
COMPANIES = (
    "Acme Globex Initech Umbrella Hooli Stark Wayne Tyrell Soylent Vandelay Cyberdyne Aperture".split()
)
HOBBIES = (
    "climbing chess running baking cycling photography gardening jazz piano hiking sailing pottery "
    "birdwatching yoga surfing knitting"
).split()
LANGUAGES = "English German Portuguese French Spanish Japanese Korean Polish Swahili Hindi".split()
DEGREES = ("BSc Computer Science", "MA History", "MBA", "PhD Physics", "BA Design", "MSc Statistics")
TONES = ("direct", "warm", "playful", "formal", "concise", "detailed")
LENGTHS = ("short", "medium", "detailed")
DIETS = ("vegetarian", "vegan", "no restrictions", "pescatarian", "gluten-free")
GOALS = (
    "learn Rust this year",
    "run a marathon",
    "get promoted to staff engineer",
    "move to a smaller city",
    "write a novel",
    "start a company",
    "improve public speaking",
)
TAGS = ("beta", "vip", "trial", "enterprise", "newsletter", "churn-risk", "early-adopter")
# Words that occur in the seeded text, for full-text list queries.
QUERY_WORDS = (*CITIES[:10], "engineer", "climbing", "vegan", "marathon", "designer", "chess")


def profile_id(i: int) -> str:
    """The id of the i-th seeded profile (sortable, so pages follow seeding order)."""
    return f"user-{i:06d}"


def make_profile(i: int, rng: random.Random) -> dict[str, Any]:
    """An ``update_profile`` patch for a realistic user profile (about 10 attributes)."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, role, company = rng.choice(CITIES), rng.choice(ROLES), rng.choice(COMPANIES)
    hobbies = rng.sample(HOBBIES, 3)
    length = rng.choice(LENGTHS)
    data_id = f"d_{i:06d}"

    def extracted(value: Any, quote: str, confidence: float) -> dict[str, Any]:
        return {
            "value": value,
            "confidence": confidence,
            "source": "extracted",
            "evidence": [{"data_id": data_id, "quote": quote}],
        }

    attributes: dict[str, Any] = {
        "basic_info.location": extracted(city, f"I live in {city}", 0.95),
        "basic_info.languages": rng.sample(LANGUAGES, 2),
        "work.role": extracted(role, f"I work as a {role}", 0.9),
        "work.company": extracted(company, f"at {company} for a few years now", 0.8),
        "education.degree": rng.choice(DEGREES),
        "interests.hobbies": extracted(hobbies, f"weekends are for {hobbies[0]} and {hobbies[1]}", 0.85),
        "preferences.answer_length": length,
        "communication.tone": rng.choice(TONES),
        "goals.current": extracted(rng.choice(GOALS), "my goal for this year", 0.7),
        "lifestyle.diet": rng.choice(DIETS),
    }
    return {
        "name": f"{first} {last}",
        "summary": f"{role.capitalize()} at {company} in {city}; likes {hobbies[0]}; prefers {length} answers.",
        "tags": rng.sample(TAGS, rng.randint(1, 3)),
        "attributes": attributes,
    }


def observations(patch: dict[str, Any]) -> list[str]:
    """The same profile as the peer's observation strings."""
    out = [f"name: {patch['name']}", f"summary: {patch['summary']}", f"tags: {', '.join(patch['tags'])}"]
    for key, raw in patch["attributes"].items():
        value = raw["value"] if isinstance(raw, dict) else raw
        out.append(f"{key}: {value if isinstance(value, str) else ', '.join(value)}")
    return out


# ---- seeding -------------------------------------------------------------------------------


async def seed_database(path: str, k: int, rng: random.Random, batch: int = 2000) -> None:
    """K profiles with their first revision, through the real store API, ``batch`` per transaction.

    Mirrors ``ProfileService.update_profile(create=True)``: ``apply_patch`` builds and validates
    the document, ``insert_profile`` writes the row, its tags and its full-text entry, and
    ``add_revision`` records version 1 with the service's diff.
    """
    from mcp_profiles.models import Evidence, now
    from mcp_profiles.patching import Limits, apply_patch, diff
    from mcp_profiles.store import ProfileStore

    limits = Limits()
    async with ProfileStore.open(path) as store:
        for start in range(0, k, batch):
            async with store.write() as tx:
                for i in range(start, min(k, start + batch)):
                    at = now()
                    patch = make_profile(i, rng)
                    # Provenance is the server's (a patch cannot set it): apply the plain values,
                    # then mark the extracted ones as extraction would.
                    provenance = {
                        key: attr
                        for key, attr in patch["attributes"].items()
                        if isinstance(attr, dict) and attr.get("source") == "extracted"
                    }
                    for key, attr in provenance.items():
                        patch["attributes"][key] = {"value": attr["value"], "confidence": attr["confidence"]}
                    new = apply_patch(
                        None,
                        patch,
                        profile_id=profile_id(i),
                        kind="user",
                        replace=False,
                        at=at,
                        limits=limits,
                    )
                    for key, attr in provenance.items():
                        new.attributes[key] = new.attributes[key].model_copy(
                            update={
                                "source": "extracted",
                                "evidence": [Evidence.model_validate(e) for e in attr["evidence"]],
                            }
                        )
                    new.version, new.created_at, new.updated_at = 1, at, at
                    pk = await tx.insert_profile(NAMESPACE, new)
                    await tx.add_revision(
                        NAMESPACE, pk, new, actor="agent", reason="created", changes=diff(None, new)
                    )
        await store.checkpoint()


async def seed_postgres(url: str, k: int, rng: random.Random, batch: int = 5000) -> None:
    """The same K profiles and first revisions as :func:`seed_database`, on PostgreSQL: rows
    built by the same code, sent with COPY into a staging table, then inserted set-wise with
    the store's own full-text words (``to_tsvector('simple', …)``), tags and revisions."""
    import asyncpg

    from mcp_profiles.models import Evidence, now
    from mcp_profiles.patching import Limits, apply_patch, diff
    from mcp_profiles.pgstore import PgStore, _search

    async with PgStore.open(url):  # migrate the fresh schema
        pass
    limits = Limits()
    con = await asyncpg.connect(url)
    try:
        await con.execute(
            "CREATE TEMP TABLE stage (namespace text, id text, alias text, kind text, name text, summary text, "
            "version int, created_at text, updated_at text, document text, names text, words text, tags text[], "
            "diff text)"
        )
        for start in range(0, k, batch):
            records = []
            for i in range(start, min(k, start + batch)):
                at = now()
                patch = make_profile(i, rng)
                # Provenance is the server's: apply plain values, then mark what extraction found.
                found = {
                    key: a for key, a in patch["attributes"].items() if isinstance(a, dict) and "source" in a
                }
                for key, a in found.items():
                    patch["attributes"][key] = {"value": a["value"], "confidence": a["confidence"]}
                new = apply_patch(
                    None, patch, profile_id=profile_id(i), kind="user", replace=False, at=at, limits=limits
                )
                for key, a in found.items():
                    new.attributes[key] = new.attributes[key].model_copy(
                        update={"source": a["source"], "evidence": [Evidence(**e) for e in a["evidence"]]}
                    )
                new.version, new.created_at, new.updated_at = 1, at, at
                records.append(
                    (
                        NAMESPACE, new.id, new.alias, new.kind, new.name, new.summary, 1, at, at,
                        new.model_dump_json(), *_search(new), list(new.tags),
                        json.dumps(diff(None, new), ensure_ascii=False),
                    )
                )  # fmt: skip
            async with con.transaction():
                await con.execute("TRUNCATE stage")
                await con.copy_records_to_table("stage", records=records)
                await con.execute(
                    "INSERT INTO profiles (namespace, id, alias, kind, name, summary, version, created_at, "
                    "updated_at, document, search) SELECT namespace, id, alias, kind, name, summary, version, "
                    "created_at, updated_at, document, "
                    "setweight(to_tsvector('simple', names), 'A') || to_tsvector('simple', words) FROM stage"
                )
                await con.execute(
                    "INSERT INTO profile_tags (namespace, tag, id, profile_pk) SELECT s.namespace, t.tag, s.id, "
                    "p.pk FROM stage s JOIN profiles p ON p.namespace = s.namespace AND p.id = s.id, "
                    "unnest(s.tags) AS t(tag) ON CONFLICT DO NOTHING"
                )
                await con.execute(
                    "INSERT INTO revisions (profile_pk, version, namespace, actor, reason, changed_at, diff, "
                    "snapshot) SELECT p.pk, 1, s.namespace, 'agent', 'created', s.updated_at, s.diff, s.document "
                    "FROM stage s JOIN profiles p ON p.namespace = s.namespace AND p.id = s.id"
                )
        await con.execute("ANALYZE")
    finally:
        await con.close()


async def prepare_pg(base_url: str, k: int) -> tuple[str, float]:
    """A freshly seeded schema ``bench_k{K}`` in the database of ``base_url``; its URL."""
    import asyncpg

    schema = f"bench_k{k}"
    con = await asyncpg.connect(base_url)
    try:
        await con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    finally:
        await con.close()
    url = f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}"
    start = time.perf_counter()
    await seed_postgres(url, k, random.Random(k))
    return url, time.perf_counter() - start


async def pg_bytes(url: str) -> int:
    """Tables, indexes and TOAST of the bench schema."""
    import asyncpg

    con = await asyncpg.connect(url)
    try:
        return int(
            await con.fetchval(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            )
        )
    finally:
        await con.close()


def seed_fingerprint() -> str:
    """Changes whenever a cached seed could differ: the generator or the migrations."""
    from importlib import resources

    digest = hashlib.sha256(f"seed v{SEED_VERSION}".encode())
    folder = resources.files("mcp_profiles") / "migrations"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            digest.update(entry.name.encode() + entry.read_bytes())
    return digest.hexdigest()[:10]


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def prepare_db(workdir: Path, k: int, reseed: bool) -> tuple[Path, float | None]:
    """A fresh copy of the seeded database for K (seeded now, or cached from an earlier run).

    Returns the copy and the seeding time (None when the cached seed was used).
    """
    seed = workdir / f"seed-{k}-{seed_fingerprint()}.sqlite3"
    for stale in workdir.glob(f"seed-{k}-*.sqlite3"):
        if stale != seed:
            remove_db(stale)
    seconds = None
    if reseed or not seed.exists():
        partial = workdir / f"seeding-{k}.sqlite3"
        remove_db(partial)
        start = time.perf_counter()
        await seed_database(str(partial), k, random.Random(k))
        seconds = time.perf_counter() - start
        remove_db(seed)
        partial.rename(seed)
    db = workdir / f"profiles-{k}.sqlite3"
    remove_db(db)
    shutil.copyfile(seed, db)
    return db, seconds


def disk_bytes(path: Path) -> int:
    """Database plus WAL after a truncating checkpoint."""
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


# ---- processes -----------------------------------------------------------------------------


def children_of(parent: int) -> dict[int, str]:
    """Live child processes of ``parent`` and their command lines, from /proc."""
    found: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                continue
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry.name)] = cmdline
    return found


def server_pid(marker: str) -> int:
    """The pid of our stdio child whose command line contains ``marker``."""
    pids = [pid for pid, cmd in children_of(os.getpid()).items() if marker in cmd]
    if len(pids) != 1:
        raise RuntimeError(f"expected one child process running {marker!r}, found {pids}")
    return pids[0]


def peak_rss_mib(pid: int) -> float:
    """``VmHWM`` (peak resident set) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_command() -> str:
    """The installed ``mcp-profiles`` script of this interpreter (not a version-manager shim)."""
    script = Path(sysconfig.get_path("scripts")) / "mcp-profiles"
    if script.exists():
        return str(script)
    found = shutil.which("mcp-profiles")
    if found is None:
        raise SystemExit("mcp-profiles is not installed: pip install -e '.[test]'")
    return found


def import_baseline() -> tuple[float, float, float]:
    """``python -c "import mcp.server"`` in the server's environment: wall seconds until the
    import is done, wall seconds until the process has exited (the baseline of the target:
    it includes the interpreter's exit), and CPU seconds of the whole process."""
    code = "import mcp.server, sys; sys.stdout.write('imported\\n'); sys.stdout.flush()"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=get_default_environment(), stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    loaded = time.perf_counter() - start
    proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    exited = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError("python -c 'import mcp.server' failed")
    return loaded, exited, usage.ru_utime + usage.ru_stime


# ---- measuring -------------------------------------------------------------------------------


def pct(samples: list[float], q: int) -> float:
    """The q-th percentile (inclusive method), in the samples' unit."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def summarize(name: str, samples: list[float], into: Metrics, qs: tuple[int, ...] = (50, 95, 99)) -> None:
    """Percentiles of latencies (seconds) as milliseconds under ``name_pNN_ms``."""
    for q in qs:
        into[f"{name}_p{q}_ms"] = pct(samples, q) * 1000


Op = Callable[[int], Awaitable[Any]]


async def timed(fn: Op, n: int, budget: float = 30.0) -> list[float]:
    """Call ``fn(i)`` up to ``n`` times one after another (stopping after ``budget`` seconds, at
    least 5 calls); returns each call's latency in seconds."""
    out: list[float] = []
    deadline = time.perf_counter() + budget
    for i in range(n):
        start = time.perf_counter()
        await fn(i)
        out.append(time.perf_counter() - start)
        if len(out) >= 5 and start > deadline:
            break
    return out


async def throughput(fn: Op, total: int, in_flight: int) -> float:
    """Requests per second with ``in_flight`` requests outstanding over one session."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < total:
            i = next_index
            next_index += 1
            await fn(i)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(in_flight):
            tg.start_soon(worker)
    return total / (time.perf_counter() - start)


def check(result: CallToolResult) -> CallToolResult:
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise RuntimeError(f"tool error: {text}")
    return result


@dataclass
class Workload:
    """How many requests each measurement makes, and how to connect."""

    mode: Mode = "auto"
    reads: int = 300
    writes: int = 200
    lists: int = 60
    throughput: int = 240
    writes_per_writer: int = 5
    cold_starts: int = 3
    floor: int = 200
    peer_reads: int = 60
    peer_writes: int = 60
    peer_lists: int = 5


@asynccontextmanager
async def connect(params: StdioServerParameters, log: TextIO, work: Workload) -> AsyncIterator[Client]:
    """``Client(StdioServerParameters(...))``, with the server's stderr sent to a log file."""
    async with Client(stdio_client(params, errlog=log), mode=work.mode) as client:
        yield client


@dataclass
class Result:
    """Per-run metrics, then their medians."""

    runs: list[Metrics] = field(default_factory=list)

    def median(self) -> Metrics:
        keys = [k for k in self.runs[0] if all(k in r for r in self.runs)]
        return {k: statistics.median(r[k] for r in self.runs) for k in keys}


async def cold_start(
    params: StdioServerParameters, marker: str, log: TextIO, work: Workload
) -> tuple[float, float]:
    """Wall seconds from spawning the server to the answer of its first ``tools/list``, and the
    CPU seconds the server used until then."""
    start = time.perf_counter()
    async with connect(params, log, work) as client:
        await client.list_tools()
        wall = time.perf_counter() - start
        return wall, cpu_seconds(server_pid(marker))


async def measure_cold_start(
    params: StdioServerParameters, marker: str, log: TextIO, work: Workload
) -> Metrics:
    """Server cold starts interleaved with the import baseline, so drift hits both alike."""
    walls, cpus, loaded, exited, base_cpus = [], [], [], [], []
    for _ in range(work.cold_starts):
        import_done, exit_done, cpu = import_baseline()
        loaded.append(import_done)
        exited.append(exit_done)
        base_cpus.append(cpu)
        wall, cpu = await cold_start(params, marker, log, work)
        walls.append(wall)
        cpus.append(cpu)
    m = {
        "cold_start_s": statistics.median(walls),
        "import_mcp_server_s": statistics.median(exited),
        "import_mcp_server_loaded_s": statistics.median(loaded),
        "cold_start_cpu_s": statistics.median(cpus),
        "import_mcp_server_cpu_s": statistics.median(base_cpus),
    }
    m["cold_start_ratio"] = m["cold_start_s"] / m["import_mcp_server_s"]
    m["cold_start_loaded_ratio"] = m["cold_start_s"] / m["import_mcp_server_loaded_s"]
    m["cold_start_cpu_ratio"] = m["cold_start_cpu_s"] / m["import_mcp_server_cpu_s"]
    return m


async def measure_floor(log: TextIO, work: Workload) -> Metrics:
    """The trivial server's tool call and resource read, measured like ours."""
    params = StdioServerParameters(command=sys.executable, args=[str(FLOOR_SERVER)])
    m: Metrics = {}
    async with connect(params, log, work) as client:
        await client.list_tools()

        async def call(i: int) -> None:
            check(await client.call_tool("echo", {"profile": profile_id(i)}))

        async def read(i: int) -> None:
            await client.read_resource(f"floor://{profile_id(i)}")

        for i in range(10):
            await call(i)
            await read(i)
        summarize("floor_call", await timed(call, work.floor), m, (50,))
        summarize("floor_read", await timed(read, work.floor), m, (50,))
    return m


async def run_ours(cmd: str, db: Path | str, k: int, run: int, work: Workload, log: TextIO) -> Metrics:
    """One run against fresh ``mcp-profiles serve`` processes (``db``: a file or a URL)."""
    rng = random.Random(1000 * k + run)
    params = StdioServerParameters(command=cmd, args=["serve"], env={"MCP_PROFILES_DB": str(db)})
    m = await measure_cold_start(params, cmd, log, work)
    m.update(await measure_floor(log, work))

    def rid() -> str:
        return profile_id(rng.randrange(k))

    async with connect(params, log, work) as client:
        pid = server_pid(cmd)
        m["modern_protocol"] = float(client.protocol_version >= "2026")

        async def read_resource(_: int) -> None:
            res = await client.read_resource(f"profile://{rid()}")
            content = res.contents[0]
            assert isinstance(content, TextResourceContents) and content.text.startswith("{")

        async def get_profile(_: int) -> None:
            check(await client.call_tool("get_profile", {"profile": rid()}))

        async def update(i: int) -> None:
            patch = {"attributes": {"bench.counter": f"run {run} write {i} {rng.random()}"}}
            check(await client.call_tool("update_profile", {"profile": rid(), "patch": patch}))

        async def list_first(_: int) -> None:
            check(await client.call_tool("list_profiles", {"limit": 50}))

        cursor: list[str | None] = [None]

        async def list_next(_: int) -> None:
            args: dict[str, Any] = {"limit": 50}
            if cursor[0]:
                args["cursor"] = cursor[0]
            res = check(await client.call_tool("list_profiles", args))
            assert res.structured_content is not None
            cursor[0] = res.structured_content.get("next_cursor")

        async def list_query(_: int) -> None:
            check(await client.call_tool("list_profiles", {"limit": 50, "query": rng.choice(QUERY_WORDS)}))

        # Warm-up: the client lists tools before its first call of each tool.
        await client.list_tools()
        for fn in (read_resource, get_profile, update, list_first, list_next, list_query):
            for i in range(5):
                await fn(i)
        await list_next(0)  # the cursor now points past the first page

        summarize("read_resource", await timed(read_resource, work.reads), m)
        summarize("get_profile", await timed(get_profile, work.reads), m)
        summarize("update", await timed(update, work.writes), m)
        summarize("list_first", await timed(list_first, work.lists), m)
        summarize("list_cursor", await timed(list_next, work.lists), m)
        summarize("list_query", await timed(list_query, work.lists), m)
        for n in IN_FLIGHT:
            m[f"read_ops_s_{n}"] = await throughput(get_profile, work.throughput, n)
        for n in IN_FLIGHT:
            m[f"write_ops_s_{n}"] = await throughput(update, work.throughput // 2, n)
        m.update(await lost_updates(client, f"bench-hot-{run}-{rng.randrange(10**9)}", work))
        m["peak_rss_mib"] = peak_rss_mib(pid)
        async with connect(params, log, work) as second:  # a second replica on the same database

            async def get_second(_: int) -> None:
                check(await second.call_tool("get_profile", {"profile": rid()}))

            for i in range(5):
                await get_second(i)
            half = work.throughput // 2
            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                tg.start_soon(throughput, get_profile, half, 8)
                tg.start_soon(throughput, get_second, half, 8)
            m["read_ops_s_16_two"] = 2 * half / (time.perf_counter() - start)
    if isinstance(db, str) and db.startswith("postgresql://"):
        m["disk_bytes_per_profile"] = await pg_bytes(db) / k
    else:
        m["disk_bytes_per_profile"] = disk_bytes(Path(db)) / k
    return m


async def lost_updates(client: Client, hot: str, work: Workload) -> Metrics:
    """16 concurrent writers on one profile, each setting its own attribute key."""
    check(
        await client.call_tool("update_profile", {"profile": hot, "create": True, "patch": {"name": "Hot"}})
    )
    errors = 0

    async def writer(w: int) -> None:
        nonlocal errors
        for j in range(work.writes_per_writer):
            patch = {"attributes": {f"bench.writer_{w:02d}": f"write {j}"}}
            res = await client.call_tool("update_profile", {"profile": hot, "patch": patch})
            errors += bool(res.is_error)

    async with anyio.create_task_group() as tg:
        for w in range(WRITERS):
            tg.start_soon(writer, w)
    res = check(await client.call_tool("get_profile", {"profile": hot}))
    doc = res.structured_content or {}
    expected = 1 + WRITERS * work.writes_per_writer
    attrs = doc.get("attributes", {})
    final = f"write {work.writes_per_writer - 1}"
    missing = sum(attrs.get(f"bench.writer_{w:02d}", {}).get("value") != final for w in range(WRITERS))
    return {
        "lost_updates": float(abs(expected - int(doc.get("version", 0)))),
        "lost_update_missing_keys": float(missing),
        "lost_update_errors": float(errors),
    }


# ---- the peer: @modelcontextprotocol/server-memory ---------------------------------------------


def ensure_peer() -> Path:
    """Install the reference server into bench/.peer (once) and return its entry script."""
    if not PEER_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("--peer needs node and npm")
        print(f"installing {PEER_PACKAGE} into {PEER_DIR} ...", file=sys.stderr)
        subprocess.run(
            [npm, "install", "--prefix", str(PEER_DIR), PEER_PACKAGE, "--no-audit", "--no-fund", "--silent"],
            check=True,
        )
    return PEER_JS


def peer_params(memory: Path) -> StdioServerParameters:
    # MEMORY_FILE_PATH must be absolute: a relative one resolves against the package's dist/.
    node = shutil.which("node") or "node"
    return StdioServerParameters(
        command=node, args=[str(ensure_peer())], env={"MEMORY_FILE_PATH": str(memory.resolve())}
    )


async def seed_peer(memory: Path, k: int, log: TextIO, work: Workload, chunk: int = 1000) -> None:
    """The same K profiles as entities (one observation per fact), via ``create_entities``."""
    memory.unlink(missing_ok=True)
    rng = random.Random(k)
    async with connect(peer_params(memory), log, work) as client:
        for start in range(0, k, chunk):
            entities = [
                {
                    "name": profile_id(i),
                    "entityType": "user",
                    "observations": observations(make_profile(i, rng)),
                }
                for i in range(start, min(k, start + chunk))
            ]
            check(await client.call_tool("create_entities", {"entities": entities}))


async def run_peer(memory: Path, k: int, run: int, work: Workload, log: TextIO) -> Metrics:
    """Read (open_nodes), write (add_observations) and list (read_graph) on the peer."""
    rng = random.Random(2000 * k + run)
    params = peer_params(memory)
    m: Metrics = {"cold_start_s": (await cold_start(params, str(PEER_JS), log, work))[0]}
    async with connect(params, log, work) as client:
        pid = server_pid(str(PEER_JS))

        async def read(_: int) -> None:
            check(await client.call_tool("open_nodes", {"names": [profile_id(rng.randrange(k))]}))

        async def write(i: int) -> None:
            obs = {
                "entityName": profile_id(rng.randrange(k)),
                "contents": [f"bench.counter: {run} {i} {rng.random()}"],
            }
            check(await client.call_tool("add_observations", {"observations": [obs]}))

        async def list_all(_: int) -> None:
            check(await client.call_tool("read_graph", {}))

        await client.list_tools()
        for fn in (read, write, list_all):
            for i in range(2):
                await fn(i)
        summarize("read", await timed(read, work.peer_reads), m)
        summarize("update", await timed(write, work.peer_writes), m)
        summarize("list", await timed(list_all, work.peer_lists, budget=10.0), m)
        m["peak_rss_mib"] = peak_rss_mib(pid)
    m["disk_bytes_per_profile"] = memory.stat().st_size / k
    return m


# ---- report ------------------------------------------------------------------------------------

ROWS: list[tuple[str, str, str]] = [
    # (metric key, label, format)
    ("seed_s", "seed K profiles, not timed against targets (s; — = cached seed)", "{:.1f}"),
    ("cold_start_s", "cold start: spawn → first tools/list answered (s)", "{:.3f}"),
    ("import_mcp_server_s", 'baseline: python -c "import mcp.server" (s)', "{:.3f}"),
    ("cold_start_ratio", "cold start / baseline (wall)", "{:.2f}×"),
    ("cold_start_cpu_ratio", "cold start / baseline (CPU time: less noisy)", "{:.2f}×"),
    ("import_mcp_server_loaded_s", "  baseline until imported, without the interpreter's exit (s)", "{:.3f}"),
    ("cold_start_loaded_ratio", "  cold start / that (wall)", "{:.2f}×"),
    ("read_resource_p50_ms", "read_resource profile://{id} p50 (ms)", "{:.2f}"),
    ("read_resource_p95_ms", "read_resource p95 (ms)", "{:.2f}"),
    ("read_resource_p99_ms", "read_resource p99 (ms)", "{:.2f}"),
    ("get_profile_p50_ms", "get_profile p50 (ms)", "{:.2f}"),
    ("get_profile_p95_ms", "get_profile p95 (ms)", "{:.2f}"),
    ("get_profile_p99_ms", "get_profile p99 (ms)", "{:.2f}"),
    ("update_p50_ms", "update_profile p50 (ms)", "{:.2f}"),
    ("update_p95_ms", "update_profile p95 (ms)", "{:.2f}"),
    ("update_p99_ms", "update_profile p99 (ms)", "{:.2f}"),
    ("list_first_p50_ms", "list_profiles limit 50, first page p50 (ms)", "{:.2f}"),
    ("list_first_p95_ms", "list_profiles first page p95 (ms)", "{:.2f}"),
    ("list_cursor_p50_ms", "list_profiles with cursor p50 (ms)", "{:.2f}"),
    ("list_cursor_p95_ms", "list_profiles with cursor p95 (ms)", "{:.2f}"),
    ("list_query_p50_ms", "list_profiles with query p50 (ms)", "{:.2f}"),
    ("list_query_p95_ms", "list_profiles with query p95 (ms)", "{:.2f}"),
    *[(f"read_ops_s_{n}", f"get_profile throughput, {n} in flight (ops/s)", "{:.0f}") for n in IN_FLIGHT],
    *[(f"write_ops_s_{n}", f"update_profile throughput, {n} in flight (ops/s)", "{:.0f}") for n in IN_FLIGHT],
    (
        "read_ops_s_16_two",
        "get_profile throughput, 16 in flight through two server processes (ops/s)",
        "{:.0f}",
    ),
    ("lost_updates", f"lost updates ({WRITERS} writers × 5 writes, one profile)", "{:.0f}"),
    ("lost_update_missing_keys", "  writer keys missing afterwards", "{:.0f}"),
    ("lost_update_errors", "  writes answered with an error", "{:.0f}"),
    ("peak_rss_mib", "server peak RSS, VmHWM (MiB)", "{:.1f}"),
    ("disk_bytes_per_profile", "bytes on disk per profile (db + wal, after checkpoint)", "{:,.0f}"),
    ("floor_call_p50_ms", "SDK floor: trivial tool call p50 (ms)", "{:.2f}"),
    ("floor_read_p50_ms", "SDK floor: trivial resource read p50 (ms)", "{:.2f}"),
]

PEER_ROWS: list[tuple[str, str, str]] = [
    ("cold_start_s", "peer cold start (s)", "{:.3f}"),
    ("read_p50_ms", "peer read: open_nodes p50 (ms)", "{:.2f}"),
    ("read_p95_ms", "peer read p95 (ms)", "{:.2f}"),
    ("update_p50_ms", "peer write: add_observations p50 (ms)", "{:.2f}"),
    ("update_p95_ms", "peer write p95 (ms)", "{:.2f}"),
    ("list_p50_ms", "peer list: read_graph p50 (ms)", "{:.2f}"),
    ("ratio_read", "read: peer / ours (open_nodes vs get_profile p50)", "{:.1f}×"),
    ("ratio_write", "write: peer / ours (add_observations vs update_profile p50)", "{:.1f}×"),
    ("ratio_list", "list: peer / ours (read_graph vs first 50-row page p50)", "{:.1f}×"),
    ("peak_rss_mib", "peer peak RSS (MiB)", "{:.1f}"),
    ("disk_bytes_per_profile", "peer bytes on disk per profile", "{:,.0f}"),
]


def table(rows: list[tuple[str, str, str]], data: dict[int, Metrics]) -> str:
    sizes = sorted(data)
    lines = [
        "| metric | " + " | ".join(f"K={k:,}" for k in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for key, label, fmt in rows:
        if not any(key in data[k] for k in sizes):
            continue
        cells = [fmt.format(data[k][key]) if key in data[k] else "—" for k in sizes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(ours: dict[int, Metrics], peer: dict[int, Metrics]) -> list[dict[str, Any]]:
    """Each target with the worst value over the sizes measured, and whether it is met."""
    out: list[dict[str, Any]] = []

    def verdict(name: str, value: float, k: int, limit: float, unit: str, at_least: bool = False) -> None:
        met = value >= limit if at_least else value <= limit
        out.append({"target": name, "value": value, "at_k": k, "limit": limit, "met": met, "unit": unit})

    def worst(name: str, key: str, limit: float, unit: str) -> None:
        vals = [(ours[k][key], k) for k in sorted(ours) if key in ours[k]]
        if vals:
            verdict(name, *max(vals), limit, unit)

    for m in ours.values():
        m["lost_total"] = m["lost_updates"] + m["lost_update_missing_keys"] + m["lost_update_errors"]
    worst("read_resource p50 ≤ 2 ms at every K", "read_resource_p50_ms", 2.0, "ms")
    worst("get_profile p50 ≤ 2 ms at every K", "get_profile_p50_ms", 2.0, "ms")
    worst("update_profile p50 ≤ 3 ms at every K", "update_p50_ms", 3.0, "ms")
    worst("0 lost updates (nor missing keys, nor errors)", "lost_total", 0.0, "")
    if 100_000 in ours:
        verdict("peak RSS ≤ 80 MiB at K=100,000", ours[100_000]["peak_rss_mib"], 100_000, 80.0, "MiB")
    worst("cold start ≤ 1.15 × import mcp.server (wall)", "cold_start_ratio", 1.15, "×")
    if PEER_CAP in peer:
        for key, name in (("ratio_read", "read"), ("ratio_write", "write")):
            title = f"≥ 10× faster than the peer on {name} at K={PEER_CAP:,}"
            verdict(title, peer[PEER_CAP][key], PEER_CAP, 10.0, "×", at_least=True)
    return out


def targets_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | measured (worst K) | met |", "|---|---:|:---:|"]
    for t in rows:
        at = f" at K={t['at_k']:,}" if t["at_k"] else ""
        unit = f" {t['unit']}" if t["unit"] else ""
        lines.append(f"| {t['target']} | {t['value']:.2f}{unit}{at} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m": os.getloadavg()[0],
    }


def report(out: dict[str, Any], peer_requested: bool, sizes: list[int]) -> str:
    mach = out["machine"]
    protocol = "2026-07-28" if all(m.get("modern_protocol") for m in out["ours"].values()) else "2025-11-25"
    parts = [
        f"## mcp-profiles speed — {mach['date']}",
        "",
        f"Machine: nproc {mach['nproc']}, Python {mach['python']}, {mach['platform']}; 1-minute load "
        f"average at the start {out['load_start']:.2f}, at the end {mach['load_average_1m']:.2f}. "
        f"Medians of {out['runs']} run(s), each a fresh `{out['command']}` over stdio through the SDK's "
        f"`Client` (protocol {protocol}).",
        "",
        table(ROWS, out["ours"]),
    ]
    if peer_requested:
        skipped = [f"{k:,}" for k in sizes if k > PEER_CAP]
        parts += [
            "",
            f"### Peer: {PEER_PACKAGE} (node, stdio)",
            "",
            f"K is capped at {PEER_CAP:,} for the peer: each of its operations reloads (and each write "
            "rewrites) its whole JSONL file. Its list is `read_graph`, the whole graph, against our "
            "50-row page." + (f" Not run at K = {', '.join(skipped)}." if skipped else ""),
            "",
            table(PEER_ROWS, out["peer"]) if out["peer"] else "(no size at or below the cap)",
        ]
    parts += ["", "### Targets", "", targets_table(out["targets"])]
    if out.get("postgres"):
        parts += ["", "### PostgreSQL (same run, same workload)", "", table(ROWS, out["postgres"])]
        parts += ["", "PostgreSQL / SQLite, p50 ratios (≤ 1.5× is the target):", "", pg_ratios(out)]
    return "\n".join(parts)


def pg_ratios(out: dict[str, Any]) -> str:
    """PostgreSQL p50 over SQLite p50 per K, and each backend's largest K over K = 1,000."""
    pg, lite = out["postgres"], out["ours"]
    sizes = sorted(pg)
    keys = ("read_resource_p50_ms", "get_profile_p50_ms", "update_p50_ms", "list_query_p50_ms")
    lines = ["| p50 | " + " | ".join(f"K={k:,}" for k in sizes) + " | PG flat (largest K / K=1,000) |"]
    lines.append("|---|" + "---:|" * (len(sizes) + 1))
    for key in keys:
        cells = [f"{pg[k][key] / lite[k][key]:.2f}×" for k in sizes]
        flat = f"{pg[sizes[-1]][key] / pg[1000][key]:.2f}×" if 1000 in pg and sizes[-1] != 1000 else "—"
        lines.append(f"| {key.removesuffix('_p50_ms')} | " + " | ".join(cells) + f" | {flat} |")
    two = [f"{pg[k]['read_ops_s_16_two'] / pg[k]['read_ops_s_16']:.2f}×" for k in sizes]
    lines.append("| get_profile ops/s, two replicas / one (16 in flight) | " + " | ".join(two) + " | — |")
    return "\n".join(lines)


# ---- main ----------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    work = Workload(mode=args.mode)
    if args.quick:
        work = Workload(
            mode=args.mode,
            reads=100,
            writes=60,
            lists=20,
            throughput=80,
            cold_starts=1,
            floor=60,
            peer_reads=20,
            peer_writes=20,
        )
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = args.command or server_command()
    log_path = workdir / "servers.log"
    print(f"server: {cmd} serve (stderr → {log_path})", file=sys.stderr)
    load_start = os.getloadavg()[0]
    ours: dict[int, Metrics] = {}
    peer: dict[int, Metrics] = {}
    pg: dict[int, Metrics] = {}
    raw: dict[str, Any] = {"ours": {}, "peer": {}, "postgres": {}}
    with log_path.open("a", encoding="utf-8") as log:
        for k in args.sizes:
            db, seed_s = await prepare_db(workdir, k, args.reseed)
            print(f"K={k:,}: " + (f"seeded in {seed_s:.1f} s" if seed_s else "cached seed"), file=sys.stderr)
            result = Result()
            for run in range(args.runs):
                result.runs.append(await run_ours(cmd, db, k, run, work, log))
                print(f"K={k:,}: run {run + 1}/{args.runs} done", file=sys.stderr)
            ours[k] = result.median()
            if seed_s is not None:
                ours[k]["seed_s"] = seed_s
            raw["ours"][k] = result.runs
            remove_db(db)
            if args.db:
                url, seed_pg = await prepare_pg(args.db, k)
                print(f"K={k:,}: PostgreSQL seeded in {seed_pg:.1f} s", file=sys.stderr)
                presult_pg = Result()
                for run in range(args.runs):
                    presult_pg.runs.append(await run_ours(cmd, url, k, run, work, log))
                    print(f"K={k:,}: PostgreSQL run {run + 1}/{args.runs} done", file=sys.stderr)
                pg[k] = presult_pg.median()
                pg[k]["seed_s"] = seed_pg
                raw["postgres"][k] = presult_pg.runs
            if args.peer and k <= PEER_CAP:
                memory = workdir / f"peer-memory-{k}.jsonl"
                await seed_peer(memory, k, log, work)
                presult = Result()
                for run in range(args.runs):
                    presult.runs.append(await run_peer(memory, k, run, work, log))
                    print(f"K={k:,}: peer run {run + 1}/{args.runs} done", file=sys.stderr)
                pm = presult.median()
                pm["ratio_read"] = pm["read_p50_ms"] / ours[k]["get_profile_p50_ms"]
                pm["ratio_write"] = pm["update_p50_ms"] / ours[k]["update_p50_ms"]
                pm["ratio_list"] = pm["list_p50_ms"] / ours[k]["list_first_p50_ms"]
                peer[k] = pm
                raw["peer"][k] = presult.runs
                memory.unlink(missing_ok=True)
    return {
        "machine": machine(),
        "load_start": load_start,
        "command": f"{cmd} serve",
        "mode": args.mode,
        "runs": args.runs,
        "ours": ours,
        "peer": peer,
        "postgres": pg,
        "raw": raw,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="100,1000,10000,100000",
        type=lambda s: [int(x.replace("_", "")) for x in s.split(",") if x],
        help="comma-separated profile counts K (default 100,1000,10000,100000)",
    )
    parser.add_argument("--runs", type=int, default=3, help="server runs per size; medians are reported")
    parser.add_argument("--peer", action="store_true", help=f"also bench {PEER_PACKAGE} (K ≤ {PEER_CAP:,})")
    parser.add_argument("--json", metavar="FILE", help="write every figure (and each run's) as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer requests per measurement (a smoke test)")
    parser.add_argument(
        "--mode",
        choices=("auto", "legacy"),
        default="auto",
        help="client protocol: auto (2026-07-28, the SDK default) or legacy (2025-11-25 handshake)",
    )
    parser.add_argument(
        "--command", help="server executable to run with 'serve' (default: the installed mcp-profiles)"
    )
    parser.add_argument(
        "--workdir", default=str(BENCH_DIR / ".data"), help="seeded databases and server logs"
    )
    parser.add_argument("--reseed", action="store_true", help="seed again even when a cached seed exists")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="a postgresql:// database to bench as well (schemas bench_kK are dropped and re-seeded); "
        "SQLite runs in the same run for the ratios",
    )
    args = parser.parse_args()
    out = anyio.run(bench, args)
    out["targets"] = targets(out["ours"], out["peer"])
    print(report(out, args.peer, args.sizes))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
