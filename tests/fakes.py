"""A scripted Anthropic Messages API behind the real SDK (no network, no patching).

``MessagesAPI.handler`` answers ``POST /v1/messages`` the way the API does — message
objects with tool_use blocks and usage (cache fields included), or error bodies with the
right status — so request building, response parsing, retries and error translation in
``mcp_profiles.llm`` all run for real. Answers are queued with ``enqueue_*``; every request
is recorded in ``requests``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx2

from mcp_profiles.extract import TOOL_NAME
from mcp_profiles.llm import AnthropicLLM

DEFAULT_USAGE = {
    "input_tokens": 120,
    "output_tokens": 40,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}
# Retryable errors ask for a 1 ms wait: with "retry-after: 0" the SDK ignores the header
# and backs off 0.5 s, 1 s, ... which would make every retry test slow.
FAST_RETRY = {"retry-after-ms": "1"}
_DATA_BLOCK = re.compile(r'<data id="([^"]*)"[^>]*>\n(.*?)\n</data>', re.DOTALL)

Reply = Callable[[dict[str, Any]], httpx2.Response]


class MessagesAPI:
    """Scripted answers for ``POST /v1/messages``, in order.

    ``when_empty`` says what happens once the queue is used up: ``"fail"`` answers a 400
    (not retried) so an unexpected call shows up as an error; ``"echo"`` answers a small
    valid tool call whose evidence is the first line of the first data block, so it
    survives the merge — for benchmarks that need many calls.
    """

    def __init__(self, when_empty: str = "fail") -> None:
        if when_empty not in ("fail", "echo"):
            raise ValueError("when_empty must be 'fail' or 'echo'")
        self.when_empty = when_empty
        self.requests: list[dict[str, Any]] = []
        self._queue: list[Reply] = []

    # --- scripting -----------------------------------------------------------------------

    def enqueue_tool(
        self,
        tool_input: dict[str, Any],
        usage: dict[str, int] | None = None,
        *,
        stop_reason: str = "tool_use",
        text: str | None = None,
        name: str = TOOL_NAME,
    ) -> None:
        """The model calls the tool with ``tool_input`` (optionally after some text)."""
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        content.append({"type": "tool_use", "id": "", "name": name, "input": tool_input})
        self._queue.append(lambda body: self._message(body, content, stop_reason, usage))

    def enqueue_text(
        self, text: str, *, stop_reason: str = "end_turn", usage: dict[str, int] | None = None
    ) -> None:
        """The model answers in prose and calls no tool."""
        content = [{"type": "text", "text": text}]
        self._queue.append(lambda body: self._message(body, content, stop_reason, usage))

    def enqueue_error(
        self, status: int, error_type: str, headers: dict[str, str] | None = None, message: str | None = None
    ) -> None:
        """An API error with the Messages API's error body."""
        merged = {**FAST_RETRY, "request-id": "req_fake", **(headers or {})}
        payload = {
            "type": "error",
            "error": {"type": error_type, "message": message or error_type.replace("_", " ")},
            "request_id": "req_fake",
        }
        self._queue.append(lambda body: httpx2.Response(status, json=payload, headers=merged))

    def enqueue_exception(self, exc: Exception) -> None:
        """The transport fails (connection refused, reset, ...)."""

        def reply(body: dict[str, Any]) -> httpx2.Response:
            raise exc

        self._queue.append(reply)

    # --- the wire --------------------------------------------------------------------------

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else {}
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if request.method != "POST" or request.url.path != "/v1/messages":
            return self._error(404, "not_found_error", f"fake: no route {request.method} {request.url.path}")
        if self._queue:
            return self._queue.pop(0)(body)
        if self.when_empty == "echo":
            return self._message(body, [self._echo(body)], "tool_use", None)
        return self._error(400, "invalid_request_error", "fake: no scripted answer left")

    def _message(
        self,
        body: dict[str, Any],
        content: list[dict[str, Any]],
        stop_reason: str,
        usage: dict[str, int] | None,
    ) -> httpx2.Response:
        number = len(self.requests)
        blocks = [
            {**block, "id": f"toolu_fake_{number:04d}"} if block["type"] == "tool_use" else block
            for block in content
        ]
        return httpx2.Response(
            200,
            json={
                "id": f"msg_fake_{number:04d}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "claude-fake"),
                "content": blocks,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {**DEFAULT_USAGE, **(usage or {})},
            },
            headers={"request-id": f"req_fake_{number:04d}"},
        )

    def _error(self, status: int, error_type: str, message: str) -> httpx2.Response:
        return httpx2.Response(
            status, json={"type": "error", "error": {"type": error_type, "message": message}}
        )

    def _echo(self, body: dict[str, Any]) -> dict[str, Any]:
        data = user_text(body)
        found = _DATA_BLOCK.search(data)
        operations = []
        if found:
            line = next((ln.strip() for ln in found.group(2).splitlines() if ln.strip()), "")[:200]
            if line:
                operations.append(
                    {
                        "op": "set",
                        "key": "basic_info.fake_note",
                        "value": line,
                        "confidence": 0.9,
                        "evidence": line,
                        "data_id": found.group(1),
                    }
                )
        return {"type": "tool_use", "id": "", "name": TOOL_NAME, "input": {"operations": operations}}


def user_text(body: dict[str, Any]) -> str:
    """All text of the first user turn (context then data)."""
    content = body["messages"][0]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(block.get("text", "") for block in content)


def anthropic_llm(
    api: MessagesAPI, *, model: str = "claude-haiku-5-5", max_retries: int = 2, **kw: Any
) -> AnthropicLLM:
    """The real adapter and SDK over ``api`` (no network)."""
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(api.handler))
    return AnthropicLLM(model, api_key="test-key", max_retries=max_retries, http_client=client, **kw)
