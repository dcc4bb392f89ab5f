"""Running the server: one store and one background worker per process, any transport.

The store is opened here rather than in the MCP lifespan because the SSE transport runs
the lifespan once per connection; every connection must share one store and one worker.
"""

from __future__ import annotations

import logging

from mcp.server import MCPServer
from starlette.applications import Starlette

from .config import Config
from .errors import Invalid
from .rest import mount_rest
from .runtime import AppContext, llm_from_env, open_app
from .server import create_server
from .stdio import serve_stdio
from .transports import auth_settings, check_bind, transport_security

__all__ = ["build_http_app", "serve"]

log = logging.getLogger("mcp_profiles")


def _check_transport(config: Config, transport: str, host: str, allowed_hosts: list[str]) -> None:
    if transport not in ("stdio", "sse", "http"):
        raise Invalid(f"transport: must be stdio, sse or http, not {transport!r}")
    if transport != "stdio":
        check_bind(host, config.tokens)
        transport_security(host, allowed_hosts)


def build_http_app(
    config: Config,
    transport: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    allowed_hosts: list[str] | None = None,
    app: AppContext,
    public_url: str | None = None,
    auth_server: str | None = None,
) -> tuple[Starlette, MCPServer]:
    """The ASGI app for ``sse`` or ``http`` over an opened ``app``, and its MCP server.

    Bearer tokens (``config.tokens``) when configured, Host/Origin validation, a request
    body limit, ``/healthz``, and the REST APIs with ``/openapi.json`` (``rest``). For
    ``http`` the app's lifespan runs the session manager; when serving it without that
    lifespan (tests), enter ``mcp.session_manager.run()``.

    Raises:
        Invalid: an unknown transport, or listening beyond loopback without tokens.
    """
    allowed = list(allowed_hosts or [])
    if transport not in ("sse", "http"):
        raise Invalid(f"transport: must be sse or http, not {transport!r}")
    _check_transport(config, transport, host, allowed)
    security = transport_security(host, allowed)
    path = "/mcp" if transport == "http" else "/sse"
    auth = auth_settings(path, auth_server=auth_server, public_url=public_url) if config.tokens else None
    mcp = create_server(config, app=app, auth=auth)
    body_limit = config.limits.max_data_bytes * 2 + 64 * 1024
    mount_rest(mcp, app, security, body_limit)
    if transport == "http":
        asgi = mcp.streamable_http_app(
            transport_security=security, host=host, max_request_body_size=body_limit
        )
    else:
        asgi = mcp.sse_app(transport_security=security, host=host, max_request_body_size=body_limit)
    return asgi, mcp


async def serve(
    config: Config,
    transport: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    allowed_hosts: list[str],
    public_url: str | None = None,
    auth_server: str | None = None,
) -> None:
    """Serve MCP over stdio, SSE or streamable HTTP until stopped.

    Raises:
        Invalid: an HTTP transport would listen beyond loopback without tokens.
    """
    _check_transport(config, transport, host, allowed_hosts)
    async with open_app(config, llm=llm_from_env(config)) as app:
        if transport == "stdio":
            await serve_stdio(create_server(config, app=app))
            return
        import uvicorn

        asgi, _ = build_http_app(
            config,
            transport,
            host=host,
            port=port,
            allowed_hosts=allowed_hosts,
            app=app,
            public_url=public_url,
            auth_server=auth_server,
        )
        path = "/mcp" if transport == "http" else "/sse"
        log.warning(
            "mcp-profiles %s listening on http://%s:%d%s (REST: /v1, /umbraco/ai/management/api/v1, "
            "/openapi.json)",
            transport,
            host,
            port,
            path,
        )
        server = uvicorn.Server(uvicorn.Config(asgi, host=host, port=port, log_level="warning"))
        await server.serve()
