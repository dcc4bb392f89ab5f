"""The ``mcp-profiles`` command: serve the MCP server, and manage profiles from a terminal.

Thin: parse flags, build the configuration, call the service, print. Heavy imports (the
MCP server, the Anthropic SDK) happen only in the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from . import __version__
from .config import DEFAULT_MODEL, Config, check_prompt_bytes, parse_tokens
from .errors import Invalid, ProfilesError, TooLarge
from .service import ProfileService
from .stores import open_store, redact_url

if TYPE_CHECKING:
    from .jobs import Extractor
    from .llm import LLM

__all__ = ["main"]

Command = Callable[[argparse.Namespace, Config], Awaitable[int]]


@asynccontextmanager
async def _service(config: Config) -> AsyncIterator[ProfileService]:
    async with open_store(config.db_path) as store:
        yield ProfileService(store, config)


_WAL_PENDING = (
    "note: another process is reading the database, so the erased data is still in its write-ahead log; "
    "it is removed when that read ends and this or another server writes or closes"
)


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _more(cursor: str | None) -> None:
    """Point at the next page, if there is one (on stderr, so the rows stay pipeable)."""
    if cursor:
        print(f"… more: --cursor {cursor}", file=sys.stderr)


async def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    """Run the MCP server until the client disconnects or the process is stopped."""
    from .app import serve

    tokens = dict(config.tokens)
    if args.tokens_file:
        try:
            text = Path(args.tokens_file).read_text(encoding="utf-8")
        except OSError as e:
            raise Invalid(f"--tokens-file: cannot read {args.tokens_file}: {e.strerror}") from None
        tokens.update(parse_tokens(text))
    config = config.with_overrides(tokens=tokens)
    if args.max_prompt_bytes is not None:
        check_prompt_bytes(args.max_prompt_bytes, "--max-prompt-bytes")
        config = config.with_overrides(limits=replace(config.limits, max_prompt_bytes=args.max_prompt_bytes))
    if args.transport == "stdio" and sys.stdin.isatty():
        # The SDK reads stdin in a worker thread that a KeyboardInterrupt cannot stop, so Ctrl-C
        # would wait for a line of input. A person at a terminal has no session to lose: let the
        # signal end the process (the database is consistent at every commit; queued extraction
        # resumes on the next start).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        print(
            "mcp-profiles: serving MCP over stdio, waiting for a client on standard input (Ctrl-C stops).\n"
            "  This is the command an MCP client such as Claude Desktop starts for you; to look around, try\n"
            "  'mcp-profiles --help', or the MCP Inspector:\n"
            "  npx -y @modelcontextprotocol/inspector@0.15.0 --cli mcp-profiles serve --method tools/list",
            file=sys.stderr,
        )
    await serve(
        config,
        args.transport,
        host=args.host,
        port=args.port,
        allowed_hosts=args.allowed_host or [],
        public_url=args.public_url,
        auth_server=args.auth_server,
    )
    return 0


async def cmd_update(args: argparse.Namespace, config: Config) -> int:
    """Apply a merge patch (the same as the update_profile tool) and print what changed."""
    raw = args.patch
    if args.patch_file:
        try:
            raw = sys.stdin.read() if args.patch_file == "-" else Path(args.patch_file).read_text("utf-8")
        except OSError as e:
            raise Invalid(f"--patch-file: cannot read {args.patch_file}: {e.strerror}") from None
    try:
        patch = json.loads(raw)
    except json.JSONDecodeError as e:
        raise Invalid(f"patch: not JSON ({e.msg} at character {e.pos})") from None
    async with _service(config) as svc:
        result = await svc.update_profile(
            config.namespace,
            args.profile,
            patch,
            replace=args.replace,
            create=args.create,
            kind=args.kind,
            expected_version=args.expected_version,
            actor="cli",
        )
    doc = result.profile
    if not result.changed:
        print(f"{doc.id}: nothing changed (version {doc.version})")
    else:
        verb = "created" if result.created else "updated"
        print(f"{doc.id}: {verb}, version {doc.version}; changed: {', '.join(result.changed)}")
    return 0


async def cmd_delete(args: argparse.Namespace, config: Config) -> int:
    """Erase a profile with its history and raw data."""
    if not args.yes:
        raise Invalid(
            f"deleting {args.profile!r} erases it with its history and raw data; add --yes to confirm"
        )
    async with _service(config) as svc:
        result = await svc.delete_profile(config.namespace, args.profile)
    erased = result.erased
    print(
        f"deleted {result.id}: {erased['revisions']} version(s) and {erased['data_items']} data item(s) erased"
    )
    if result.wal_pending:
        print(_WAL_PENDING, file=sys.stderr)
    return 0


async def cmd_show(args: argparse.Namespace, config: Config) -> int:
    """Print one profile: readable text, or the JSON document with --json."""
    from .render import render_markdown

    async with _service(config) as svc:
        profile = await svc.get_profile(config.namespace, args.profile)
    if args.json:
        _print_json(profile.model_dump(mode="json"))
    else:
        print(render_markdown(profile), end="")
    return 0


async def cmd_list(args: argparse.Namespace, config: Config) -> int:
    """Print profiles, one a line (or JSON)."""
    async with _service(config) as svc:
        page, cursor = await svc.list_profiles(
            config.namespace,
            kind=args.kind,
            tag=args.tag,
            query=args.query,
            limit=args.limit,
            cursor=args.cursor,
        )
    if args.json:
        _print_json({"profiles": [p.model_dump(mode="json") for p in page], "next_cursor": cursor})
        return 0
    if not page and not args.cursor:
        print(f"no profiles found in {config.db_path} (namespace {config.namespace})", file=sys.stderr)
    for p in page:
        label = f"{p.id}" + (f" ({p.alias})" if p.alias else "")
        print(f"{label:32} {p.kind:9} v{p.version:<4} {p.name or ''}")
    _more(cursor)
    return 0


async def cmd_history(args: argparse.Namespace, config: Config) -> int:
    """Print a profile's versions, newest first."""
    async with _service(config) as svc:
        versions = await svc.history(config.namespace, args.profile, args.limit)
    if args.json:
        _print_json([v.model_dump(mode="json") for v in versions])
        return 0
    for v in versions:
        paths = ", ".join(c["path"] for c in v.changes) or "(no change)"
        print(f"v{v.version:<4} {v.changed_at}  {v.actor:10} {v.reason or '':24} {paths}")
    return 0


