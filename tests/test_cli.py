"""The command line, called in-process through ``main(argv)``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcp_profiles.cli import main
from mcp_profiles.config import Config
from tests.conftest import ASSISTANT_BODY

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def _seed(config: Config) -> None:
    from mcp_profiles.service import ProfileService
    from mcp_profiles.stores import open_store

    async with open_store(config.db_path) as store:
        svc = ProfileService(store, config)
        await svc.update_profile(
            "default",
            "alice",
            {"name": "Alice", "tags": ["beta"], "attributes": {"work.role": "eng"}},
            create=True,
        )
        await svc.update_profile("default", "alice", {"summary": "Backend engineer."})


def seed(config: Config) -> None:
    import anyio

    anyio.run(_seed, config)


def test_show_prints_readable_text_by_default_and_json_on_request(capsys: Any, config: Config) -> None:
    seed(config)
    code, out, _ = run(capsys, "show", "alice")
    assert code == 0 and out.startswith("# Alice") and "**role**: eng" in out
    code, out, _ = run(capsys, "show", "alice", "--json")
    assert json.loads(out)["attributes"]["work.role"]["value"] == "eng"


def test_missing_profile_exits_1_with_the_code_word(capsys: Any) -> None:
    code, _, err = run(capsys, "show", "nobody")
    assert code == 1 and "not_found: profile 'nobody' does not exist" in err


def test_db_flag_and_environment_variable_choose_the_database(
    capsys: Any, tmp_path: Path, config: Config
) -> None:
    seed(config)  # MCP_PROFILES_DB points at config.db (conftest)
    assert run(capsys, "list")[1].startswith("alice")
    other = tmp_path / "other.sqlite3"
    code, out, _ = run(capsys, "list", "--db", str(other))
    assert code == 0 and out == "" and other.exists()


def test_list_history_and_stats(capsys: Any, config: Config) -> None:
    seed(config)
    code, out, _ = run(capsys, "list", "--json")
    assert json.loads(out)["profiles"][0]["id"] == "alice"
    code, out, _ = run(capsys, "history", "alice")
    assert out.splitlines()[0].startswith("v2") and "summary" in out
    code, out, _ = run(capsys, "stats", "--json")
    stats = json.loads(out)
    assert stats["profiles"] == 1 and stats["versions"] == 2


def test_connections_are_added_listed_and_removed(capsys: Any) -> None:
    assert (
        run(
            capsys,
            "connection",
            "add",
            "anthropic-main",
            "--provider",
            "anthropic",
            "--api-key-env",
            "ANTHROPIC_API_KEY",
        )[0]
        == 0
    )
    code, out, _ = run(capsys, "connection", "list", "--json")
    [conn] = json.loads(out)
    assert conn["id"] == "anthropic-main" and conn["api_key_env"] == "ANTHROPIC_API_KEY"
    code, _, err = run(capsys, "connection", "add", "anthropic-main", "--provider", "anthropic")
    assert code == 1 and "conflict:" in err
    assert run(capsys, "connection", "remove", "anthropic-main")[0] == 0
    code, _, err = run(capsys, "connection", "remove", "anthropic-main")
    assert code == 1 and "not_found:" in err


def test_connection_in_use_cannot_be_removed(capsys: Any, config: Config) -> None:
    import anyio

    from mcp_profiles.service import ProfileService
    from mcp_profiles.stores import open_store

    run(capsys, "connection", "add", "anthropic-main", "--provider", "anthropic")

    async def make() -> None:
        async with open_store(config.db_path) as store:
            await ProfileService(store, config).update_profile(
                "default", "a1", ASSISTANT_BODY, create=True, kind="assistant"
            )

    anyio.run(make)
    code, _, err = run(capsys, "connection", "remove", "anthropic-main")
    assert code == 1 and "conflict:" in err and "a1" in err


def test_export_then_import_round_trips_losslessly(capsys: Any, config: Config, tmp_path: Path) -> None:
    seed(config)
    dump = tmp_path / "dump.jsonl"
    assert run(capsys, "export", "-o", str(dump))[0] == 0
    fresh = tmp_path / "fresh.sqlite3"
    code, _, err = run(capsys, "import", str(dump), "--db", str(fresh))
    assert code == 0 and "imported 1" in err
    again = tmp_path / "again.jsonl"
    run(capsys, "export", "-o", str(again), "--db", str(fresh))
    assert again.read_text() == dump.read_text()
    code, _, err = run(capsys, "import", str(dump), "--db", str(fresh))
    assert code == 1 and "conflict:" in err


def test_import_rejects_garbage_with_the_line_number(capsys: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"profile": {"id": "ok"}}\nnot json\n')
    code, _, err = run(capsys, "import", str(bad))
    assert code == 2 and f"invalid: {bad} line 1: " in err  # every line is checked before any is written


def test_serve_refuses_to_listen_beyond_loopback_without_tokens(capsys: Any) -> None:
    code, _, err = run(capsys, "serve", "--transport", "http", "--host", "0.0.0.0")
    assert code == 1 and "refusing to listen on 0.0.0.0 without bearer tokens" in err


def test_help_lists_every_command(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "show", "list", "history", "export", "import", "connection", "stats"):
        assert command in out


def test_update_and_delete_from_the_terminal(capsys: Any, config: Config) -> None:
    code, out, _ = run(
        capsys, "update", "bob", "--create", "--patch", '{"name": "Bob", "attributes": {"work.role": "chef"}}'
    )
    assert code == 0 and out.startswith("bob: created, version 1; changed: name, attributes.work.role")
    code, out, _ = run(capsys, "update", "bob", "--patch", '{"name": "Bob"}')
    assert out.startswith("bob: nothing changed (version 1)")
    code, _, err = run(capsys, "update", "bob", "--patch", "{nope")
    assert code == 1 and "invalid: patch: not JSON" in err
    code, _, err = run(capsys, "update", "bob", "--patch", '{"name": "B"}', "--expected-version", "7")
    assert code == 1 and "conflict:" in err and "version 1" in err
    code, _, err = run(capsys, "delete", "bob")
    assert code == 1 and "--yes" in err
    code, out, _ = run(capsys, "delete", "bob", "--yes")
    assert code == 0 and "deleted bob: 1 version(s)" in out
    code, _, err = run(capsys, "show", "bob")
    assert code == 1 and "not_found" in err


def test_a_failed_export_keeps_the_earlier_backup(capsys: Any, config: Config, tmp_path: Path) -> None:
    seed(config)
    backup = tmp_path / "backup.jsonl"
    assert run(capsys, "export", "-o", str(backup))[0] == 0
    before = backup.read_text()
    code, _, err = run(capsys, "export", "alice", "nobody", "-o", str(backup))
    assert code == 1 and "not_found" in err
    assert backup.read_text() == before and not (tmp_path / "backup.jsonl.partial").exists()


def test_importing_data_items_twice_into_one_file_is_a_coded_conflict(
    capsys: Any, config: Config, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("User: I teach maths in Lyon.\n")
    assert run(capsys, "ingest", "carol", str(notes), "--no-wait")[0] == 0
    dump = tmp_path / "carol.jsonl"
    assert run(capsys, "export", "carol", "-o", str(dump))[0] == 0
    code, _, err = run(capsys, "import", str(dump), "--namespace", "other")
    assert code == 1 and "conflict:" in err and "line 1: data item" in err and "already exists" in err


def test_settings_out_of_range_are_refused() -> None:
    from mcp_profiles.config import Config as Cfg
    from mcp_profiles.errors import Invalid

    for name, value in (("CONFIDENCE_FLOOR", "7"), ("CONFIDENCE_FLOOR", "-3"), ("BATCH_TOKENS", "3")):
        with pytest.raises(Invalid, match=f"MCP_PROFILES_{name}"):
            Cfg.from_env({f"MCP_PROFILES_{name}": value})
    assert Cfg.from_env({"MCP_PROFILES_CONFIDENCE_FLOOR": "0.7"}).confidence_floor == 0.7


def test_stats_says_whether_the_prompt_prefix_can_be_cached_on_the_model(
    capsys: Any, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """claude-haiku-5-5 has no published minimum: the prefix is built for 4,096 and reaches it."""
    code, out, _ = run(capsys, "stats", "--json")
    cache = json.loads(out)["prompt_cache"]
    assert cache["model"] == "claude-haiku-5-5" and cache["minimum_source"] == "assumed"
    assert cache["min_cacheable_tokens"] == 4096 and cache["cacheable"] is True
    assert min(cache["prefix_tokens"].values()) >= 4096
    code, out, _ = run(capsys, "stats")
    assert "prompt cache claude-haiku-5-5: minimum 4096 tokens (assumed)" in out and "cacheable" in out
    monkeypatch.setenv("MCP_PROFILES_MODEL", "claude-sonnet-4-5")
    code, out, _ = run(capsys, "stats", "--json")
    cache = json.loads(out)["prompt_cache"]
    assert (cache["min_cacheable_tokens"], cache["minimum_source"]) == (1024, "published")
    assert 1024 <= max(cache["prefix_tokens"].values()) < 4096  # no filler on a 1,024 model
