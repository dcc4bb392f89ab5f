"""Start an installed ``mcp-profiles`` over stdio and use it as a host would."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters


async def main(command: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "smoke.sqlite3"
        params = StdioServerParameters(command=command, args=["serve"], env={"MCP_PROFILES_DB": str(db)})
        async with Client(params) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            expected = {"update_profile", "get_profile", "list_profiles", "delete_profile"}
            assert expected <= tools, tools
            result = await client.call_tool(
                "update_profile", {"profile": "smoke", "create": True, "patch": {"name": "Smoke"}}
            )
            assert not result.is_error, result
            got = await client.call_tool("get_profile", {"profile": "smoke"})
            assert got.structured_content and got.structured_content["name"] == "Smoke", got
            card = await client.read_resource("ui://mcp-profiles/profile-card.html")  # card.html shipped
            assert "text/html;profile=mcp-app" == card.contents[0].mime_type, card
            assert "<!doctype html>" in getattr(card.contents[0], "text", "").lower(), card
        assert db.exists()
    from mcp_profiles.prompts import load_prompt  # the installed package, not the checkout

    for kind in ("user", "assistant"):
        assert load_prompt(kind, None), kind
    print("wheel smoke test passed:", command)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
