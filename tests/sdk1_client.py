"""A client of the MCP Python SDK 1.x line (``mcp<2``), as many hosts still run it.

Run by ``tests/test_sdk1.py`` with the python of a separate virtual environment:

    python tests/sdk1_client.py stdio SERVER_PYTHON DB_FILE
    python tests/sdk1_client.py http URL

Prints one JSON object describing what it saw.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError


async def exercise(read: Any, write: Any) -> dict[str, Any]:
    seen: list[str] = []

    async def on_message(message: Any) -> None:
        root = getattr(message, "root", None)
        method = getattr(root, "method", None)
        if isinstance(method, str):
            seen.append(method)

    async with ClientSession(read, write, message_handler=on_message) as session:
        init = await session.initialize()
        tools = await session.list_tools()
        created = await session.call_tool(
            "update_profile", {"profile": "sdk1", "create": True, "patch": {"name": "One"}}
        )
        await session.subscribe_resource("profile://sdk1")
        await session.call_tool("update_profile", {"profile": "sdk1", "patch": {"name": "Uno"}})
        got = await session.call_tool("get_profile", {"profile": "sdk1"})
        bad = await session.call_tool("list_profiles", {"limit": True})
        resource = await session.read_resource("profile://sdk1")
        templates = await session.list_resource_templates()
        prompt = await session.get_prompt("review_profile", {"profile": "sdk1"})
        try:
            await session.get_prompt("no_such_prompt", {})
            prompt_error: dict[str, Any] = {}
        except McpError as e:
            prompt_error = {"code": e.error.code, "message": e.error.message}
        for _ in range(100):  # notifications arrive on their own stream
            if "notifications/resources/updated" in seen:
                break
            await asyncio.sleep(0.05)
        caps = init.capabilities.resources
        return {
            "protocol_version": init.protocolVersion,
            "server": init.serverInfo.name,
            "subscribe": bool(caps and caps.subscribe),
            "list_changed": bool(caps and caps.listChanged),
            "tools": sorted(t.name for t in tools.tools),
            "created": created.structuredContent,
            "name": (got.structuredContent or {}).get("name"),
            "bad": {"is_error": bad.isError, "text": bad.content[0].text},
            "resource": resource.contents[0].text,
            "templates": sorted(t.uriTemplate for t in templates.resourceTemplates),
            "prompt": prompt.messages[0].content.text[:60],
            "prompt_error": prompt_error,
            "notifications": seen,
        }


async def main() -> None:
    if sys.argv[1] == "stdio":
        params = StdioServerParameters(
            command=sys.argv[2], args=["-m", "mcp_profiles", "serve"], env={"MCP_PROFILES_DB": sys.argv[3]}
        )
        async with stdio_client(params) as (read, write):
            result = await exercise(read, write)
    else:
        async with streamablehttp_client(sys.argv[2]) as (read, write, _):
            result = await exercise(read, write)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
