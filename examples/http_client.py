"""Use an mcp-profiles server deployed over streamable HTTP, with a bearer token.

    # on the server (see http_deployment.md):
    mcp-profiles serve --transport http --port 8000 --tokens-file tokens
    # here:
    MCP_PROFILES_URL=http://127.0.0.1:8000/mcp MCP_PROFILES_TOKEN=... python examples/http_client.py

The token decides the namespace: two teams with different tokens never see each other's
profiles, even with the same profile ids.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextResourceContents


async def run(url: str, token: str, profile: str = "http-demo") -> dict[str, Any]:
    """Write a profile, list profiles, read the profile back as a resource; returns the document."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        server = client.server_info
        assert server is not None  # set by the handshake
        print(f"connected to {server.name} {server.version} at {url}")
        result = await client.call_tool(
            "update_profile",
            {"profile": profile, "create": True, "patch": {"name": "HTTP Demo", "tags": ["demo"]}},
        )
        if result.is_error:
            raise SystemExit(f"update_profile failed: {result.content}")
        listed = await client.call_tool("list_profiles", {"tag": "demo"})
        assert listed.structured_content is not None
        print("profiles tagged demo:", [p["id"] for p in listed.structured_content["profiles"]])
        [contents] = (await client.read_resource(f"profile://{profile}")).contents
        assert isinstance(contents, TextResourceContents)
        document: dict[str, Any] = json.loads(contents.text)
        print(f"profile://{profile} is at version {document['version']}")
        return document


if __name__ == "__main__":
    url = os.environ.get("MCP_PROFILES_URL", "http://127.0.0.1:8000/mcp")
    token = os.environ.get("MCP_PROFILES_TOKEN") or sys.exit("set MCP_PROFILES_TOKEN")
    anyio.run(run, url, token)
