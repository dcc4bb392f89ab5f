"""The REST adapters: GetProfile's ``/v1`` and the AI management API, on the MCP HTTP server.

A thin layer like ``server.py`` and ``cli.py``: the routes call the same service
operations, with the same tokens, namespaces and guards as ``/mcp``. ``/openapi.json`` is
generated from the pydantic models the routes validate with.
"""

from __future__ import annotations

from collections import defaultdict

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..runtime import AppContext
from . import data, getprofile, management
from .base import ALL_METHODS, Guard, Operation
from .openapi import openapi_document

__all__ = ["mount_rest", "openapi_document", "operations"]


def operations() -> list[Operation]:
    """Every REST route, GetProfile's first."""
    return [*getprofile.operations(), *data.operations(), *management.operations()]


def mount_rest(mcp: MCPServer, app: AppContext, security: TransportSecuritySettings, body_limit: int) -> None:
    """Add the REST routes and ``/openapi.json`` to the server's HTTP app (call before
    ``streamable_http_app()`` or ``sse_app()``)."""
    guard = Guard(app, security, body_limit)
    ops = operations()
    by_path: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        by_path[op.path].append(op)
    for path, path_ops in by_path.items():
        mcp.custom_route(path, methods=ALL_METHODS)(guard.endpoint(path_ops, path_ops[0].style))
    # Anything else under a REST base is a 404 in that API's error shape, not Starlette's text.
    mcp.custom_route(f"{getprofile.BASE}/{{rest:path}}", methods=ALL_METHODS)(
        guard.endpoint([], getprofile.STYLE)
    )
    mcp.custom_route(f"{management.BASE}/{{rest:path}}", methods=ALL_METHODS)(
        guard.endpoint([], management.STYLE)
    )
    document = openapi_document(ops, secured=bool(app.config.tokens))

    async def openapi(request: Request) -> Response:
        refused = await guard.security.validate_request(request, is_post=False)
        return refused or JSONResponse(document)

    mcp.custom_route("/openapi.json", methods=["GET"])(openapi)
