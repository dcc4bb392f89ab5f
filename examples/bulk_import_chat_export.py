"""Bulk-import a chat export into profiles: one upsert per conversation, queued, then followed.

    export ANTHROPIC_API_KEY=sk-ant-...
    python examples/bulk_import_chat_export.py conversations.json --profile alice
    python examples/bulk_import_chat_export.py chats.jsonl

Two formats:

* a ChatGPT export's ``conversations.json`` (a JSON array of conversations, each a tree of
  messages in ``mapping``): every conversation goes to the profile named by ``--profile``;
* JSON lines, one message a line: ``{"user": "alice", "text": "...", "conversation": "c1",
  "role": "user"}`` (``conversation`` and ``role`` optional): each user's conversations go to
  their own profile.

Each conversation is sent with ``wait=false``, so the server queues it and answers at once
with a ``job_id``; the script then polls ``get_job`` until every job is done or failed. The
same conversation sent twice is recognised as a duplicate and costs no model call, so an
interrupted import can simply be run again. Without ANTHROPIC_API_KEY the data is stored and
``mcp-profiles process`` extracts it later.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import TextContent


@dataclass
class Conversation:
    profile: str
    title: str
    transcript: str  # "User: …\nAssistant: …" lines


def _chatgpt_messages(conv: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) along the conversation's final branch, oldest first."""
    mapping: dict[str, Any] = conv.get("mapping") or {}
    node_id, path = conv.get("current_node"), []
    while node_id in mapping:  # walk from the last message up to the root
        path.append(mapping[node_id])
        node_id = mapping[node_id].get("parent")
    messages = []
    for node in reversed(path):
        msg = node.get("message") or {}
        role = (msg.get("author") or {}).get("role")
        parts = (msg.get("content") or {}).get("parts") or []
        text = "\n".join(p for p in parts if isinstance(p, str)).strip()
        if role in ("user", "assistant") and text:
            messages.append((role, text))
    return messages


def read_export(path: Path, profile: str | None = None) -> list[Conversation]:
    """Conversations from a ChatGPT ``conversations.json`` or from JSON lines."""
    raw = path.read_text(encoding="utf-8")
    grouped: dict[tuple[str, str], list[tuple[str, str]]] = {}
    if raw.lstrip().startswith("["):  # ChatGPT export
        if not profile:
            raise SystemExit("a ChatGPT export belongs to one person: pass --profile ID")
        for n, conv in enumerate(json.loads(raw), 1):
            grouped[(profile, conv.get("title") or f"conversation {n}")] = _chatgpt_messages(conv)
    else:  # JSON lines
        for line in filter(str.strip, raw.splitlines()):
            row = json.loads(line)
            key = (profile or row["user"], str(row.get("conversation", "chat")))
            grouped.setdefault(key, []).append((row.get("role", "user"), row["text"]))
    return [
        Conversation(who, title, "\n".join(f"{role.capitalize()}: {text}" for role, text in messages))
        for (who, title), messages in grouped.items()
        if messages
    ]


def _text(blocks: Iterable[object]) -> str:
    return " ".join(b.text for b in blocks if isinstance(b, TextContent))


async def import_conversations(
    client: Client,
    conversations: list[Conversation],
    say: Callable[[str], object] = print,
    poll_every: float = 1.0,
) -> dict[str, int]:
    """Queue every conversation, then follow the jobs; returns counts by final status."""
    counts: dict[str, int] = {}
    jobs: dict[str, str] = {}  # job_id -> title
    for conv in conversations:
        result = await client.call_tool(
            "upsert_profile_from_data",
            {"profile": conv.profile, "data": conv.transcript, "input_type": "chat history", "wait": False},
        )
        if result.is_error or not result.structured_content:  # e.g. too_large: skip, go on
            say(f"{conv.title}: {_text(result.content)}")
            counts["error"] = counts.get("error", 0) + 1
            continue
        answer = result.structured_content
        say(f"{conv.title} -> {answer['id']}: {answer['status']} (job {answer['job_id']})")
        if answer["status"] == "accepted":
            jobs[answer["job_id"]] = conv.title
        else:  # duplicate (already imported) or pending (the server has no model configured)
            counts[answer["status"]] = counts.get(answer["status"], 0) + 1

    while jobs:
        await anyio.sleep(poll_every)
        for job_id, title in list(jobs.items()):
            job = (await client.call_tool("get_job", {"job_id": job_id})).structured_content or {}
            if job.get("status") in ("done", "failed"):
                del jobs[job_id]
                counts[job["status"]] = counts.get(job["status"], 0) + 1
                detail = job["error"] if job["status"] == "failed" else f"{len(job['changes'])} change(s)"
                say(f"{title}: {job['status']}, {detail}")
    return counts


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="conversations.json (ChatGPT) or a .jsonl file")
    parser.add_argument("--profile", help="profile id for a ChatGPT export (JSON lines name their user)")
    args = parser.parse_args()
    conversations = read_export(args.export, args.profile)
    env = {
        k: os.environ[k]
        for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "MCP_PROFILES_DB")
        if k in os.environ
    }
    async with Client(StdioServerParameters(command="mcp-profiles", args=["serve"], env=env)) as client:
        counts = await import_conversations(client, conversations)
    print("imported:", ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing")
    if counts.get("pending"):
        print("extraction waits for a model: set ANTHROPIC_API_KEY and run 'mcp-profiles process'")


if __name__ == "__main__":
    anyio.run(main)