def _private_file(path: Path) -> TextIO:
    """A file for writing, readable by its owner only (0600, whatever the umask): exports
    hold personal data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return open(fd, "w", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


async def cmd_export(args: argparse.Namespace, config: Config) -> int:
    """Write JSON lines: each profile with every revision and raw data item."""
    to_file = args.output not in (None, "-")
    # A file is written beside its target and renamed only when complete: a failed export
    # never destroys an earlier backup.
    partial = Path(f"{args.output}.partial") if to_file else None
    out = _private_file(partial) if partial else sys.stdout
    count = 0
    try:
        async with _service(config) as svc:
            async for record in svc.export(config.namespace, args.profiles or None):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
    except BaseException:
        if partial:
            out.close()
            partial.unlink(missing_ok=True)
        raise
    if partial:
        out.close()
        os.replace(partial, args.output)
    print(f"exported {count} profile(s)", file=sys.stderr)
    return 0


async def cmd_import(args: argparse.Namespace, config: Config) -> int:
    """Read JSON lines written by export, check all of them, then restore them in one transaction.

    Exits 2 when the file is invalid (nothing is written), 1 when the database refuses it.
    """
    from .exchange import parse_export

    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as e:
        print(f"mcp-profiles: invalid: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        records = parse_export(raw, config.limits)
        async with _service(config) as svc:
            await svc.import_records(config.namespace, records)
    except ProfilesError as e:
        e.message = f"{args.file} {e.message}"
        print(f"mcp-profiles: {e}", file=sys.stderr)
        return 2 if isinstance(e, (Invalid, TooLarge)) else 1
    print(f"imported {len(records)} profile(s)", file=sys.stderr)
    return 0


async def cmd_connection(args: argparse.Namespace, config: Config) -> int:
    """Add, list or remove model provider connections."""
    async with _service(config) as svc:
        if args.action == "add":
            conn = await svc.add_connection(
                config.namespace, args.id, args.provider, name=args.name, api_key_env=args.api_key_env
            )
            print(f"added connection {conn.id} ({conn.provider_id})")
        elif args.action == "remove":
            await svc.remove_connection(config.namespace, args.id)
            print(f"removed connection {args.id}")
        else:
            conns = await svc.list_connections(config.namespace)
            if args.json:
                _print_json([c.model_dump(mode="json") for c in conns])
            for c in [] if args.json else conns:
                key = f" key from ${c.api_key_env}" if c.api_key_env else ""
                print(f"{c.id:24} {c.provider_id:12} {c.name or ''}{key}")
    return 0


@asynccontextmanager
async def _lifecycle(config: Config) -> AsyncIterator[Any]:
    from .lifecycle import Lifecycle

    async with open_store(config.db_path) as store:
        yield Lifecycle(store, config)


async def cmd_data(args: argparse.Namespace, config: Config) -> int:
    """Print a profile's data items, oldest first, with the facts each supports."""
    from .lifecycle import item_fields

    async with _lifecycle(config) as lifecycle:
        page = await lifecycle.list_data(
            config.namespace, args.profile, status=args.status, limit=args.limit, cursor=args.cursor
        )
    rows = [item_fields(item, facts) for item, facts in page.items]
    if args.json:
        _print_json({"items": rows, "next_cursor": page.next_cursor})
        return 0
    if not rows and not args.cursor:
        print(f"no data items for {args.profile}", file=sys.stderr)
    for r in rows:
        kept = "" if r["content_kept"] else " (content deleted)"
        facts = ", ".join(r["facts"]) or "-"
        print(f"{r['data_id']}  {r['received_at']}  {r['status']:10} {r['bytes']:>8} B{kept}  {facts}")
    _more(page.next_cursor)
    return 0


