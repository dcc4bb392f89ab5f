"""The REST APIs over HTTP, in-process (``httpx2.ASGITransport`` on the deployment's app):
GetProfile's ``/v1/profile/{id}``, the AI management API's profiles and connections, their
error shapes, the seed document's examples, tokens and namespaces, notifications to MCP
subscribers, and bad input that must never reach the store.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.subscriptions import ResourcesListChanged, ResourceUpdated

from mcp_profiles.app import build_http_app
from mcp_profiles.config import Config
from mcp_profiles.patching import Limits
from mcp_profiles.runtime import AppContext, open_app
from mcp_profiles.server import create_server
from tests.helpers import next_events, table_counts, text

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

BASE = "http://127.0.0.1:8000"
AI = f"{BASE}/umbraco/ai/management/api/v1"
TOKENS = {"tok-alpha-0123456789": "default", "tok-bravo-9876543210": "team-b"}
A, B = list(TOKENS)
CONNECTION = "d290f1ee-6c54-4b01-90e6-d701748f0851"
PROFILE = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
NOT_FOUND = {
    "type": "https://tools.ietf.org/html/rfc7231#section-6.5.4",
    "title": "Not Found",
    "status": 404,
    "detail": "Profile not found",
}


@asynccontextmanager
async def rest(
    config: Config, token: str | None = A, transport_name: str = "http"
) -> AsyncIterator[tuple[httpx2.AsyncClient, AppContext]]:
    """An HTTP client on the deployment's ASGI app over ``config`` (and the opened app)."""
    async with open_app(config) as app:
        asgi, _ = build_http_app(config, transport_name, port=8000, app=app)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx2.ASGITransport(asgi)
        async with httpx2.AsyncClient(transport=transport, base_url=BASE, headers=headers) as http:
            yield http, app


@pytest.fixture
def secured(config: Config) -> Config:
    return replace(config, tokens=TOKENS)


def problem(status: int, detail: str) -> dict[str, Any]:
    section = {400: "6.5.1", 404: "6.5.4"}[status]
    title = {400: "Bad Request", 404: "Not Found"}[status]
    return {
        "type": f"https://tools.ietf.org/html/rfc7231#section-{section}",
        "title": title,
        "status": status,
        "detail": detail,
    }


async def seed_connection_and_profile(app: AppContext) -> None:
    """What the seed's examples assume exists: its connection, and its profile (made through
    MCP, so the examples also show an MCP write read back through REST)."""
    await app.service.add_connection(
        "default", CONNECTION, "openai", name="OpenAI", api_key_env="OPENAI_API_KEY"
    )
    async with Client(create_server(app.config, app=app)) as client:
        result = await client.call_tool(
            "update_profile",
            {
                "profile": PROFILE,
                "create": True,
                "kind": "assistant",
                "patch": {
                    "alias": "content-assistant",
                    "name": "Content Assistant",
                    "capability": "chat",
                    "model": {"providerId": "openai", "modelId": "gpt-4o"},
                    "connectionId": CONNECTION,
                    "settings": {"$type": "chat", "temperature": 0.7, "maxTokens": 4096},
                    "tags": ["content", "assistant"],
                    "attributes": {"persona.tone": "warm, precise"},
                },
            },
        )
        assert result.is_error is False, text(result)


# ---- the seed document's examples -------------------------------------------------------
# From the AI management API's "Update Profile" page, section "Examples", as written there
# (only the host and the token are replaced when they run).

