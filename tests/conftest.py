"""Shared fixtures: an isolated database per test, and in-process MCP clients.

Clients are entered inside test bodies (``async with connect() as client``), never in
async-generator fixtures: pytest-asyncio tears fixtures down in another task, which the
client's anyio task groups refuse (SDK guide §6).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_profiles.config import Config
from mcp_profiles.server import create_server


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's database, API key or settings."""
    monkeypatch.setenv("MCP_PROFILES_DB", str(tmp_path / "profiles.sqlite3"))
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "MCP_PROFILES_TOKENS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A configuration pointing at this test's own database file."""
    return Config(db=str(tmp_path / "profiles.sqlite3"))


@pytest.fixture
def connect(config: Config) -> Callable[..., Client]:
    """``async with connect(**client_kwargs) as client:`` — a fresh server over ``config``."""

    def _connect(
        cfg: Config | None = None, server_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> Client:
        return Client(create_server(cfg or config, **(server_kwargs or {})), **kwargs)

    return _connect


ASSISTANT_BODY = {
    "alias": "content-assistant",
    "name": "Content Assistant",
    "model": {"providerId": "anthropic", "modelId": "claude-haiku-4-5"},
    "connectionId": "anthropic-main",
    "settings": {
        "$type": "chat",
        "temperature": 0.5,
        "maxTokens": 8192,
        "systemPromptTemplate": "You help {{user.name}}. Answer {{user.preferences.answer_length}}.",
    },
    "tags": ["content"],
}