async def cmd_forget(args: argparse.Namespace, config: Config) -> int:
    """Erase one data item and what was derived only from it."""
    async with _lifecycle(config) as lifecycle:
        out = await lifecycle.forget_data(config.namespace, args.profile, args.data_id, actor="cli")
    print(
        f"forgot {out.data_id} of {out.profile_id}: removed facts: {', '.join(out.facts) or 'none'}; "
        f"evidence removed from: {', '.join(out.evidence) or 'none'}; "
        f"summary {'removed' if out.summary else 'kept'}; {out.revisions} version(s) of history and "
        f"{out.job_results} job result(s) rewritten; profile at version {out.version}"
    )
    if out.wal_pending:
        print(_WAL_PENDING, file=sys.stderr)
    return 0


async def cmd_prune(args: argparse.Namespace, config: Config) -> int:
    """Apply the retention settings now, in every namespace of the database."""
    async with _lifecycle(config) as lifecycle:
        counts = await lifecycle.prune()
    if args.json:
        _print_json({"data_contents": counts.data_contents, "revisions": counts.revisions})
        return 0
    if counts.wal_pending:
        print(_WAL_PENDING, file=sys.stderr)
    days = "unlimited" if config.keep_data_days is None else f"{config.keep_data_days:g} days"
    print(
        f"deleted the raw content of {counts.data_contents} processed data item(s) (kept: {days}) and "
        f"{counts.revisions} old version(s) (kept: the newest {config.keep_versions} per profile"
        + (f", none older than {config.keep_versions_days:g} days" if config.keep_versions_days else "")
        + ")"
    )
    return 0