SEED_EXAMPLES = {
    "Update by ID": """curl -X PUT "https://your-site.com/umbraco/ai/management/api/v1/profile/3fa85f64-5717-4562-b3fc-2c963f66afa6" \\
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "alias": "content-assistant",
    "name": "Content Assistant (Updated)",
    "model": {
      "providerId": "openai",
      "modelId": "gpt-4o"
    },
    "connectionId": "d290f1ee-6c54-4b01-90e6-d701748f0851",
    "settings": {
      "$type": "chat",
      "temperature": 0.5,
      "maxTokens": 8192,
      "systemPromptTemplate": "You are an expert content assistant."
    }
  }'""",
    "Update by Alias": """curl -X PUT "https://your-site.com/umbraco/ai/management/api/v1/profile/content-assistant" \\
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "alias": "content-assistant",
    "name": "Content Assistant v2",
    "model": {
      "providerId": "openai",
      "modelId": "gpt-4o-mini"
    },
    "connectionId": "d290f1ee-6c54-4b01-90e6-d701748f0851"
  }'""",
    "Change Model": """curl -X PUT "https://your-site.com/umbraco/ai/management/api/v1/profile/content-assistant" \\
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "alias": "content-assistant",
    "name": "Content Assistant",
    "model": {
      "providerId": "openai",
      "modelId": "gpt-4o-mini"
    },
    "connectionId": "d290f1ee-6c54-4b01-90e6-d701748f0851",
    "settings": {
      "$type": "chat",
      "temperature": 0.7,
      "maxTokens": 4096
    }
  }'""",
    "Update Tags": """curl -X PUT "https://your-site.com/umbraco/ai/management/api/v1/profile/content-assistant" \\
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "alias": "content-assistant",
    "name": "Content Assistant",
    "model": {
      "providerId": "openai",
      "modelId": "gpt-4o"
    },
    "connectionId": "d290f1ee-6c54-4b01-90e6-d701748f0851",
    "tags": ["content", "production", "primary"]
  }'""",
}

# What each example leaves behind, in the API's own shape (the fields PUT replaces).
SEED_EXPECTED = {
    "Update by ID": {
        "name": "Content Assistant (Updated)",
        "model": {"providerId": "openai", "modelId": "gpt-4o"},
        "settings": {
            "$type": "chat",
            "temperature": 0.5,
            "maxTokens": 8192,
            "systemPromptTemplate": "You are an expert content assistant.",
        },
        "tags": [],
    },
    "Update by Alias": {
        "name": "Content Assistant v2",
        "model": {"providerId": "openai", "modelId": "gpt-4o-mini"},
        "settings": None,
        "tags": [],
    },
    "Change Model": {
        "name": "Content Assistant",
        "model": {"providerId": "openai", "modelId": "gpt-4o-mini"},
        "settings": {"$type": "chat", "temperature": 0.7, "maxTokens": 4096},
        "tags": [],
    },
    "Update Tags": {
        "name": "Content Assistant",
        "model": {"providerId": "openai", "modelId": "gpt-4o"},
        "settings": None,
        "tags": ["content", "production", "primary"],
    },
}


def run_curl(command: str, *, plural: bool) -> tuple[str, str, dict[str, str], str]:
    """(method, url, headers, body) of a seed curl command, host and token replaced."""
    args = shlex.split(command.replace("\\\n", " "))
    assert args[0] == "curl"
    method, url, headers, body = "GET", "", {}, ""
    it = iter(args[1:])
    for arg in it:
        if arg == "-X":
            method = next(it)
        elif arg == "-H":
            name, _, value = next(it).partition(": ")
            headers[name] = value.replace("YOUR_ACCESS_TOKEN", A)
        elif arg == "-d":
            body = next(it)
        else:
            url = arg
    url = url.replace("https://your-site.com", BASE)
    if plural:  # the API's current spelling of the path (the page's request line)
        url = url.replace("/api/v1/profile/", "/api/v1/profiles/")
    return method, url, headers, body


@pytest.mark.parametrize("plural", [False, True], ids=["as-written", "profiles-path"])
async def test_seed_examples_run_verbatim(secured: Config, plural: bool) -> None:
    async with rest(secured, token=None) as (http, app):
        await seed_connection_and_profile(app)
        for name, command in SEED_EXAMPLES.items():
            method, url, headers, body = run_curl(command, plural=plural)
            response = await http.request(method, url, headers=headers, content=body.encode())
            assert response.status_code == 200, (name, response.text)
            assert response.content == b"", name
            got = (await http.get(f"{AI}/profiles/{PROFILE}", headers=headers)).json()
            assert {k: got[k] for k in SEED_EXPECTED[name]} == SEED_EXPECTED[name], name
            assert got["id"] == PROFILE and got["alias"] == "content-assistant"
            assert got["capability"] == "Chat" and got["connectionId"] == CONNECTION
        # four replacements, each a new version; the persona facts PUT does not show are kept
        assert got["version"] == 5
        doc = await app.service.get_profile("default", PROFILE)
        assert doc.attributes["persona.tone"].value == "warm, precise"
        assert [r.actor for r in await app.service.history("default", PROFILE)][:4] == ["rest"] * 4


# ---- GetProfile --------------------------------------------------------------------------


