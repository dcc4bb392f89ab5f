"""An agent that remembers its user: Claude answers, mcp-profiles keeps the profile.

    pip install /path/to/mcp-profiles        # puts `mcp-profiles` on PATH
    export ANTHROPIC_API_KEY=sk-ant-...
    python examples/agent_loop.py alice      # then chat; an empty line or Ctrl-D stops

Every turn the agent

1. loads the ``personalize`` prompt (what the server knows about the user) as the system prompt,
2. answers with Claude,
3. hands the exchange to ``upsert_profile_from_data`` (input_type "chat history"): the server
   extracts lasting facts with evidence and merges them, so the next turn already knows them.

The server runs as a subprocess over stdio (``mcp-profiles serve``), exactly as Claude Desktop
runs it, and extracts with the same API key. Set MCP_PROFILES_DB to pick the database file;
AGENT_MODEL to pick the chat model.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable, Iterable

import anthropic
import anyio
from anthropic.types import MessageParam
from mcp import Client, StdioServerParameters
from mcp.types import TextContent

MODEL = os.environ.get("AGENT_MODEL", "claude-sonnet-5-5")


def text_of(blocks: Iterable[object]) -> str:
    """The text of MCP content blocks."""
    return "\n\n".join(block.text for block in blocks if isinstance(block, TextContent))


async def system_prompt(client: Client, user: str) -> str:
    """The ``personalize`` prompt for this user: the profile, fenced as data."""
    prompt = await client.get_prompt("personalize", {"user": user})
    return text_of(message.content for message in prompt.messages)


async def run(
    client: Client,
    claude: anthropic.AsyncAnthropic,
    user: str,
    lines: AsyncIterator[str],
    say: Callable[[str], object] = print,
    model: str = MODEL,
) -> None:
    """Chat with ``user`` until ``lines`` ends, remembering what they say."""
    # `personalize` needs the profile to exist: create=true with no patch makes an empty one
    # (and changes nothing when it exists).
    await client.call_tool("update_profile", {"profile": user, "create": True})
    history: list[MessageParam] = []
    async for line in lines:
        history.append({"role": "user", "content": line})
        reply = await claude.messages.create(
            model=model, max_tokens=1024, system=await system_prompt(client, user), messages=history
        )
        answer = "".join(block.text for block in reply.content if block.type == "text")
        history.append({"role": "assistant", "content": answer})
        say(answer)

        # Remember: the server extracts facts from the turn. wait=true returns what changed;
        # wait=false would queue it and return a job_id at once (see bulk_import_chat_export.py).
        result = await client.call_tool(
            "upsert_profile_from_data",
            {"profile": user, "data": f"User: {line}\nAssistant: {answer}", "input_type": "chat history"},
        )
        if result.is_error:  # e.g. "extraction_failed: …": the data is kept, the chat goes on
            say(f"  (profile not updated: {text_of(result.content)})")
        elif result.structured_content:
            say(f"  (profile: {result.structured_content['message']})")


async def stdin_lines() -> AsyncIterator[str]:
    """What the person types, until an empty line or end of input."""
    while True:
        try:
            line = await anyio.to_thread.run_sync(input, "you> ")
        except EOFError:
            return
        if not line.strip():
            return
        yield line


async def main(user: str) -> None:
    if not os.environ.get("ANTHROPIC_API_KEY"):
        sys.exit("set ANTHROPIC_API_KEY first")
    # A stdio server inherits only HOME, PATH and a few others: pass what it needs.
    env = {
        k: os.environ[k]
        for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "MCP_PROFILES_DB")
        if k in os.environ
    }
    server = StdioServerParameters(command="mcp-profiles", args=["serve"], env=env)
    async with Client(server) as client, anthropic.AsyncAnthropic() as claude:
        await run(client, claude, user, stdin_lines())


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else "me")
