"""Limits: data per call, document size and profiles per namespace, set through the
``MCP_PROFILES_MAX_*`` variables and enforced through the server with ``too_large:``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from mcp_profiles.config import Config
from mcp_profiles.errors import Invalid
from mcp_profiles.runtime import open_app
from tests.fakes import MessagesAPI, anthropic_llm
from tests.helpers import table_counts, text
from tests.procs.common import connect_ro, server_command, subprocess_env


def limited(config: Config, **env: str) -> Config:
    """``config``'s database with limits read from ``MCP_PROFILES_*`` variables."""
    values = {"MCP_PROFILES_DB": config.db_path, **{f"MCP_PROFILES_{k.upper()}": v for k, v in env.items()}}
    return Config.from_env(values)


async def test_data_per_call_limit_counts_bytes(connect: Any, config: Config) -> None:
    cfg = limited(config, max_data_bytes="1000")
    assert cfg.limits.max_data_bytes == 1000
    async with connect(cfg) as client:
        before = table_counts(cfg.db_path)
        over = await client.call_tool(
            "upsert_profile_from_data", {"profile": "u", "data": "é" * 501}
        )  # 1002 bytes
        assert over.is_error and text(over).startswith(
            "too_large: data: 1002 bytes exceeds the limit of 1000"
        )
        assert table_counts(cfg.db_path) == before  # not even the profile was created
        at = await client.call_tool("upsert_profile_from_data", {"profile": "u", "data": "é" * 500})
        assert not at.is_error and at.structured_content["status"] == "pending"  # no model here: stored


async def test_document_size_limit_for_edits_and_extraction(connect: Any, config: Config) -> None:
    cfg = limited(config, max_document_bytes="1500")
    api = MessagesAPI(when_empty="echo")
    async with connect(cfg, server_kwargs={"llm": anthropic_llm(api)}) as client:
        created = await client.call_tool(
            "update_profile", {"profile": "u", "create": True, "patch": {"summary": "s"}}
        )
        assert not created.is_error
        before = table_counts(cfg.db_path)
        big = await client.call_tool("update_profile", {"profile": "u", "patch": {"summary": "s" * 1500}})
        assert big.is_error and text(big).startswith("too_large:"), text(big)
        assert "1500" in text(big)
        fresh = await client.call_tool(
            "update_profile", {"profile": "v", "create": True, "patch": {"summary": "s" * 1500}}
        )
        assert fresh.is_error and text(fresh).startswith("too_large:")
        assert table_counts(cfg.db_path) == before
        # a profile just under the limit; extraction that would push it over fails, keeps the
        # data as a failed job (not stuck "processing") and changes nothing else
        ok = await client.call_tool("update_profile", {"profile": "u", "patch": {"summary": "s" * 1000}})
        assert not ok.is_error
        version = ok.structured_content["profile"]["version"]
        failed = await client.call_tool(
            "upsert_profile_from_data", {"profile": "u", "data": "I am " + "x" * 190}
        )
        assert failed.is_error and text(failed).startswith("extraction_failed:"), text(failed)
        assert "kept as job" in text(failed)
        doc = (await client.call_tool("get_profile", {"profile": "u"})).structured_content
        assert doc["version"] == version and "basic_info.fake_note" not in doc["attributes"]
        con = connect_ro(cfg.db_path)
        assert con.execute("SELECT status FROM data_items").fetchall() == [("failed",)]
        con.close()


async def test_profiles_per_namespace_limit(connect: Any, config: Config) -> None:
    cfg = limited(config, max_profiles="3")
    async with connect(cfg) as client:
        for i in range(3):
            made = await client.call_tool("update_profile", {"profile": f"p{i}", "create": True, "patch": {}})
            assert not made.is_error
        before = table_counts(cfg.db_path)
        fourth = await client.call_tool("update_profile", {"profile": "p3", "create": True, "patch": {}})
        assert fourth.is_error and text(fourth).startswith("too_large: namespace 'default'")
        by_data = await client.call_tool("upsert_profile_from_data", {"profile": "p3", "data": "hello"})
        assert by_data.is_error and text(by_data).startswith("too_large:")
        assert table_counts(cfg.db_path) == before
        # editing existing profiles is still fine; another namespace has its own count
        assert not (
            await client.call_tool("update_profile", {"profile": "p0", "patch": {"name": "P"}})
        ).is_error
        async with open_app(cfg, worker=False) as app:
            await app.service.update_profile("other", "p3", {}, create=True)
        # and deleting one frees a place
        await client.call_tool("delete_profile", {"profile": "p1"})
        assert not (
            await client.call_tool("update_profile", {"profile": "p3", "create": True, "patch": {}})
        ).is_error


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAX_PROFILES", "many"), ("MAX_DATA_BYTES", "1.5"), ("MAX_DOCUMENT_BYTES", "1e6")],
)
def test_a_limit_that_is_not_a_whole_number_is_refused(name: str, value: str) -> None:
    with pytest.raises(Invalid, match=f"MCP_PROFILES_{name}: must be a whole number"):
        Config.from_env({f"MCP_PROFILES_{name}": value})


async def test_limits_from_the_environment_reach_the_installed_server(tmp_path: Path) -> None:
    command, args = server_command("serve")
    env = subprocess_env(
        MCP_PROFILES_DB=str(tmp_path / "limits.sqlite3"),
        MCP_PROFILES_MAX_DATA_BYTES="100",
        MCP_PROFILES_MAX_DOCUMENT_BYTES="800",
        MCP_PROFILES_MAX_PROFILES="1",
    )
    async with Client(StdioServerParameters(command=command, args=args, env=env)) as client:
        data = await client.call_tool("upsert_profile_from_data", {"profile": "a", "data": "x" * 101})
        assert text(data).startswith("too_large: data: 101 bytes exceeds the limit of 100")
        doc = await client.call_tool(
            "update_profile", {"profile": "a", "create": True, "patch": {"summary": "s" * 900}}
        )
        assert text(doc).startswith("too_large:")
        assert not (
            await client.call_tool("update_profile", {"profile": "a", "create": True, "patch": {}})
        ).is_error
        count = await client.call_tool("update_profile", {"profile": "b", "create": True, "patch": {}})
        assert text(count).startswith("too_large: namespace 'default' already holds the maximum of 1")