async def test_getprofile_post_queues_like_upsert_without_wait(config: Config) -> None:
    async with rest(config) as (http, app):
        r = await http.post(
            "/v1/profile/alice", json={"data": "I'm a backend engineer in Berlin.", "input_type": "note"}
        )
        assert r.status_code == 200
        body = r.json()
        assert body["id"] == "alice" and set(body) == {"id", "message"}
        assert body["message"].startswith("stored as job d_") and "ANTHROPIC_API_KEY" in body["message"]
        again = await http.post("/v1/profile/alice", json={"data": "I'm a backend engineer in Berlin."})
        assert "already received" in again.json()["message"]
        assert table_counts(config.db_path)["data_items"] == 1
        # the same data through the MCP tool is the same duplicate: one queue, one rule set
        async with Client(create_server(config, app=app)) as client:
            result = await client.call_tool(
                "upsert_profile_from_data",
                {"profile": "alice", "data": "I'm a backend engineer in Berlin.", "wait": False},
            )
            assert result.structured_content["status"] == "duplicate"
        got = await http.get("/v1/profile/alice")
        assert got.status_code == 200
        assert got.json()["profile_id"] == "alice" and got.json()["profile"]["kind"] == "user"
        gone = await http.delete("/v1/profile/alice")
        assert gone.status_code == 200 and gone.json() == {"id": "alice", "deleted": True}
        assert table_counts(config.db_path)["data_items"] == 0
        missing = await http.get("/v1/profile/alice")
        assert missing.status_code == 404
        assert missing.json()["error"] == 404 and missing.json()["message"].startswith("not_found: ")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "word"),
    [
        (b"{not json", "application/json", 400, "invalid: body: not valid JSON"),
        (b"[1, 2]", "application/json", 400, "invalid: body: must be a JSON object"),
        (b'{"data": 5}', "application/json", 400, "invalid: data: Input should be a valid string"),
        (b'{"input_type": "note"}', "application/json", 400, "invalid: data: required"),
        (b'{"data": "   "}', "application/json", 400, "invalid: data: must be non-empty"),
        (b'{"data": NaN}', "application/json", 400, "invalid: body: not valid JSON"),
        (b'{"data": "x"}', "text/plain", 415, "invalid: body: send JSON"),
        (b"", "application/json", 400, "invalid: body: required"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "invalid: body: nested deeper than 64"),
        (
            b'{"data": ' + b"9" * 100_000 + b"}",
            "application/json",
            400,
            "invalid: body: not valid JSON (a number",
        ),
        (b'{"data": "\\ud800 lone"}', "application/json", 400, "invalid: body: contains a lone surrogate"),
        (b'{"data": "\xff\xfe"}', "application/json", 400, "invalid: body: not valid JSON ('utf-8' codec"),
    ],
)
async def test_getprofile_bad_bodies_write_nothing(
    config: Config, body: bytes, content_type: str, status: int, word: str
) -> None:
    async with rest(config) as (http, _):
        before = table_counts(config.db_path)
        r = await http.post("/v1/profile/bob", content=body, headers={"Content-Type": content_type})
        assert r.status_code == status, r.text
        assert r.json()["error"] == status and r.json()["message"].startswith(word), r.json()
        assert table_counts(config.db_path) == before


async def test_getprofile_ignores_unknown_fields(config: Config) -> None:
    async with rest(config) as (http, app):
        r = await http.post("/v1/profile/carol", json={"data": "Carol likes tea.", "priority": "high"})
        assert r.status_code == 200
        assert (await app.service.get_profile("default", "carol")).kind == "user"


@pytest.mark.parametrize("bad_id", ["-starts-with-dash", "x" * 129, "has space", "ünï"])
async def test_getprofile_ids_must_follow_the_id_rules(config: Config, bad_id: str) -> None:
    async with rest(config) as (http, _):
        before = table_counts(config.db_path)
        r = await http.post(f"/v1/profile/{bad_id}", json={"data": "some data"})
        assert r.status_code == 400 and r.json()["message"].startswith("invalid: id: "), r.text
        assert table_counts(config.db_path) == before


