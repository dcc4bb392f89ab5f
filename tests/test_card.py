"""The profile card's server side through the in-process Client: the ``ui://`` resource, the
``show_profile`` tool and its link to the card, what text-only hosts get, and argument
completion of profile ids and aliases."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.types import PromptReference, ResourceTemplateReference, TextResourceContents

from mcp_profiles.card import CARD_URI, card_html
from mcp_profiles.config import Config
from mcp_profiles.server import create_server
from tests.conftest import ASSISTANT_BODY
from tests.fakes import MessagesAPI, anthropic_llm
from tests.helpers import add_connection, text

pytestmark = pytest.mark.backends  # every test on SQLite and on PostgreSQL (conftest)

APP_MIME = "text/html;profile=mcp-app"
UI = "io.modelcontextprotocol/ui"


def apps_client(config: Config, **server_kwargs: Any) -> Client:
    """A client that advertises MCP Apps, as Claude, ChatGPT, VS Code and Goose do."""
    return Client(
        create_server(config, **server_kwargs), extensions=[advertise(UI, {"mimeTypes": [APP_MIME]})]
    )


async def seed(config: Config) -> None:
    api = MessagesAPI()
    api.enqueue_tool(
        {
            "operations": [
                {
                    "op": "set",
                    "key": "work.role",
                    "value": "backend engineer",
                    "confidence": 0.9,
                    "evidence": "I'm a backend engineer",
                }
            ]
        }
    )
    api.enqueue_error(400, "invalid_request_error", message="prompt is too long")
    async with Client(create_server(config, llm=anthropic_llm(api, max_retries=0))) as client:
        await client.call_tool(
            "update_profile",
            {
                "profile": "alice",
                "create": True,
                "patch": {"name": "Alice", "attributes": {"preferences.tone": "dry"}},
            },
        )
        done = await client.call_tool(
            "upsert_profile_from_data",
            {"profile": "alice", "data": "User: I'm a backend engineer in Berlin."},
        )
        assert done.is_error is False, text(done)
        failed = await client.call_tool("upsert_profile_from_data", {"profile": "alice", "data": "User: bye"})
        assert failed.is_error is True
    async with Client(create_server(config)) as client:
        await client.call_tool(
            "upsert_profile_from_data",
            {"profile": "alice", "data": "User: I moved to Lisbon.", "wait": False},
        )


async def test_card_is_a_ui_resource_served_as_an_mcp_app(config: Config) -> None:
    async with apps_client(config) as client:
        assert client.server_capabilities is not None
        assert UI in (client.server_capabilities.extensions or {})
        read = await client.read_resource(CARD_URI)
    [content] = read.contents
    assert isinstance(content, TextResourceContents)
    assert content.mime_type == APP_MIME
    assert content.text.lower().startswith("<!doctype html>")
    assert content.meta == {"ui": {"prefersBorder": True}}


async def test_show_profile_links_the_card_for_both_model_and_app(config: Config) -> None:
    async with apps_client(config) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    show = tools["show_profile"]
    assert show.meta is not None
    assert show.meta["ui"] == {"resourceUri": CARD_URI, "visibility": ["model", "app"]}
    assert show.annotations is not None and show.annotations.read_only_hint is True
    assert show.output_schema is not None and {"profile", "data_items", "last_change"} <= set(
        show.output_schema["properties"]
    )
    assert tools["get_profile"].meta is None  # reading a profile does not pop up a card


def test_card_html_is_self_contained_and_never_parses_data_as_markup() -> None:
    html = card_html()
    assert re.findall(r"https?://|//cdn|@import|url\(", html) == []
    assert re.findall(r"<(?:link|img|iframe|object|embed)\b|\bsrc=|\bhref=", html) == []
    forbidden = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function")
    assert [word for word in forbidden if word in html] == []
    assert re.findall(r"\b(?:fetch|XMLHttpRequest|WebSocket|EventSource|importScripts)\b", html) == []
    assert html.count("<script>") == 1 and html.count("<style>") == 1


async def test_show_profile_gives_text_only_hosts_the_same_facts_as_text(config: Config) -> None:
    await seed(config)
    async with Client(create_server(config)) as plain, apps_client(config) as apps:
        seen = await plain.call_tool("show_profile", {"profile": "alice"})
        rendered = await apps.call_tool("show_profile", {"profile": "alice"})
        plain_doc = await plain.call_tool("get_profile", {"profile": "alice"})
        apps_doc = await apps.call_tool("get_profile", {"profile": "alice"})
    assert seen.is_error is False
    # the server does not branch on the host: a text-only host gets exactly what a card gets
    assert seen.model_dump() == rendered.model_dump()
    assert plain_doc.model_dump() == apps_doc.model_dump()
    body = text(seen)
    assert body.startswith("# Alice")
    assert "- **role**: backend engineer _(extracted, 0.90)_" in body and "- **tone**: dry" in body
    assert "1 data item(s) are waiting to be processed." in body
    assert re.search(r"Data item d_\w+ failed: .*prompt is too long", body)
    assert re.search(r"Last change: version 2 by extraction at ", body)


async def test_show_profile_lists_unsettled_and_cited_data_with_the_last_change(config: Config) -> None:
    await seed(config)
    async with Client(create_server(config)) as client:
        card = (await client.call_tool("show_profile", {"profile": "alice"})).structured_content
    profile = card["profile"]
    assert profile["id"] == "alice" and profile["version"] == 2
    [evidence] = profile["attributes"]["work.role"]["evidence"]
    items = {i["data_id"]: i for i in card["data_items"]}
    assert set(items) == {evidence["data_id"], *(i for i in items if items[i]["status"] != "done")}
    statuses = sorted(i["status"] for i in items.values())
    assert statuses == ["done", "failed", "pending"]
    cited = items[evidence["data_id"]]
    assert cited["status"] == "done" and cited["received_at"].endswith("Z") and cited["error"] is None
    [failed] = [i for i in items.values() if i["status"] == "failed"]
    assert "prompt is too long" in failed["error"]
    assert card["last_change"]["version"] == 2 and card["last_change"]["actor"] == "extraction"
    assert card["data_counts"] == {"done": 1, "failed": 1, "pending": 1}


async def test_show_profile_lists_the_oldest_hundred_unsettled_items_and_counts_them_all(
    config: Config,
) -> None:
    async with Client(create_server(config)) as client:
        for n in range(103):
            queued = await client.call_tool(
                "upsert_profile_from_data", {"profile": "bulk", "data": f"User: note {n}", "wait": False}
            )
            assert queued.structured_content["status"] == "pending", text(queued)
        result = await client.call_tool("show_profile", {"profile": "bulk"})
    card = result.structured_content
    assert len(card["data_items"]) == 100 and card["data_counts"] == {"pending": 103}
    assert [i["status"] for i in card["data_items"]] == ["pending"] * 100
    assert "103 data item(s) are waiting to be processed." in text(result)


async def test_show_profile_of_a_missing_profile_is_not_found(config: Config) -> None:
    async with Client(create_server(config)) as client:
        result = await client.call_tool("show_profile", {"profile": "nobody"})
    assert result.is_error is True and text(result).startswith("not_found:")


# ---- completion/complete -------------------------------------------------------------

TEMPLATE = ResourceTemplateReference(type="ref/resource", uri="profile://{ref}")


def prompt(name: str) -> PromptReference:
    return PromptReference(type="ref/prompt", name=name)


async def seed_refs(config: Config) -> None:
    await add_connection(config)
    async with Client(create_server(config)) as client:
        for ref in ("alice", "Alfred", "bob", "al_x", "alphaz"):
            made = await client.call_tool("update_profile", {"profile": ref, "create": True})
            assert made.is_error is False, text(made)
        made = await client.call_tool(
            "update_profile",
            {"profile": "3fa85f64", "create": True, "kind": "assistant", "patch": ASSISTANT_BODY},
        )
        assert made.is_error is False, text(made)


async def test_completion_is_advertised_and_offers_ids_and_aliases_of_any_kind_for_the_template(
    config: Config,
) -> None:
    await seed_refs(config)
    async with Client(create_server(config)) as client:
        assert client.server_capabilities is not None and client.server_capabilities.completions is not None
        by_id = await client.complete(TEMPLATE, {"name": "ref", "value": "al"})
        by_alias = await client.complete(TEMPLATE, {"name": "ref", "value": "content"})
        everything = await client.complete(TEMPLATE, {"name": "ref", "value": ""})
    assert by_id.completion.values == ["Alfred", "al_x", "alice", "alphaz"]
    assert by_id.completion.total == 4 and by_id.completion.has_more is False
    assert by_alias.completion.values == ["content-assistant"]
    assert set(everything.completion.values) == {
        "Alfred", "al_x", "alice", "alphaz", "bob", "3fa85f64", "content-assistant"
    }  # fmt: skip


async def test_completion_of_prompt_arguments_follows_the_kind_they_name(config: Config) -> None:
    await seed_refs(config)
    async with Client(create_server(config)) as client:
        user = await client.complete(prompt("personalize"), {"name": "user", "value": "b"})
        assistant = await client.complete(prompt("personalize"), {"name": "assistant", "value": ""})
        no_user_assistants = await client.complete(prompt("personalize"), {"name": "user", "value": "con"})
        review = await client.complete(prompt("review_profile"), {"name": "profile", "value": "con"})
        remember = await client.complete(prompt("remember"), {"name": "user", "value": "ALI"})
        note = await client.complete(prompt("remember"), {"name": "note", "value": "al"})
    assert user.completion.values == ["bob"]
    assert assistant.completion.values == ["3fa85f64", "content-assistant"]
    assert no_user_assistants.completion.values == []
    assert review.completion.values == ["content-assistant"]
    assert remember.completion.values == ["alice"]
    assert note.completion.values == []


async def test_completion_treats_like_wildcards_as_text_and_stays_in_the_namespace(config: Config) -> None:
    await seed_refs(config)
    other = dataclasses.replace(config, namespace="other")
    async with Client(create_server(other)) as client:
        await client.call_tool("update_profile", {"profile": "alien", "create": True})
        theirs = await client.complete(TEMPLATE, {"name": "ref", "value": "al"})
    async with Client(create_server(config)) as client:
        underscore = await client.complete(TEMPLATE, {"name": "ref", "value": "al_"})
        percent = await client.complete(TEMPLATE, {"name": "ref", "value": "%"})
        ours = await client.complete(TEMPLATE, {"name": "ref", "value": "ali"})
    assert theirs.completion.values == ["alien"]
    assert underscore.completion.values == ["al_x"]
    assert percent.completion.values == []
    assert ours.completion.values == ["alice"]