class _Bar:
    """A one-line progress bar on a terminal; silent when stderr is not one."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.on = sys.stderr.isatty()

    async def __call__(self, done: float, total: float, message: str) -> None:
        if not self.on:
            return
        width = 24
        filled = int(width * done / total) if total else width
        sys.stderr.write(f"\r{self.label[:30]:30} [{'#' * filled}{'.' * (width - filled)}] {message[:40]:40}")
        if total and done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _no_model(config: Config) -> str:
    """Why there is no extraction model, and what to do about it."""
    if config.extraction == "none":
        return "extraction is switched off (MCP_PROFILES_EXTRACTION=none)"
    return "ANTHROPIC_API_KEY is not set"


def _usage_line(usage: dict[str, int]) -> str:
    return (
        f"{usage.get('requests', 0)} request(s), {usage.get('input_tokens', 0)} input / "
        f"{usage.get('output_tokens', 0)} output tokens"
    )


async def cmd_ingest(args: argparse.Namespace, config: Config) -> int:
    """Send files to a profile and extract them (chat exports, notes, JSON, markdown)."""
    from .runtime import llm_from_env, open_app

    texts = []
    for name in args.files:
        try:
            texts.append((name, sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            raise Invalid(f"cannot read {name}: {e}") from None
    llm = None if args.no_wait else llm_from_env(config)
    if args.batch and llm is None:
        raise Invalid(f"cannot extract with --batch: {_no_model(config)}")
    failed = 0
    async with open_app(config, llm=llm, worker=False) as app:
        if args.batch:  # queue every file, then one batch run for the profile
            profile_pk = None
            for name, text in texts:
                item, duplicate, _ = await app.extractor.submit(
                    config.namespace, args.profile, text, args.input_type, args.kind
                )
                profile_pk = item.profile_pk
                if duplicate:
                    print(f"{name}: already received as job {item.id} ({item.status}); skipped")
                else:
                    print(f"{name}: queued as job {item.id} for a batch")
            return await _run_batch(app.extractor, llm, config, profile_pk, args.poll_seconds)
        for name, text in texts:
            outcome = await app.extractor.upsert(
                config.namespace,
                args.profile,
                text,
                args.input_type,
                args.kind,
                progress=_Bar(Path(name).name),
            )
            job = outcome.job
            if outcome.status in ("updated", "unchanged"):
                print(
                    f"{name}: version {job.version}, {len(job.changes)} change(s), "
                    f"{len(job.conflicts)} conflict(s); {_usage_line(job.usage)}"
                )
            elif outcome.status == "pending" and llm is None:
                print(f"{name}: stored as job {job.job_id} (pending)")
            else:
                failed += outcome.status == "failed"
                print(f"{name}: {outcome.status}: {outcome.message}")
    if llm is None and not args.no_wait:
        print(
            f"note: {_no_model(config)}, so nothing was extracted yet; the data is kept: "
            "run 'mcp-profiles process' once a key is set",
            file=sys.stderr,
        )
    return 1 if failed else 0


async def cmd_process(args: argparse.Namespace, config: Config) -> int:
    """Extract data items that are waiting (stored without a backend, or interrupted)."""
    from .runtime import llm_from_env, open_app

    llm = llm_from_env(config)
    if llm is None:
        raise Invalid(f"cannot process: {_no_model(config)}")
    async with open_app(config, llm=llm, worker=False) as app:
        ex = app.extractor
        await ex.recover()
        if args.retry_failed:
            print(f"queued {await ex.retry_failed(config.namespace, args.profile)} failed item(s) again")
        found = None
        if args.profile:
            async with app.store.read() as tx:
                found = await tx.locate(config.namespace, args.profile)
            if found is None:
                raise Invalid(f"profile {args.profile!r} does not exist")
        if args.batch:
            return await _run_batch(ex, llm, config, found[0] if found else None, args.poll_seconds)
        if args.profile:
            results = await ex.process_profile(config.namespace, args.profile, _Bar(args.profile))
        else:
            results = await ex.drain(namespace=config.namespace)
    # this run's outcome only: items that failed in earlier runs are not this run's failures
    failed = [r for r in results if r.status == "failed"]
    waiting = [r for r in results if r.status == "pending"]
    for r in failed:
        print(f"{r.profile_id}: job {r.job_id} failed: {r.error}")
    line = f"processed {len(results)} item(s); {len(failed)} failed"
    if waiting:
        line += f", {len(waiting)} to be tried again (the model was unavailable; see 'mcp-profiles stats')"
    print(line)
    return 1 if failed else 0


async def _run_batch(
    ex: Extractor, llm: LLM | None, config: Config, profile_pk: int | None, poll_seconds: float
) -> int:
    """Extract waiting items through Message Batches, with a progress line per poll."""
    from .batches import run_batches
    from .llm import AnthropicLLM

    if not isinstance(llm, AnthropicLLM):
        raise Invalid("--batch needs the Anthropic API (ANTHROPIC_API_KEY), not the client's model")
    run = await run_batches(
        ex,
        llm,
        config.namespace,
        profile_pk=profile_pk,
        poll_seconds=poll_seconds,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(
        f"batches: {run.batches_sent} sent ({run.requests_sent} request(s)), {run.batches_resumed} resumed; "
        f"{run.answered} answered, {run.not_answered} not answered"
    )
    print(f"processed {run.items} item(s); {run.failed_items} failed (see 'mcp-profiles stats')")
    if run.requeued_items:
        print(
            f"{run.requeued_items} item(s) are back in the queue ({'; '.join(dict.fromkeys(run.errors))}); "
            "run 'mcp-profiles process --batch' again"
        )
    return 1 if run.failed_items or run.requeued_items else 0


async def cmd_copy(args: argparse.Namespace, config: Config) -> int:
    """Copy a whole database into an empty one (SQLite to PostgreSQL or back), then verify."""
    from .copying import copy_database

    bar = _Bar("copy")

    async def progress(done: int, total: int, ns: str) -> None:
        if bar.on:
            await bar(done, max(total, 1), f"{done}/{total} profiles ({ns})")
        else:  # a log, not a terminal: one line a batch
            print(f"copied {done}/{total} profiles (namespace {ns})", file=sys.stderr)

    report = await copy_database(args.source, args.target, config, progress)
    for ns, counts in report.namespaces.items():
        items = ", ".join(f"{k} {v}" for k, v in counts["items"].items()) or "no data items"
        print(
            f"{ns}: {counts['profiles']} profiles, {counts['revisions']} versions, {items}, "
            f"{counts['connections']} connections"
        )
    if not report.verified:
        for line in report.mismatches:
            print(f"mcp-profiles: mismatch: {line}", file=sys.stderr)
        return 1
    print(
        f"copied {report.profiles} profile(s) from {redact_url(args.source)} to {redact_url(args.target)}; "
        "counts and versions verified",
        file=sys.stderr,
    )
    return 0


async def cmd_compact(args: argparse.Namespace, config: Config) -> int:
    """Rewrite the database files so that erased data leaves them (PostgreSQL: VACUUM FULL)."""
    async with open_store(config.db_path) as store:
        result = await store.compact()
    if args.json:
        _print_json(result)
        return 0
    print(
        f"compacted ({result['backend']}): {result['bytes_before']} bytes before, {result['bytes_after']} after"
    )
    return 0


async def cmd_stats(args: argparse.Namespace, config: Config) -> int:
    """Profiles, versions, data items by status, and tokens spent."""
    async with _service(config) as svc:
        stats = await svc.stats(config.namespace)
    if args.json:
        _print_json(stats)
        return 0
    print(f"database   {redact_url(config.db_path)}")
    print(f"namespace  {config.namespace}")
    print(f"profiles   {stats['profiles']}")
    print(f"versions   {stats['versions']}")
    items = ", ".join(f"{k} {v}" for k, v in sorted(stats["items"].items())) or "none"
    print(f"data items {items}")
    u = stats["usage"]
    print(
        f"LLM usage  {u['requests']} requests, {u['input_tokens']} input tokens, {u['output_tokens']} output, "
        f"{u['cache_read_input_tokens']} cache read, {u['cache_creation_input_tokens']} cache write"
        + (f"; {u['batch_requests']} at the batch rate (half price)" if u.get("batch_requests") else "")
    )
    pc = stats["prompt_cache"]
    sizes = ", ".join(f"{kind} {n}" for kind, n in pc["prefix_tokens"].items())
    print(
        f"prompt cache {pc['model']}: minimum {pc['min_cacheable_tokens']} tokens ({pc['minimum_source']}); "
        f"cached prefix about {sizes} tokens: {'cacheable' if pc['cacheable'] else 'too short, not cached'}"
    )
    for row in stats["top_profiles_by_tokens"][:10]:
        print(f"  {row['id']:30} {row['items']} items, {row['input_tokens']} in / {row['output_tokens']} out")
    return 0


def _attempts(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, not {raw!r}")
    return value


def _max_attempts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-attempts",
        type=_attempts,
        metavar="N",
        help="tries per data item when the model is rate limited, overloaded or unreachable, with "
        "exponential backoff (env MCP_PROFILES_MAX_ATTEMPTS; default 5)",
    )


def _batch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch",
        action="store_true",
        help="send the work as Message Batches (half price, answered within 24 hours); an interrupted "
        "run resumes its batches without sending them again",
    )
    p.add_argument(
        "--poll-seconds", type=float, default=30.0, help="with --batch: seconds between status checks"
    )


def _page_flags(parser: argparse.ArgumentParser, noun: str) -> None:
    """--limit, --cursor and --json of a paged listing of ``noun``."""
    parser.add_argument("--limit", type=int, default=50, help=f"{noun} per page, 1-200 (default 50)")
    parser.add_argument("--cursor", help="continue after a previous page (printed when there are more)")
    parser.add_argument("--json", action="store_true", help=f"print {{{noun}, next_cursor}} as JSON")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        metavar="FILE|URL",
        help="database file, or a postgresql:// URL (env MCP_PROFILES_DB; default: profiles.sqlite3 in "
        "the user data directory)",
    )
    common.add_argument(
        "--namespace",
        metavar="NAME",
        help="tenant namespace (env MCP_PROFILES_NAMESPACE; default 'default')",
    )
    return common


_ENVIRONMENT = """\
environment:
  MCP_PROFILES_DB          database file or postgresql:// URL for every command, serve included (same as --db)
  ANTHROPIC_API_KEY        lets the server, ingest and process extract facts from raw data with Claude
  MCP_PROFILES_MODEL       extraction model (default %(model)s)
  MCP_PROFILES_NAMESPACE   tenant namespace (default 'default')
  MCP_PROFILES_TOKENS      HTTP bearer tokens: 'TOKEN=NAMESPACE,TOKEN2=NAMESPACE2'
  MCP_PROFILES_EXTRACTION  'none' turns extraction off even with a key
  MCP_PROFILES_MAX_PROMPT_BYTES  bound of a rendered prompt (default 32768, same as serve --max-prompt-bytes)
  MCP_PROFILES_KEEP_DATA_DAYS, MCP_PROFILES_KEEP_VERSIONS, MCP_PROFILES_KEEP_VERSIONS_DAYS
                           retention of raw data and of old versions (see 'prune --help')

