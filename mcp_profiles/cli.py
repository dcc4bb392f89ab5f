"""The ``mcp-profiles`` command: serve the MCP server, and manage profiles from a terminal.

Thin: parse flags, build the configuration, call the service, print. Heavy imports (the
MCP server, the Anthropic SDK) happen only in the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from . import __version__
from .config import Config, parse_tokens
from .errors import Invalid, ProfilesError
from .service import ProfileService
from .store import ProfileStore

__all__ = ["main"]

Command = Callable[[argparse.Namespace, Config], Awaitable[int]]


@asynccontextmanager
async def _service(config: Config) -> AsyncIterator[ProfileService]:
    async with ProfileStore.open(config.db_path) as store:
        yield ProfileService(store, config)


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


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
    await serve(config, args.transport, host=args.host, port=args.port, allowed_hosts=args.allowed_host or [])
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
    for p in page:
        label = f"{p.id}" + (f" ({p.alias})" if p.alias else "")
        print(f"{label:32} {p.kind:9} v{p.version:<4} {p.name or ''}")
    if cursor:
        print(f"… more: --cursor {cursor}", file=sys.stderr)
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


async def cmd_export(args: argparse.Namespace, config: Config) -> int:
    """Write JSON lines: each profile with every revision and raw data item."""
    out = open(args.output, "w", encoding="utf-8") if args.output not in (None, "-") else sys.stdout  # noqa: SIM115
    count = 0
    try:
        async with _service(config) as svc:
            async for record in svc.export(config.namespace, args.profiles or None):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {count} profile(s)", file=sys.stderr)
    return 0


async def cmd_import(args: argparse.Namespace, config: Config) -> int:
    """Read JSON lines written by export; each profile is restored in its own transaction."""
    try:
        lines = sys.stdin.readlines() if args.file == "-" else Path(args.file).read_text("utf-8").splitlines()
    except OSError as e:
        raise Invalid(f"cannot read {args.file}: {e.strerror}") from None
    records = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise Invalid(f"{args.file} line {n}: not JSON ({e.msg})") from None
    async with _service(config) as svc:
        for n, record in records:
            try:
                await svc.import_record(config.namespace, record)
            except ProfilesError as e:
                e.message = f"{args.file} line {n}: {e.message}"
                raise
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


def _usage_line(usage: dict[str, int]) -> str:
    return (
        f"{usage.get('requests', 0)} request(s), {usage.get('input_tokens', 0)} input / "
        f"{usage.get('output_tokens', 0)} output tokens"
    )


async def cmd_ingest(args: argparse.Namespace, config: Config) -> int:
    """Send files to a profile and extract them (chat exports, notes, JSON, markdown)."""
    from .jobs import NO_BACKEND
    from .runtime import llm_from_env, open_app

    texts = []
    for name in args.files:
        try:
            texts.append((name, sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            raise Invalid(f"cannot read {name}: {e}") from None
    llm = None if args.no_wait else llm_from_env(config)
    failed = 0
    async with open_app(config, llm=llm, worker=False) as app:
        ex = app.extractor
        for name, text in texts:
            item, duplicate, _ = await ex.submit(
                config.namespace, args.profile, text, args.input_type, args.kind
            )
            if duplicate:
                print(f"{name}: already received as job {item.id} ({item.status}); skipped")
                continue
            if llm is None:
                print(f"{name}: stored as job {item.id} (pending)")
                continue
            result = await ex.wait_for(config.namespace, item, _Bar(Path(name).name))
            if result.status == "failed":
                failed += 1
                print(f"{name}: failed: {result.error} (data kept as job {item.id})")
            else:
                print(
                    f"{name}: version {result.version}, {len(result.changes)} change(s), "
                    f"{len(result.conflicts)} conflict(s); {_usage_line(result.usage)}"
                )
    if llm is None and not args.no_wait:
        print(f"note: {NO_BACKEND}", file=sys.stderr)
    return 1 if failed else 0


async def cmd_process(args: argparse.Namespace, config: Config) -> int:
    """Extract data items that are waiting (stored without a backend, or interrupted)."""
    from .jobs import NO_BACKEND
    from .runtime import llm_from_env, open_app

    llm = llm_from_env(config)
    if llm is None:
        raise Invalid(f"cannot process: {NO_BACKEND}")
    async with open_app(config, llm=llm, worker=False) as app:
        ex = app.extractor
        await ex.recover()
        if args.retry_failed:
            print(f"queued {await ex.retry_failed(config.namespace, args.profile)} failed item(s) again")
        if args.profile:
            async with app.store.read() as tx:
                found = await tx.locate(config.namespace, args.profile)
            if found is None:
                raise Invalid(f"profile {args.profile!r} does not exist")
            results = await ex.process(config.namespace, found[0], _Bar(args.profile))
            count, failed = len(results), sum(r.status == "failed" for r in results)
        else:
            count = await ex.drain()
            stats = await app.service.stats(config.namespace)
            failed = stats["items"].get("failed", 0)
    print(f"processed {count} item(s); {failed} failed (see 'mcp-profiles stats')")
    return 1 if failed else 0


async def cmd_stats(args: argparse.Namespace, config: Config) -> int:
    """Profiles, versions, data items by status, and tokens spent."""
    async with _service(config) as svc:
        stats = await svc.stats(config.namespace)
    if args.json:
        _print_json(stats)
        return 0
    print(f"database   {config.db_path}")
    print(f"namespace  {config.namespace}")
    print(f"profiles   {stats['profiles']}")
    print(f"versions   {stats['versions']}")
    items = ", ".join(f"{k} {v}" for k, v in sorted(stats["items"].items())) or "none"
    print(f"data items {items}")
    u = stats["usage"]
    print(
        f"LLM usage  {u['requests']} requests, {u['input_tokens']} input tokens, {u['output_tokens']} output, "
        f"{u['cache_read_input_tokens']} cache read, {u['cache_creation_input_tokens']} cache write"
    )
    for row in stats["top_profiles_by_tokens"][:10]:
        print(f"  {row['id']:30} {row['items']} items, {row['input_tokens']} in / {row['output_tokens']} out")
    return 0


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="database file (env MCP_PROFILES_DB; default: the user data directory)")
    common.add_argument(
        "--namespace", help="tenant namespace (env MCP_PROFILES_NAMESPACE; default 'default')"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="mcp-profiles",
        description="An MCP server that keeps user and assistant profiles. Run 'mcp-profiles serve' "
        "from an MCP client such as Claude Desktop; the other commands manage profiles from a terminal.",
    )
    parser.add_argument("--version", action="version", version=f"mcp-profiles {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("serve", parents=[common], help="run the MCP server (stdio by default)")
    p.add_argument("--transport", choices=["stdio", "sse", "http"], default="stdio", help="default: stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--tokens-file", help="bearer tokens for HTTP: one 'TOKEN NAMESPACE' pair a line")
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="Host header to accept (repeatable; HTTP only)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("show", parents=[common], help="print a profile")
    p.add_argument("profile", help="id or alias")
    p.add_argument("--json", action="store_true", help="print the JSON document")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("list", parents=[common], help="list or search profiles")
    p.add_argument("--kind", choices=["user", "assistant"])
    p.add_argument("--tag")
    p.add_argument("--query", help="full-text search")
    p.add_argument("--limit", type=int, default=50, help="1-200 (default 50)")
    p.add_argument("--cursor", help="continue after a previous page")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("history", parents=[common], help="a profile's versions")
    p.add_argument("profile")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser(
        "export", parents=[common], help="export profiles with history and raw data as JSON lines"
    )
    p.add_argument("profiles", nargs="*", help="ids or aliases (default: all)")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", parents=[common], help="import JSON lines written by export")
    p.add_argument("file", help="file to read, or - for standard input")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("connection", parents=[common], help="manage model provider connections")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = csub.add_parser("add", parents=[common], help="add a connection")
    c.add_argument("id")
    c.add_argument("--provider", required=True, help="provider id, e.g. anthropic")
    c.add_argument("--name")
    c.add_argument("--api-key-env", metavar="VAR", help="environment variable that holds the API key")
    c = csub.add_parser("list", parents=[common], help="list connections")
    c.add_argument("--json", action="store_true")
    c = csub.add_parser("remove", parents=[common], help="remove a connection no profile uses")
    c.add_argument("id")
    p.set_defaults(func=cmd_connection)

    p = sub.add_parser(
        "ingest", parents=[common], help="extract files into a profile (needs ANTHROPIC_API_KEY)"
    )
    p.add_argument("profile", help="id or alias (a user profile is created when missing)")
    p.add_argument("files", nargs="+", metavar="FILE", help="text files to read, or - for standard input")
    p.add_argument(
        "--input-type", help="what the files are: 'chat history', 'activity log', 'character description', …"
    )
    p.add_argument("--kind", choices=["user", "assistant"])
    p.add_argument("--no-wait", action="store_true", help="only store the data; extract later with 'process'")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "process", parents=[common], help="extract waiting data items (needs ANTHROPIC_API_KEY)"
    )
    p.add_argument("profile", nargs="?", help="only this profile (default: every profile with waiting items)")
    p.add_argument("--retry-failed", action="store_true", help="queue failed items again first")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("stats", parents=[common], help="counts and LLM token usage")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mcp-profiles`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = Config.from_env().with_overrides(db=args.db, namespace=args.namespace)
        func: Command = args.func
        return anyio.run(func, args, config)
    except ProfilesError as e:
        print(f"mcp-profiles: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