async def test_oversized_bodies_are_refused_before_parsing(config: Config) -> None:
    small = replace(config, limits=Limits(max_data_bytes=1000))
    async with rest(small) as (http, _):
        before = table_counts(config.db_path)
        big = json.dumps({"data": "x" * 200_000})
        r = await http.post("/v1/profile/dave", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["message"].startswith("too_large: body: more than")
        r = await http.post("/v1/profile/dave", json={"data": "y" * 2000})
        assert r.status_code == 413 and r.json()["message"].startswith("too_large: data: 2000 bytes")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            for _ in range(100):
                yield b" " * 1000
            yield b'{"alias": "x"}'

        r = await http.post(f"{AI}/profiles", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
        assert table_counts(config.db_path) == before


# ---- tokens, namespaces, guards ----------------------------------------------------------


async def test_tokens_map_to_namespaces(secured: Config) -> None:
    async with rest(secured, token=None) as (http, _):
        for url in ("/v1/profile/x", f"{AI}/profiles", f"{AI}/connections/x"):
            r = await http.get(url)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        r = await http.get("/v1/profile/x", headers={"Authorization": "Bearer wrong"})
        assert r.json() == {"error": 401, "message": r.json()["message"]}
        assert r.json()["message"].startswith("unauthorized: ")
        r = await http.get(f"{AI}/profiles", headers={"Authorization": "Bearer wrong"})
        assert r.json()["status"] == 401 and r.json()["title"] == "Unauthorized"
        auth_a, auth_b = {"Authorization": f"Bearer {A}"}, {"Authorization": f"Bearer {B}"}
        assert (
            await http.post("/v1/profile/same", json={"data": "a's data"}, headers=auth_a)
        ).status_code == 200
        assert (await http.get("/v1/profile/same", headers=auth_b)).status_code == 404
        assert (await http.get("/v1/profile/same", headers=auth_a)).status_code == 200


async def test_host_and_origin_are_checked(config: Config) -> None:
    async with rest(config) as (http, _):
        r = await http.get("/v1/profile/x", headers={"Host": "evil.example"})
        assert r.status_code == 421 and r.json()["error"] == 421
        r = await http.get(f"{AI}/profiles", headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["title"] == "Forbidden"
        assert (await http.get("/openapi.json", headers={"Host": "evil.example"})).status_code == 421


async def test_unknown_paths_and_methods_answer_in_the_api_shape(config: Config) -> None:
    async with rest(config) as (http, _):
        r = await http.get("/v1/nothing/here")
        assert r.status_code == 404 and r.json()["error"] == 404
        r = await http.patch(f"{AI}/profiles/abc")
        assert r.status_code == 405 and r.headers["allow"] == "GET, PUT, DELETE"
        assert r.headers["content-type"] == "application/problem+json"
        r = await http.get(f"{AI}/nothing")
        assert r.status_code == 404 and r.json()["type"].endswith("section-6.5.4")


# ---- the AI management API ---------------------------------------------------------------


async def add_seed_connection(http: httpx2.AsyncClient, app: AppContext) -> None:
    await app.service.add_connection("default", CONNECTION, "openai", api_key_env="OPENAI_API_KEY")


CREATE = {
    "alias": "writer",
    "name": "Writer",
    "capability": "Chat",
    "model": {"providerId": "openai", "modelId": "gpt-4o"},
    "connectionId": CONNECTION,
    "settings": {
        "$type": "chat",
        "temperature": 0.7,
        "maxTokens": 4096,
        "contextIds": [],
        "guardrailIds": [],
    },
    "tags": ["content"],
}


async def test_create_get_list_exists_delete(config: Config) -> None:
    async with rest(config) as (http, app):
        before = table_counts(config.db_path)
        r = await http.post(f"{AI}/profiles", json=CREATE)
        assert r.status_code == 400 and r.json() == problem(400, "Connection not found")
        r = await http.post(f"{AI}/profiles", json={**CREATE, "capability": "Vision"})
        assert r.status_code == 400 and r.json()["detail"].startswith("capability: Input should be")
        assert table_counts(config.db_path) == before
        await add_seed_connection(http, app)
        r = await http.post(f"{AI}/profiles", json=CREATE)
        assert r.status_code == 201, r.text
        new_id = r.json()
        assert isinstance(new_id, str) and len(new_id) == 36 and new_id.count("-") == 4
        assert r.headers["location"] == f"/umbraco/ai/management/api/v1/profiles/{new_id}"
        got = (await http.get(r.headers["location"])).json()
        assert got["alias"] == "writer" and got["capability"] == "Chat" and got["version"] == 1
        assert got["settings"] == {"$type": "chat", "temperature": 0.7, "maxTokens": 4096}
        assert got["dateCreated"] and got["dateModified"]
        assert (await http.get(f"{AI}/profiles/writer")).json() == got
        assert (await http.get(f"{AI}/profiles/writer/exists")).json() is True
        assert (await http.get(f"{AI}/profiles/nobody/exists")).json() is False
        dup = await http.post(f"{AI}/profiles", json=CREATE)
        assert dup.status_code == 400 and "alias 'writer' is already used" in dup.json()["detail"]
        # a user profile shares the alias space but is not served here
        await app.service.update_profile("default", "ulla", {"name": "Ulla"}, create=True)
        assert (await http.get(f"{AI}/profiles/ulla")).json() == NOT_FOUND
        emb = {
            **CREATE,
            "alias": "vectors",
            "name": "Vectors",
            "capability": "Embedding",
            "settings": {"$type": "embedding", "dimensions": 256},
        }
        assert (await http.post(f"{AI}/profiles", json=emb)).status_code == 201
        listed = (await http.get(f"{AI}/profiles")).json()
        assert listed["total"] == 2 and {i["alias"] for i in listed["items"]} == {"writer", "vectors"}
        assert set(listed["items"][0]) == {
            "id",
            "alias",
            "name",
            "capability",
            "model",
            "dateCreated",
            "dateModified",
        }
        only = (await http.get(f"{AI}/profiles", params={"capability": "Embedding"})).json()
        assert only["total"] == 1 and only["items"][0]["capability"] == "Embedding"
        page = (await http.get(f"{AI}/profiles", params={"filter": "WRI", "skip": 0, "take": 1})).json()
        assert page["total"] == 1 and page["items"][0]["alias"] == "writer"
        assert (await http.get(f"{AI}/profiles", params={"skip": 1, "take": 5})).json()["total"] == 2
        assert len((await http.get(f"{AI}/profiles", params={"skip": 1, "take": 5})).json()["items"]) == 1
        bad = await http.get(f"{AI}/profiles", params={"take": "many"})
        assert bad.status_code == 400 and bad.json()["detail"].startswith("take: ")
        bad = await http.get(f"{AI}/profiles", params={"limit": "5"})
        assert bad.json() == problem(
            400, "'limit': unknown query parameter (accepted: filter, capability, skip, take)"
        )
        bad = await http.get("/v1/profile/alice", params={"format": "md"})
        assert bad.json()["message"] == "invalid: 'format': unknown query parameter (this route takes none)"
        r = await http.delete(f"{AI}/profiles/writer")
        assert r.status_code == 200 and r.content == b""
        assert (await http.get(f"{AI}/profiles/{new_id}")).json() == NOT_FOUND
        assert (await http.delete(f"{AI}/profiles/{new_id}")).json() == NOT_FOUND
        assert (await http.get(f"{AI}/profiles/writer/exists")).json() is False


async def test_put_replaces_and_capability_cannot_change(config: Config) -> None:
    async with rest(config) as (http, app):
        await add_seed_connection(http, app)
        new_id = (await http.post(f"{AI}/profiles", json=CREATE)).json()
        before = table_counts(config.db_path)
        body = {k: v for k, v in CREATE.items() if k != "settings"} | {"capability": "Embedding"}
        r = await http.put(f"{AI}/profiles/{new_id}", json=body)
        assert r.status_code == 400
        assert r.json() == problem(400, "capability: cannot change from 'Chat' after creation")
        r = await http.put(f"{AI}/profiles/{new_id}", json={**CREATE, "connectionId": "no-such-connection"})
        assert r.json() == problem(400, "Connection not found")
        r = await http.put(f"{AI}/profiles/nobody", json=CREATE)
        assert r.json() == NOT_FOUND
        for field, detail in [
            ("alias", "alias: required"),
            ("name", "name: required"),
            ("connectionId", "connectionId: required"),
        ]:
            r = await http.put(
                f"{AI}/profiles/{new_id}", json={k: v for k, v in CREATE.items() if k != field}
            )
            assert r.json() == problem(400, detail)
        r = await http.put(f"{AI}/profiles/{new_id}", json={**CREATE, "model": {"providerId": "openai"}})
        assert r.json() == problem(400, "model.modelId: required")
        r = await http.put(
            f"{AI}/profiles/{new_id}", json={**CREATE, "settings": {"$type": "chat", "maxTokens": "many"}}
        )
        assert r.json() == problem(400, "settings.maxTokens: Input should be a valid integer")
        r = await http.put(f"{AI}/profiles/{new_id}", json={**CREATE, "tags": "content"})
        assert r.status_code == 400 and r.json()["detail"].startswith("tags: ")
        lone = json.dumps({**CREATE, "name": "\ud800"}).encode()  # ASCII: \\ud800 escaped
        r = await http.put(
            f"{AI}/profiles/{new_id}", content=lone, headers={"Content-Type": "application/json"}
        )
        assert r.json()["detail"].startswith("body: contains a lone surrogate")
        r = await http.put(
            f"{AI}/profiles/{new_id}",
            content=b'{"tags": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert r.json() == problem(400, "body: nested deeper than 64 levels")
        r = await http.put(
            f"{AI}/profiles/{new_id}", json={**CREATE, "settings": {"$type": "chat", "temperature": 9}}
        )
        assert r.json() == problem(400, "settings.temperature: Input should be less than or equal to 2")
        assert table_counts(config.db_path) == before
        # replace: what is absent is cleared; unknown fields (read-only ones from a GET) are ignored
        current = (await http.get(f"{AI}/profiles/{new_id}")).json()
        r = await http.put(
            f"{AI}/profiles/{new_id}", json={**current, "settings": None, "tags": ["x"], "version": 99}
        )
        assert r.status_code == 200, r.text
        after = (await http.get(f"{AI}/profiles/{new_id}")).json()
        assert after["settings"] is None and after["tags"] == ["x"] and after["version"] == 2


async def test_connections_never_return_secrets(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-secret-value")
    async with rest(config) as (http, app):
        before = table_counts(config.db_path)
        leak = {
            "alias": "openai-prod",
            "name": "OpenAI",
            "providerId": "openai",
            "settings": {"apiKey": "sk-live-secret-value"},
        }
        r = await http.post(f"{AI}/connections", json=leak)
        assert r.status_code == 400 and r.json()["detail"].startswith(
            "settings.apiKey: secrets are never stored"
        )
        assert table_counts(config.db_path) == before
        body = {
            "alias": "openai-prod",
            "name": "OpenAI Production",
            "providerId": "openai",
            "settings": {"apiKey": "$OPENAI_API_KEY", "organization": "org-123"},
            "isActive": True,
        }
        r = await http.post(f"{AI}/connections", json=body)
        assert r.status_code == 201
        conn_id = r.json()
        got = (await http.get(f"{AI}/connections/openai-prod")).json()
        assert got["id"] == conn_id and got["providerId"] == "openai" and got["version"] == 1
        assert got["settings"] == {"apiKey": "$OPENAI_API_KEY", "organization": "org-123"}
        stored = await app.service.get_connection("default", conn_id)
        assert stored.api_key_env == "OPENAI_API_KEY" and "apiKey" not in stored.settings
        update = {
            "name": "OpenAI Production (Updated)",
            "isActive": False,
            "settings": {"apiKey": "$Umbraco:AI:Secrets:OpenAIApiKey"},
        }
        assert (await http.put(f"{AI}/connections/{conn_id}", json=update)).status_code == 200
        got = (await http.get(f"{AI}/connections/{conn_id}")).json()
        assert (
            got["settings"] == {"apiKey": "$Umbraco__AI__Secrets__OpenAIApiKey"} and got["isActive"] is False
        )
        assert got["alias"] == "openai-prod" and got["version"] == 2
        r = await http.put(f"{AI}/connections/{conn_id}", json={**update, "providerId": "anthropic"})
        assert r.json() == problem(400, "providerId: cannot change from 'openai' after creation")
        listing = await http.get(f"{AI}/connections")
        assert listing.json()["total"] == 1
        for response in (listing, r):
            assert "sk-live-secret-value" not in response.text
        # in use by a profile: 400, and nothing removed
        assert (
            await http.post(f"{AI}/profiles", json={**CREATE, "connectionId": "openai-prod"})
        ).status_code == 201
        r = await http.delete(f"{AI}/connections/openai-prod")
        assert r.status_code == 400 and "is used by" in r.json()["detail"]
        assert (await http.delete(f"{AI}/connections/missing")).json() == {
            **NOT_FOUND,
            "detail": "Connection not found",
        }


# ---- one service, one bus: REST and MCP see each other's writes --------------------------


async def test_rest_writes_notify_mcp_subscribers_of_the_same_namespace(secured: Config) -> None:
    async with rest(secured, token=None) as (http, app):
        await add_seed_connection(http, app)
        auth_a, auth_b = {"Authorization": f"Bearer {A}"}, {"Authorization": f"Bearer {B}"}
        async with Client(create_server(secured, app=app)) as client:  # in-process: the default namespace
            uris = ["profile://alice", "profile://other"]
            async with client.listen(resources_list_changed=True, resource_subscriptions=uris) as sub:
                # team-b's write goes first and must not arrive; then default's
                assert (
                    await http.post("/v1/profile/other", json={"data": "b"}, headers=auth_b)
                ).status_code == 200
                assert (
                    await http.post("/v1/profile/alice", json={"data": "a"}, headers=auth_a)
                ).status_code == 200
                assert await next_events(sub, 2, linger=0.3) == [
                    ResourceUpdated(uri="profile://alice"),
                    ResourcesListChanged(),
                ]
                r = await http.post(f"{AI}/profiles", json=CREATE, headers=auth_a)
                new = f"profile://{r.json()}"
            async with client.listen(resources_list_changed=True, resource_subscriptions=[new]) as sub:
                assert (
                    await http.put(f"{AI}/profiles/writer", json={**CREATE, "name": "W2"}, headers=auth_a)
                ).status_code == 200
                assert await next_events(sub, 1, linger=0.3) == [ResourceUpdated(uri=new)]
                assert (await http.delete(f"{AI}/profiles/writer", headers=auth_a)).status_code == 200
                assert await next_events(sub, 2, linger=0.3) == [
                    ResourceUpdated(uri=new),
                    ResourcesListChanged(),
                ]


async def test_mcp_writes_are_visible_through_rest(config: Config) -> None:
    async with rest(config) as (http, app):
        await seed_connection_and_profile(app)
        got = (await http.get(f"{AI}/profiles/content-assistant")).json()
        assert got["id"] == PROFILE and got["model"] == {"providerId": "openai", "modelId": "gpt-4o"}
        wrapped = (await http.get(f"/v1/profile/{PROFILE}")).json()
        assert wrapped["profile"]["attributes"]["persona.tone"]["value"] == "warm, precise"
        async with Client(create_server(config, app=app)) as client:
            await client.call_tool(
                "update_profile", {"profile": "content-assistant", "patch": {"tags": ["mcp"]}}
            )
        assert (await http.get(f"{AI}/profiles/{PROFILE}")).json()["tags"] == ["mcp"]


# ---- /openapi.json -----------------------------------------------------------------------


async def test_openapi_document_describes_every_route(config: Config) -> None:
    async with rest(config) as (http, _):
        doc = (await http.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) >= {
        "/v1/profile/{id}",
        "/umbraco/ai/management/api/v1/profiles",
        "/umbraco/ai/management/api/v1/profiles/{profileIdOrAlias}",
        "/umbraco/ai/management/api/v1/profiles/{alias}/exists",
        "/umbraco/ai/management/api/v1/connections",
        "/umbraco/ai/management/api/v1/connections/{connectionIdOrAlias}",
    }
    schemas = doc["components"]["schemas"]
    # generated from the validating models: the rules are the same ones the routes apply
    assert schemas["ChatSettingsIn"]["properties"]["temperature"]["anyOf"][0] == {
        "maximum": 2.0,
        "minimum": 0.0,
        "type": "number",
    }
    assert set(schemas["ProfileUpdate"]["required"]) == {"alias", "name", "model", "connectionId"}
    assert schemas["ProfileData"]["required"] == ["data"]
    put = doc["paths"]["/umbraco/ai/management/api/v1/profiles/{profileIdOrAlias}"]["put"]
    assert put["responses"]["404"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    assert "security" not in doc  # loopback without tokens


async def test_the_sse_deployment_serves_rest_too(config: Config) -> None:
    async with rest(config, transport_name="sse") as (http, _):
        assert (await http.get("/openapi.json")).json()["openapi"] == "3.1.0"
        assert (await http.post("/v1/profile/erin", json={"data": "Erin codes in Go."})).status_code == 200
        assert (await http.get("/v1/profile/erin")).json()["profile_id"] == "erin"