examples:
  mcp-profiles serve                        # what an MCP client (Claude Desktop) runs, over stdio
  mcp-profiles list                         # the stored profiles
  mcp-profiles show alice                   # one profile as readable text (--json for the document)
  mcp-profiles ingest alice chat.txt --input-type "chat history"
  mcp-profiles stats                        # where the database is, counts, tokens spent

'mcp-profiles COMMAND --help' describes each command.
"""


def _sub(
    sub: Any, name: str, summary: str, description: str, examples: str = "", common: bool = True
) -> argparse.ArgumentParser:
    """A (sub)command with a one-line summary, a wrapped description and examples."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        parents=[_common()] if common else [],
        help=summary,
        description=textwrap.fill(description, 80),
        epilog=f"examples:\n{examples}" if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="mcp-profiles",
        description=textwrap.fill(
            "An MCP server that keeps user profiles (who a person is) and assistant profiles (who the "
            "assistant is, and which model and settings it runs with). 'mcp-profiles serve' is what an MCP "
            "client such as Claude Desktop runs; the other commands manage the same profiles from a terminal.",
            80,
        ),
        epilog=_ENVIRONMENT % {"model": DEFAULT_MODEL},
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mcp-profiles {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _sub(
        sub,
        "serve",
        "run the MCP server (stdio by default)",
        "Run the MCP server until the client disconnects or the process is stopped. Over stdio (the "
        "default) an MCP client starts it and talks on standard input and output; over http (streamable "
        "HTTP, endpoint /mcp) or sse (endpoint /sse) it listens on --host and --port, with bearer tokens "
        "mapped to namespaces and GET /healthz for monitoring.",
        "  mcp-profiles serve\n"
        "  mcp-profiles serve --transport http --port 8000\n"
        "  mcp-profiles serve --transport http --host 0.0.0.0 --tokens-file tokens "
        "--allowed-host profiles.example.com",
    )
    p.add_argument(
        "--transport",
        choices=["stdio", "sse", "http"],
        default="stdio",
        help="stdio for a client that starts the server (default); http for streamable HTTP; sse for "
        "the older SSE transport",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on for http/sse (default 127.0.0.1); anything beyond loopback needs tokens",
    )
    p.add_argument("--port", type=int, default=8000, help="port to listen on for http/sse (default 8000)")
    p.add_argument(
        "--tokens-file",
        metavar="FILE",
        help="bearer tokens for http/sse: one 'TOKEN NAMESPACE' pair a line, '#' comments "
        "(added to MCP_PROFILES_TOKENS)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a Host name clients use, e.g. profiles.example.com (repeatable; http/sse); requests for "
        "other names are refused. Required with --host 0.0.0.0",
    )
    p.add_argument(
        "--max-prompt-bytes",
        type=int,
        metavar="N",
        help="the most a rendered prompt (personalize, review_profile, remember) may hold, in UTF-8 bytes; "
        "longer parts are cut with a note (env MCP_PROFILES_MAX_PROMPT_BYTES; default 32768)",
    )
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="the URL clients reach this server at, e.g. https://profiles.example.com (http/sse); names the "
        "protected resource in OAuth metadata",
    )
    p.add_argument(
        "--auth-server",
        metavar="URL",
        help="an OAuth authorization server whose tokens are listed in the bearer tokens (http/sse); only "
        "then is OAuth protected-resource metadata published. Needs --public-url",
    )
    _max_attempts(p)
    p.set_defaults(func=cmd_serve)

    p = _sub(
        sub,
        "update",
        "edit or create a profile with a JSON merge patch",
        "Apply a JSON merge patch (RFC 7396) to a profile, exactly like the update_profile tool: null "
        "deletes a key; under 'attributes' a plain value is a fact set by hand. --create makes the profile "
        "when it does not exist; --replace makes the patch the whole new document.",
        '  mcp-profiles update alice --create --patch \'{"name": "Alice", "attributes": '
        '{"work.role": "engineer"}}\'\n'
        '  mcp-profiles update alice --patch \'{"attributes": {"work.role": null}}\'\n'
        "  mcp-profiles update content-assistant --create --kind assistant --patch-file assistant.json",
    )
    p.add_argument("profile", help="id or alias")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--patch", help="the patch as a JSON object")
    source.add_argument(
        "--patch-file", metavar="FILE", help="read the patch from a file (- for standard input)"
    )
    p.add_argument("--create", action="store_true", help="create the profile when it does not exist")
    p.add_argument("--replace", action="store_true", help="the patch is the whole new document")
    p.add_argument("--kind", choices=["user", "assistant"], help="the kind of a profile being created")
    p.add_argument(
        "--expected-version", type=int, metavar="N", help="fail unless the profile is at version N"
    )
    p.set_defaults(func=cmd_update)

    p = _sub(
        sub,
        "delete",
        "erase a profile, its history and its raw data",
        "Erase a profile with every version and every data item sent for it. Nothing of it stays readable "
        "in the database file. This cannot be undone: export it first if you may need it.",
        "  mcp-profiles export alice -o alice.jsonl\n  mcp-profiles delete alice --yes",
    )
    p.add_argument("profile", help="id or alias")
    p.add_argument("--yes", action="store_true", help="confirm the erasure")
    p.set_defaults(func=cmd_delete)

    p = _sub(
        sub,
        "show",
        "print a profile",
        "Print one profile: readable text (summary, facts by topic, configuration), or the JSON "
        "document with --json.",
        "  mcp-profiles show alice\n  mcp-profiles show content-assistant --json",
    )
    p.add_argument("profile", help="profile id or alias")
    p.add_argument("--json", action="store_true", help="print the JSON document instead of text")
    p.set_defaults(func=cmd_show)

    p = _sub(
        sub,
        "list",
        "list or search profiles",
        "List profiles, one a line: id (alias), kind, version and name; in id order, or by relevance "
        "with --query.",
        '  mcp-profiles list --kind user\n  mcp-profiles list --query "backend engineer" --json',
    )
    p.add_argument("--kind", choices=["user", "assistant"], help="only user or only assistant profiles")
    p.add_argument("--tag", help="only profiles with this tag")
    p.add_argument("--query", help="full-text search over name, alias, summary and facts")
    _page_flags(p, "profiles")
    p.set_defaults(func=cmd_list)

    p = _sub(
        sub,
        "history",
        "a profile's versions",
        "Print a profile's versions, newest first: version, time, actor (agent or extraction), reason "
        "and the changed paths.",
        "  mcp-profiles history alice --limit 5",
    )
    p.add_argument("profile", help="profile id or alias")
    p.add_argument("--limit", type=int, default=20, help="how many versions (default 20)")
    p.add_argument("--json", action="store_true", help="print the versions with their changes as JSON")
    p.set_defaults(func=cmd_history)

    p = _sub(
        sub,
        "export",
        "export profiles with history and raw data as JSON lines",
        "Write one JSON line per profile: the document, every revision and every raw data item. "
        "'mcp-profiles import' restores it losslessly (for backups and moving between databases).",
        "  mcp-profiles export -o backup.jsonl\n  mcp-profiles export alice bob > two.jsonl",
    )
    p.add_argument("profiles", nargs="*", help="ids or aliases to export (default: every profile)")
    p.add_argument("-o", "--output", metavar="FILE", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = _sub(
        sub,
        "import",
        "import JSON lines written by export",
        "Restore profiles written by 'mcp-profiles export'. Every line is checked first (exit code 2 "
        "and 'invalid: FILE line N: field: …' when one is wrong), then the whole file is restored in one "
        "transaction: a profile that already exists is a conflict (exit code 1), and nothing is written.",
        "  mcp-profiles import backup.jsonl --db restored.sqlite3\n"
        "  mcp-profiles export --db old.sqlite3 | mcp-profiles import - --db new.sqlite3",
    )
    p.add_argument("file", help="file to read, or - for standard input")
    p.set_defaults(func=cmd_import)

    p = _sub(
        sub,
        "connection",
        "manage model provider connections",
        "Connections name the model providers assistant profiles use (their connection_id). Secrets "
        "are never stored: only the name of the environment variable that holds the API key.",
        "  mcp-profiles connection add anthropic-main --provider anthropic --api-key-env ANTHROPIC_API_KEY\n"
        "  mcp-profiles connection list\n  mcp-profiles connection remove anthropic-main",
        common=False,
    )
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = _sub(csub, "add", "add a connection", "Add a model provider connection.")
    c.add_argument("id", help="connection id, used as connection_id in assistant profiles")
    c.add_argument("--provider", required=True, help="provider id, e.g. anthropic")
    c.add_argument("--name", help="a readable name")
    c.add_argument("--api-key-env", metavar="VAR", help="environment variable that holds the API key")
    c = _sub(csub, "list", "list connections", "List connections: id, provider, name, key variable.")
    c.add_argument("--json", action="store_true", help="print the connections as JSON")
    c = _sub(
        csub,
        "remove",
        "remove a connection no profile uses",
        "Remove a connection; refused while an assistant profile uses it.",
    )
    c.add_argument("id", help="connection id")
    p.set_defaults(func=cmd_connection)

    p = _sub(
        sub,
        "ingest",
        "extract files into a profile (needs ANTHROPIC_API_KEY)",
        "Send files to a profile and extract what they say about its subject with Claude (chat exports, "
        "notes, activity logs, JSON, markdown), like the upsert_profile_from_data tool. Each fact keeps a "
        "quote from the data as evidence; values set by hand are never overwritten. A progress bar shows "
        "on a terminal. The same file sent twice is recognised and skipped. Without ANTHROPIC_API_KEY the "
        "data is stored and 'mcp-profiles process' extracts it later.",
        '  mcp-profiles ingest alice chat-2026-05.txt --input-type "chat history"\n'
        '  mcp-profiles ingest content-assistant persona.md --input-type "character description"\n'
        "  cat notes.txt | mcp-profiles ingest alice -",
    )
    p.add_argument("profile", help="id or alias (created when missing, as a user profile unless --kind)")
    p.add_argument("files", nargs="+", metavar="FILE", help="text files to read, or - for standard input")
    p.add_argument(
        "--input-type", help="what the files are: 'chat history', 'activity log', 'character description', …"
    )
    p.add_argument(
        "--kind", choices=["user", "assistant"], help="kind of profile to create when it is missing"
    )
    p.add_argument("--no-wait", action="store_true", help="only store the data; extract later with 'process'")
    _max_attempts(p)
    _batch_args(p)
    p.set_defaults(func=cmd_ingest)

    p = _sub(
        sub,
        "process",
        "extract waiting data items (needs ANTHROPIC_API_KEY)",
        "Extract data items that are waiting: stored without a model (ingest --no-wait, or a server "
        "without a key), interrupted, or waiting for a retry. Exits 1 when an item of this run failed; its data "
        "is kept.",
        "  mcp-profiles process\n  mcp-profiles process alice --retry-failed",
    )
    p.add_argument("profile", nargs="?", help="only this profile (default: every profile with waiting items)")
    p.add_argument("--retry-failed", action="store_true", help="queue failed items again first")
    _max_attempts(p)
    _batch_args(p)
    p.set_defaults(func=cmd_process)

    p = _sub(
        sub,
        "stats",
        "counts and LLM token usage",
        "Print the database file, the number of profiles and versions, data items by status "
        "(pending, processing, done, failed, duplicate) and the tokens extraction spent, in total and "
        "for the top profiles.",
        "  mcp-profiles stats\n  mcp-profiles stats --json",
    )
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(func=cmd_stats)

    p = _sub(
        sub,
        "data",
        "a profile's raw data items",
        "Print the data items sent for a profile (upsert_profile_from_data, ingest), oldest first: id, "
        "when it arrived, status, size, whether retention deleted its content, and the facts whose "
        "evidence cites it. Use an id with 'mcp-profiles forget'.",
        "  mcp-profiles data alice\n  mcp-profiles data alice --status failed --json",
    )
    p.add_argument("profile", help="profile id or alias")
    p.add_argument(
        "--status", choices=["pending", "processing", "done", "failed"], help="only items in this state"
    )
    _page_flags(p, "items")
    p.set_defaults(func=cmd_data)

    p = _sub(
        sub,
        "forget",
        "erase one data item and what was derived only from it",
        "Erase one data item: its content, the facts only it supports, its evidence on facts other items "
        "support too, an extracted summary it contributed to, and its values in the history (which keeps "
        "a 'forgotten' marker). Facts set by hand stay. Nothing of it stays readable in the database "
        "files. This cannot be undone.",
        "  mcp-profiles data alice\n  mcp-profiles forget alice d_0123456789abcdef0123",
    )
    p.add_argument("profile", help="profile id or alias")
    p.add_argument("data_id", help="the data item's id (see 'mcp-profiles data')")
    p.set_defaults(func=cmd_forget)

    p = _sub(
        sub,
        "prune",
        "apply the retention settings now",
        "Delete the raw content of data items processed more than MCP_PROFILES_KEEP_DATA_DAYS ago (they "
        "keep id, sha256, status and usage, so the same data is still recognised), and versions beyond "
        "MCP_PROFILES_KEEP_VERSIONS per profile or older than MCP_PROFILES_KEEP_VERSIONS_DAYS, in every "
        "namespace of the database. Pending and failed items are never touched. The server does the same "
        "every MCP_PROFILES_PRUNE_INTERVAL seconds.",
        "  mcp-profiles prune\n  MCP_PROFILES_KEEP_DATA_DAYS=0 MCP_PROFILES_KEEP_VERSIONS=10 mcp-profiles prune --json",
    )
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(func=cmd_prune)

    p = _sub(
        sub,
        "copy",
        "copy a whole database to another backend",
        "Copy every namespace of one database (profiles with every kept version, raw data items, "
        "connections) into an empty one, for example from SQLite to PostgreSQL. Shows progress, then "
        "counts both sides and compares every profile's version; exits 1 on any difference.",
        "  mcp-profiles copy --from profiles.sqlite3 --to postgresql://app@db.internal/profiles\n"
        "  mcp-profiles copy --from 'postgresql://app@/profiles?host=/run/postgresql' --to backup.sqlite3",
        common=False,
    )
    p.add_argument("--from", dest="source", required=True, metavar="FILE|URL", help="database to read")
    p.add_argument("--to", dest="target", required=True, metavar="FILE|URL", help="empty database to write")
    p.set_defaults(func=cmd_copy)

    p = _sub(
        sub,
        "compact",
        "rewrite the database files (VACUUM)",
        "Rewrite the database so that space is returned and erased data leaves the files. On PostgreSQL "
        "this is VACUUM FULL of every table (it locks them while it runs): deleted rows stay in table "
        "and index files until then. On SQLite, VACUUM and an emptied WAL.",
        "  mcp-profiles compact --db 'postgresql://app@/profiles?host=/run/postgresql'",
    )
    p.add_argument("--json", action="store_true", help="print the sizes as JSON")
    p.set_defaults(func=cmd_compact)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mcp-profiles`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = Config.from_env().with_overrides(
            db=getattr(args, "db", None),
            namespace=getattr(args, "namespace", None),
            max_attempts=getattr(args, "max_attempts", None),
        )
        func: Command = args.func
        return anyio.run(func, args, config)
    except ProfilesError as e:
        print(f"mcp-profiles: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
