"""A trivial MCP server: what the SDK alone costs per request over stdio.

``bench/speed.py`` calls its tool and reads its resource exactly as it does with
``mcp-profiles``, so the difference between the two is what mcp-profiles adds (its store,
its documents, its output schemas) and the rest is the transport and the SDK.
"""

from __future__ import annotations

import json

from mcp.server import MCPServer
from pydantic import BaseModel

mcp = MCPServer("floor", log_level="WARNING")


class Echo(BaseModel):
    """The argument, back."""

    id: str


@mcp.tool()
async def echo(profile: str) -> Echo:
    """Return the argument (structured, with an output schema, like get_profile)."""
    return Echo(id=profile)


@mcp.resource("floor://{ref}", mime_type="application/json")
async def floor_resource(ref: str) -> str:
    """A one-field JSON document."""
    return json.dumps({"id": ref})


if __name__ == "__main__":
    mcp.run()
