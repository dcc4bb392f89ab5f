"""Every file in examples/ works as documented.

The Claude Desktop configurations start a real server over stdio with their own command,
arguments and environment; the Python examples run end to end against an in-process server
(the agent loop and bulk import, with the real Anthropic SDK over scripted Messages APIs) or a
real ``mcp-profiles serve --transport http`` subprocess (the HTTP client).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anthropic
import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters

from mcp_profiles.cli import build_parser
from mcp_profiles.config import Config, parse_tokens
from mcp_profiles.server import create_server
from tests.fakes import MessagesAPI, anthropic_llm, user_text

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = Path(__file__).resolve().parent / "data"


def load_example(name: str) -> ModuleType:
    """Import ``examples/NAME.py`` as a module (examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


BIN = Path(sys.executable).parent  # the environment running the tests, activated or not


def installed(command: str) -> str:
    """A command installed into the environment running the tests (not whatever is on PATH)."""
    path = BIN / command
    if not path.exists():
        pytest.fail(f"{command} is not installed next to {sys.executable}; pip install -e '.[test]'")
    return str(path)


def with_bin_on_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the environment's bin first on PATH, as an activated environment has it:
    the examples start ``mcp-profiles`` by name, as their documentation says."""
    return {**env, "PATH": os.pathsep.join([str(BIN), env.get("PATH", os.defpath)])}


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


# ---- Claude Desktop ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["claude_desktop_config.json", "claude_desktop_config.uvx.json"])
async def test_claude_desktop_config_starts_a_working_server(name: str, tmp_path: Path) -> None:
    config = json.loads((EXAMPLES / name).read_text())
    [(server_name, server)] = config["mcpServers"].items()
    assert server_name == "profiles"
    assert set(server) == {"command", "args", "env"}
    assert set(server["env"]) == {"MCP_PROFILES_DB", "ANTHROPIC_API_KEY"}
    args = [str(ROOT) if a == "/path/to/mcp-profiles" else a for a in server["args"]]
    if server["command"] == "uvx":
        assert args == ["--from", str(ROOT), "mcp-profiles", "serve"]
    else:
        assert args == ["serve"]
    if server["command"] == "uvx":
        command = shutil.which("uvx")
        if command is None:
            pytest.skip("uv is not installed")
    else:
        command = installed("mcp-profiles")
    # The placeholders: a database of this test's own, and no key (no model call is made).
    env = {"MCP_PROFILES_DB": str(tmp_path / "desktop.sqlite3")}
    if server["command"] == "uvx":  # uv resolves from the registry: its cache, certificates, proxies
        env = {**os.environ, **env}
    async with Client(StdioServerParameters(command=command, args=args, env=env)) as client:
        assert client.server_info is not None and client.server_info.name == "mcp-profiles"
        assert client.instructions and "update_profile" in client.instructions
        created = await client.call_tool(
            "update_profile", {"profile": "me", "create": True, "patch": {"name": "Desktop"}}
        )
        assert created.is_error is False, text_of(created)
        [contents] = (await client.read_resource("profile://me")).contents
        assert json.loads(contents.text)["name"] == "Desktop"  # type: ignore[union-attr]


# ---- the agent loop ----------------------------------------------------------------------


async def lines(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


async def test_agent_loop_answers_with_the_profile_and_remembers_each_turn(config: Config) -> None:
    agent = load_example("agent_loop")
    chat = MessagesAPI()  # the agent's Claude
    chat.enqueue_text("Nice to meet you, Ada. Try Babbage's notes on the Analytical Engine.")
    chat.enqueue_text("Since you're a mathematician: Hardy's A Mathematician's Apology.")
    extraction = MessagesAPI()  # the server's Claude
    extraction.enqueue_tool(
        {
            "operations": [
                {
                    "op": "set",
                    "key": "work.role",
                    "value": "mathematician",
                    "confidence": 0.95,
                    "evidence": "I'm a mathematician",
                }
            ],
            "summary": "A mathematician.",
        }
    )
    extraction.enqueue_tool({"operations": []})
    said: list[str] = []
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(chat.handler))
    async with (
        anthropic.AsyncAnthropic(api_key="test-key", max_retries=0, http_client=http) as claude,
        Client(create_server(config, llm=anthropic_llm(extraction))) as client,
    ):
        await agent.run(
            client,
            claude,
            "ada",
            lines("Hi, I'm Ada and I'm a mathematician. What should I read?", "Anything else?"),
            say=said.append,
            model="claude-test",
        )
        profile = (await client.call_tool("get_profile", {"profile": "ada"})).structured_content
    assert profile is not None and profile["attributes"]["work.role"]["source"] == "extracted"
    assert said[0].startswith("Nice to meet you") and "updated profile 'ada'" in said[1]
    assert said[2].startswith("Since you're") and "nothing new" in said[3]

    first, second = (r["body"] for r in chat.requests)
    assert first["model"] == "claude-test"
    assert '<user_profile id="ada"' in first["system"] and "nothing yet" in first["system"]
    assert "work.role: mathematician" in second["system"]  # turn 1 was remembered
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    sent = user_text(extraction.requests[0]["body"])
    assert 'input_type="chat history"' in sent and "User: Hi, I'm Ada" in sent and "Assistant: Nice" in sent


# ---- bulk import -------------------------------------------------------------------------


def test_bulk_import_reads_a_chatgpt_export_along_the_final_branch() -> None:
    bulk = load_example("bulk_import_chat_export")
    kyoto, work = bulk.read_export(DATA / "chatgpt_conversations.json", "sam")
    assert (kyoto.profile, kyoto.title, work.title) == ("sam", "Kyoto trip", "Work question")
    assert "Osaka" not in kyoto.transcript  # an abandoned branch (the message was edited)
    assert (
        kyoto.transcript.splitlines()[0] == "User: I'm planning a trip to Kyoto in April. I love long hikes."
    )
    assert "User: Here is my map. I'm vegetarian, by the way." in kyoto.transcript  # image part skipped
    with pytest.raises(SystemExit, match="--profile"):
        bulk.read_export(DATA / "chatgpt_conversations.json")


def test_bulk_import_reads_json_lines_grouped_by_user_and_conversation(tmp_path: Path) -> None:
    bulk = load_example("bulk_import_chat_export")
    path = tmp_path / "chats.jsonl"
    rows = [
        {"user": "ann", "text": "I teach chemistry."},
        {"user": "bob", "conversation": "c9", "text": "I live in Oslo."},
        {"user": "ann", "role": "assistant", "text": "Great!"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ann, bob = bulk.read_export(path)
    assert (ann.profile, ann.transcript) == ("ann", "User: I teach chemistry.\nAssistant: Great!")
    assert (bob.profile, bob.title, bob.transcript) == ("bob", "c9", "User: I live in Oslo.")


async def test_bulk_import_queues_each_conversation_and_follows_the_jobs(config: Config) -> None:
    bulk = load_example("bulk_import_chat_export")
    conversations = bulk.read_export(DATA / "chatgpt_conversations.json", "sam")
    api = MessagesAPI(when_empty="echo")
    said: list[str] = []
    async with Client(create_server(config, llm=anthropic_llm(api))) as client:
        counts = await bulk.import_conversations(client, conversations, say=said.append, poll_every=0.02)
        assert counts == {"done": 2}
        assert sum(": accepted (job " in s for s in said) == 2 and sum(": done, " in s for s in said) == 2
        profile = (await client.call_tool("get_profile", {"profile": "sam"})).structured_content
        assert profile is not None and profile["attributes"]  # facts were merged
        requests = len(api.requests)
        again = await bulk.import_conversations(client, conversations, say=said.append, poll_every=0.02)
    assert again == {"duplicate": 2} and len(api.requests) == requests  # re-running costs nothing


async def test_bulk_import_without_a_model_stores_the_data_as_pending(config: Config) -> None:
    bulk = load_example("bulk_import_chat_export")
    conversations = bulk.read_export(DATA / "chatgpt_conversations.json", "sam")
    async with Client(create_server(config)) as client:
        counts = await bulk.import_conversations(client, conversations, say=lambda _: None, poll_every=0.02)
    assert counts == {"pending": 2}


# ---- streamable HTTP -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mcp_profiles_command() -> list[str]:
    return [installed("mcp-profiles")]


async def test_http_client_example_against_a_served_port(tmp_path: Path) -> None:
    http_client = load_example("http_client")
    port = free_port()
    env = {
        **os.environ,
        "MCP_PROFILES_DB": str(tmp_path / "http.sqlite3"),
        "MCP_PROFILES_TOKENS": "tok-team-a-0123456789=team-a",
    }
    argv = [*mcp_profiles_command(), "serve", "--transport", "http", "--port", str(port)]
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient(timeout=2) as http:
            deadline = time.monotonic() + 20
            while True:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not answer /healthz"
                await anyio.sleep(0.1)
            denied = await http.post(f"{base}/mcp", json={}, headers={"Authorization": "Bearer wrong"})
            assert denied.status_code == 401
        document = await http_client.run(f"{base}/mcp", "tok-team-a-0123456789", "alice")
        assert (document["id"], document["name"], document["tags"]) == ("alice", "HTTP Demo", ["demo"])
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    env.pop("MCP_PROFILES_TOKENS")  # the profile went to the token's namespace
    listed = subprocess.run(
        [*mcp_profiles_command(), "list", "--namespace", "team-a"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0 and listed.stdout.startswith("alice"), listed


def test_http_deployment_commands_match_the_cli() -> None:
    """The documented commands parse, and the tokens example is a valid tokens file."""
    doc = (EXAMPLES / "http_deployment.md").read_text()
    commands = re.findall(r"^(?:ExecStart=\S+|mcp-profiles) (serve .*)$", doc, re.M)
    assert len(commands) == 2
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(shlex.split(command))
        assert (args.transport, args.port, args.allowed_host) == ("http", 8000, ["profiles.example.com"])
        assert args.tokens_file
    tokens = parse_tokens((EXAMPLES / "tokens.example").read_text())
    assert sorted(tokens.values()) == ["team-a", "team-b"]


# ---- the scripts themselves ----------------------------------------------------------------


def test_bulk_import_script_runs_with_this_python_and_the_installed_command(tmp_path: Path) -> None:
    """The script as its docstring runs it: ``python examples/… --profile sam``, with
    ``mcp-profiles`` found on PATH (this environment's bin) and no model key."""
    env = with_bin_on_path({"PATH": os.environ.get("PATH", ""), "MCP_PROFILES_DB": str(tmp_path / "b.db")})
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "bulk_import_chat_export.py"),
            str(DATA / "chatgpt_conversations.json"),
            "--profile",
            "sam",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "imported: 2 pending" in done.stdout


def _without_environment(path: str) -> str:
    """PATH with no folder of the environment that runs the tests."""
    prefix = Path(sys.prefix).resolve()
    return os.pathsep.join(
        p for p in path.split(os.pathsep) if p and not Path(p).resolve().is_relative_to(prefix)
    )


@pytest.mark.slow
def test_examples_pass_without_an_activated_environment(tmp_path: Path) -> None:
    """This file, run by the environment's python with the environment off PATH (as a
    CI job or an IDE does without activating it)."""
    me = f"{Path(__file__).relative_to(ROOT)}::test_examples_pass_without_an_activated_environment"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTEST_ADDOPTS")}
    env["PATH"] = _without_environment(env.get("PATH", ""))
    assert shutil.which("mcp-profiles", path=env["PATH"]) is None
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(Path(__file__)),
            "--deselect",
            me,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
