"""The Anthropic adapter through the real SDK over a scripted Messages API."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx2
import pytest

from mcp_profiles.errors import ExtractionFailed
from mcp_profiles.extract import TOOL_NAME, DataChunk, build_request, extraction_schema
from mcp_profiles.llm import DEFAULT_MODEL, AnthropicLLM, LLMRequest, Usage, anthropic_from_env
from mcp_profiles.models import Profile
from tests.fakes import MessagesAPI, anthropic_llm

OK: dict[str, Any] = {"operations": [], "summary": None}


def request_for(text: str, data_id: str = "d_1") -> LLMRequest:
    return build_request(
        "user",
        Profile(id="alice", name="Alice"),
        [DataChunk(data_id, "chat history", text)],
        system="STATIC SYSTEM PROMPT",
        catalogue=["work", "interests"],
        allow_sensitive=False,
        max_tokens=1024,
    )


async def test_request_forces_the_tool_and_caches_the_static_prefix() -> None:
    api = MessagesAPI()
    api.enqueue_tool(OK)
    api.enqueue_tool(OK)
    llm = anthropic_llm(api, model="claude-haiku-4-5")
    try:
        await llm.complete(request_for("User: I like tea"))
        await llm.complete(request_for("User: I moved to Oslo", data_id="d_2"))
    finally:
        await llm.aclose()
    first, second = (r["body"] for r in api.requests)
    assert first["model"] == "claude-haiku-4-5"
    assert first["max_tokens"] == 1024
    assert first["tool_choice"] == {"type": "tool", "name": TOOL_NAME, "disable_parallel_tool_use": True}
    assert [t["name"] for t in first["tools"]] == [TOOL_NAME]
    assert first["tools"][0]["input_schema"] == extraction_schema()
    assert first["system"] == second["system"]
    [system] = first["system"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert system["text"].startswith("STATIC SYSTEM PROMPT\n\n<topic_catalogue")
    context, data = first["messages"][0]["content"]
    assert "cache_control" not in context and "cache_control" not in data
    assert '<data id="d_1" input_type="chat history">\nUser: I like tea\n</data>' in data["text"]
    assert "I moved to Oslo" in second["messages"][0]["content"][1]["text"]
    # API version 2026-10-21 rejects sampling parameters, even temperature 0.
    assert not {"temperature", "top_p", "top_k"} & set(first)
    assert api.requests[0]["headers"]["authorization"] == "Bearer test-key"


async def test_answer_carries_tool_input_text_and_usage_with_cache_tokens() -> None:
    api = MessagesAPI()
    usage = {
        "input_tokens": 50,
        "output_tokens": 9,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 0,
    }
    api.enqueue_tool(OK, usage, text="Recording.")
    llm = anthropic_llm(api)
    try:
        answer = await llm.complete(request_for("User: hi"))
    finally:
        await llm.aclose()
    assert answer.tool_input == OK
    assert answer.tool_use_id == "toolu_fake_0001"
    assert answer.text == "Recording."
    assert answer.stop_reason == "tool_use"
    assert answer.model == "claude-haiku-5-5"
    assert answer.usage == Usage(1, 50, 9, 2000, 0)


async def test_rate_limit_is_retried_then_succeeds() -> None:
    api = MessagesAPI()
    api.enqueue_error(429, "rate_limit_error", {"retry-after": "0"})
    api.enqueue_tool(OK)
    llm = anthropic_llm(api, max_retries=2)
    try:
        answer = await llm.complete(request_for("User: hi"))
    finally:
        await llm.aclose()
    assert answer.tool_input == OK
    assert [r["headers"]["x-stainless-retry-count"] for r in api.requests] == ["0", "1"]


async def test_overload_after_all_retries_is_extraction_failed() -> None:
    api = MessagesAPI()
    for _ in range(3):
        api.enqueue_error(529, "overloaded_error")
    llm = anthropic_llm(api, max_retries=2)
    try:
        with pytest.raises(ExtractionFailed) as caught:
            await llm.complete(request_for("User: hi"))
    finally:
        await llm.aclose()
    assert len(api.requests) == 3
    assert caught.value.message == "Anthropic API overloaded (529) after 2 retries; try again later"
    assert str(caught.value).startswith("extraction_failed: ")


async def test_rejected_key_says_which_variable_to_check_and_is_not_retried() -> None:
    api = MessagesAPI()
    api.enqueue_error(401, "authentication_error", message="invalid x-api-key sk-ant-secret")
    llm = anthropic_llm(api)
    try:
        with pytest.raises(ExtractionFailed) as caught:
            await llm.complete(request_for("User: hi"))
    finally:
        await llm.aclose()
    assert len(api.requests) == 1
    assert "ANTHROPIC_API_KEY" in caught.value.message and "401" in caught.value.message
    assert "sk-ant" not in str(caught.value) and "req_fake" not in str(caught.value)


async def test_bad_request_names_the_api_reason() -> None:
    api = MessagesAPI()
    api.enqueue_error(400, "invalid_request_error", message="prompt is too long: 250000 tokens > 200000")
    llm = anthropic_llm(api)
    try:
        with pytest.raises(ExtractionFailed) as caught:
            await llm.complete(request_for("User: hi"))
    finally:
        await llm.aclose()
    assert caught.value.message.startswith("Anthropic API rejected the request (400 invalid_request_error)")
    assert "prompt is too long" in caught.value.message


async def test_connection_error_after_retries_is_extraction_failed() -> None:
    api = MessagesAPI()
    for _ in range(2):
        api.enqueue_exception(httpx2.ConnectError("connection refused"))
    llm = anthropic_llm(api, max_retries=1)
    try:
        with pytest.raises(ExtractionFailed) as caught:
            await llm.complete(request_for("User: hi"))
    finally:
        await llm.aclose()
    assert caught.value.message.startswith("could not reach the Anthropic API (ConnectError")


async def test_missing_credentials_is_extraction_failed() -> None:
    api = MessagesAPI()
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(api.handler))
    llm = AnthropicLLM("claude-haiku-5-5", http_client=client, max_retries=0)
    try:
        with pytest.raises(ExtractionFailed) as caught:
            await llm.complete(request_for("User: hi"))
    finally:
        await llm.aclose()
    assert caught.value.message == "no Anthropic credentials; set ANTHROPIC_API_KEY"
    assert api.requests == []


def test_anthropic_backend_exists_only_with_a_key() -> None:
    assert anthropic_from_env("claude-haiku-5-5", {}) is None
    assert anthropic_from_env("claude-haiku-5-5", {"ANTHROPIC_API_KEY": "  "}) is None
    llm = anthropic_from_env("", {"ANTHROPIC_API_KEY": "sk-secret-1", "ANTHROPIC_BASE_URL": "http://proxy"})
    assert llm is not None and llm.model == DEFAULT_MODEL and llm.base_url == "http://proxy"
    assert "sk-secret-1" not in repr(llm)


def test_default_model_is_current_and_not_deprecated() -> None:
    from typing import get_args

    from anthropic._data import DEPRECATED_MODELS
    from anthropic.types import ModelParam

    literal = get_args(get_args(ModelParam)[0])
    assert DEFAULT_MODEL in literal and DEFAULT_MODEL not in DEPRECATED_MODELS


def test_usage_adds_and_weighs_cache_tokens() -> None:
    total = Usage(1, 100, 10, 1000, 0) + Usage(1, 100, 10, 0, 1000)
    assert total == Usage(2, 200, 20, 1000, 1000)
    assert total.billed_input_equivalent() == pytest.approx(200 + 1250 + 100)
    assert total.as_dict()["cache_read_input_tokens"] == 1000


def test_importing_the_extraction_modules_does_not_import_anthropic() -> None:
    code = (
        "import sys, mcp_profiles.llm, mcp_profiles.extract, mcp_profiles.merge, mcp_profiles.prompts; "
        "sys.exit('anthropic' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
