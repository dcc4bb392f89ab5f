"""The installed ``mcp-profiles`` command, driven over stdio as a host would."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters


def _command() -> tuple[str, list[str]]:
    exe = shutil.which("mcp-profiles")
    if exe:
        return exe, ["serve"]
    return sys.executable, ["-m", "mcp_profiles", "serve"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_installed_command_serves_over_stdio(tmp_path: Path, mode: str) -> None:
    command, args = _command()
    db = tmp_path / "stdio.sqlite3"
    params = StdioServerParameters(command=command, args=args, env={"MCP_PROFILES_DB": str(db)})
    async with Client(params, mode=mode) as client:
        assert client.server_info.name == "mcp-profiles"
        result = await client.call_tool(
            "update_profile", {"profile": "stdio", "create": True, "patch": {"name": "Stdio"}}
        )
        assert result.is_error is False
        assert result.structured_content["profile"]["name"] == "Stdio"
        [contents] = (await client.read_resource("profile://stdio")).contents
        assert '"name":"Stdio"' in contents.text
    assert db.exists()
