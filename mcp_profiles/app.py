"""Running the server: one store and one background worker per process, any transport.

The store is opened here rather than in the MCP lifespan because the SSE transport runs
the lifespan once per connection; every connection must share one store and one worker.
"""

from __future__ import annotations

import logging

from .config import Config
from .errors import Invalid
from .runtime import llm_from_env, open_app
from .server import create_server
from .transports import auth_settings, check_bind, transport_security

__all__ = ["serve"]

log = logging.getLogger("mcp_profiles")


async def serve(
    config: Config, transport: str, *, host: str = "127.0.0.1", port: int = 8000, allowed_hosts: list[str]
) -> None:
    """Serve MCP over stdio, SSE or streamable HTTP until stopped.

    Raises:
        Invalid: an HTTP transport would listen beyond loopback without tokens.
    """
    if transport not in ("stdio", "sse", "http"):
        raise Invalid(f"transport: must be stdio, sse or http, not {transport!r}")
    if transport != "stdio":
        check_bind(host, config.tokens)
        security = transport_security(host, allowed_hosts)
    async with open_app(config, llm=llm_from_env(config)) as app:
        if transport == "stdio":
            await create_server(config, app=app).run_stdio_async()
            return
        import uvicorn

        path = "/mcp" if transport == "http" else "/sse"
        auth = auth_settings(host, port, path) if config.tokens else None
        mcp = create_server(config, app=app, auth=auth)
        body_limit = config.limits.max_data_bytes * 2 + 64 * 1024
        if transport == "http":
            asgi = mcp.streamable_http_app(
                transport_security=security, host=host, max_request_body_size=body_limit
            )
        else:
            asgi = mcp.sse_app(transport_security=security, host=host, max_request_body_size=body_limit)
        log.warning("mcp-profiles %s listening on http://%s:%d%s", transport, host, port, path)
        server = uvicorn.Server(uvicorn.Config(asgi, host=host, port=port, log_level="warning"))
        await server.serve()
