"""stdio with answers for lines that are not JSON-RPC.

The SDK's stdio transport turns a line it cannot parse into an exception on the read
stream, and its server drops those silently, so a client that sent a broken line (not
JSON, or a string with a lone surrogate) waits until its own timeout. The SDK lets us
wrap the read stream: here such a line gets ``-32700`` (parse error), or ``-32600`` for
JSON that is no JSON-RPC message, with the request's id when it can be recovered, as
streamable HTTP already answers.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

__all__ = ["ParseErrorReplies", "serve_stdio", "unparsable_reply"]


def _request_id(line: Any) -> str | int | None:
    """The id of a line that pydantic refused but Python's json accepts (lone surrogates)."""
    if not isinstance(line, str):
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    found = message.get("id") if isinstance(message, dict) else None
    if isinstance(found, bool) or not isinstance(found, str | int):
        return None
    if isinstance(found, str):
        try:
            found.encode("utf-8")
        except UnicodeEncodeError:  # the reply must be valid UTF-8 itself
            return None
    return found


def unparsable_reply(error: Exception) -> JSONRPCError | None:
    """The JSON-RPC error for a line the transport could not parse (None: not ours to answer)."""
    if not isinstance(error, ValidationError):
        return None
    first = error.errors(include_url=False)[0] if error.error_count() else None
    if first is not None and first["type"] == "json_invalid":
        return JSONRPCError(
            jsonrpc="2.0",
            id=_request_id(first.get("input")),
            error=ErrorData(code=PARSE_ERROR, message=f"Parse error: {first['msg']}"),
        )
    return JSONRPCError(
        jsonrpc="2.0",
        id=None,
        error=ErrorData(code=INVALID_REQUEST, message="Invalid Request: not a JSON-RPC 2.0 message"),
    )


class ParseErrorReplies:
    """The SDK's stdio read stream, answering the lines it could not parse on ``write``."""

    def __init__(self, inner: Any, write: Any) -> None:
        self._inner = inner
        self._write = write

    @property
    def last_context(self) -> Any:
        """The sender's context of the last item (the SDK's dispatcher reads it)."""
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        """The next message; parse failures are answered here and never passed on."""
        while True:
            item = await self._inner.receive()
            if not isinstance(item, Exception):
                return item
            reply = unparsable_reply(item)
            if reply is None:
                return item
            await self._write.send(SessionMessage(reply))

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self._inner.aclose()

    def __aiter__(self) -> ParseErrorReplies:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> ParseErrorReplies:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        await self.aclose()
        return None


async def serve_stdio(mcp: MCPServer) -> None:
    """``MCPServer.run_stdio_async`` with parse errors answered.

    The SDK offers no public way to run an ``MCPServer`` on given streams; its own
    in-process ``Client`` reaches the low-level server the same way.
    """
    lowlevel = mcp._lowlevel_server
    async with stdio_server() as (read_stream, write_stream):
        await lowlevel.run(
            ParseErrorReplies(read_stream, write_stream),
            write_stream,
            lowlevel.create_initialization_options(),
        )
