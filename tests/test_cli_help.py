"""The command line as a person meets it: complete help, clear hints, no tracebacks."""

from __future__ import annotations

import argparse
import io
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_profiles import cli
from mcp_profiles.cli import build_parser, main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def parsers(parser: argparse.ArgumentParser, name: str = "mcp-profiles") -> list[tuple[str, Any]]:
    """Every parser, the top one and each (sub)command's, with its full name."""
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found += parsers(sub, f"{name} {sub_name}")
    return found


def test_every_command_and_every_argument_is_described() -> None:
    all_parsers = parsers(build_parser())
    assert len(all_parsers) == 21  # mcp-profiles, 17 commands, 3 connection actions
    for name, parser in all_parsers:
        assert parser.description, f"{name} has no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"


def test_every_example_in_the_help_parses() -> None:
    commands = []
    for _, parser in parsers(build_parser()):
        for line in (parser.epilog or "").splitlines():
            for part in line.split("#")[0].split("|"):
                part = part.split(">")[0].strip()
                if part.startswith("mcp-profiles "):
                    commands.append(shlex.split(part)[1:])
    assert len(commands) >= 20
    for argv in commands:
        build_parser().parse_args(argv)  # SystemExit(2) on a wrong example


def test_top_level_help_names_the_environment_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for text in ("MCP_PROFILES_DB", "ANTHROPIC_API_KEY", "examples:", "mcp-profiles serve"):
        assert text in out


def test_connection_options_belong_to_the_action(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """'connection --db X add' used to ignore X silently; now it is refused, and 'add --db X' works."""
    db = tmp_path / "conn.sqlite3"
    with pytest.raises(SystemExit) as exc:
        main(["connection", "--db", str(db), "add", "c1", "--provider", "anthropic"])
    assert exc.value.code == 2
    capsys.readouterr()
    assert run(capsys, "connection", "add", "c1", "--provider", "anthropic", "--db", str(db))[0] == 0
    assert run(capsys, "connection", "list", "--db", str(db))[1].startswith("c1")


def test_empty_list_says_so_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "list")
    assert (code, out) == (0, "") and err.startswith("no profiles found in ")


def test_without_a_key_ingest_keeps_the_data_and_says_what_to_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("User: I am a violinist.\n")
    code, out, err = run(capsys, "ingest", "vera", str(notes))
    assert code == 0 and "(pending)" in out
    assert "ANTHROPIC_API_KEY is not set" in err and "mcp-profiles process" in err
    code, _, err = run(capsys, "process")
    assert code == 1 and err.strip() == "mcp-profiles: invalid: cannot process: ANTHROPIC_API_KEY is not set"


def test_a_domain_error_inside_ingest_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")  # no request is made: it fails before
    persona = tmp_path / "persona.md"
    persona.write_text("You are Helper.")
    code, _, err = run(capsys, "ingest", "helper", str(persona), "--kind", "assistant")
    assert code == 1 and err.startswith("mcp-profiles: invalid: ") and "Traceback" not in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_serve_on_a_terminal_explains_itself_and_ctrl_c_stops_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[str] = []
    handlers: list[Any] = []

    async def fake_serve(config: Any, transport: str, **kwargs: Any) -> None:
        served.append(transport)

    monkeypatch.setattr("mcp_profiles.app.serve", fake_serve)
    monkeypatch.setattr(signal, "signal", lambda sig, handler: handlers.append((sig, handler)))
    monkeypatch.setattr(sys, "stdin", _Terminal())
    code, out, err = run(capsys, "serve")
    assert (code, out, served) == (0, "", ["stdio"])
    assert "waiting for a client on standard input" in err and "Ctrl-C" in err
    stops = (signal.SIGINT, signal.SIG_DFL)
    assert handlers.count(stops) == 1  # (asyncio registers its own handler too)

    monkeypatch.setattr(sys, "stdin", io.StringIO())  # a client's pipe: silent, signals untouched
    code, _, err = run(capsys, "serve")
    assert (code, err, handlers.count(stops)) == (0, "", 1)


def test_progress_bar_draws_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    async def draw() -> None:
        bar = cli._Bar("chat.txt")
        await bar(1, 4, "extracting part 1 of 4")
        await bar(4, 4, "done")

    anyio.run(draw)
    shown = terminal.getvalue()
    assert "\rchat.txt" in shown and "[######..................]" in shown and shown.endswith("\n")

    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    anyio.run(draw)
    assert piped.getvalue() == ""
