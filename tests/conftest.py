"""Shared fixtures: an isolated database per test, and in-process MCP clients.

A module marked ``pytest.mark.backends`` runs each of its tests against both stores:
``[sqlite]`` on a file in the test's folder, ``[postgres]`` on a fresh database in one
throwaway PostgreSQL cluster started for the session (tests/pgcluster.py). Tests that
read SQLite's own files are marked ``pytest.mark.sqlite_only`` and run once.

Clients are entered inside test bodies (``async with connect() as client``), never in
async-generator fixtures: pytest-asyncio tears fixtures down in another task, which the
client's anyio task groups refuse (SDK guide §6).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_profiles.config import Config
from mcp_profiles.server import create_server
from tests.pgcluster import HOW_TO_ENABLE, Cluster, pg_bin

BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("backend", ["sqlite"] if only else list(BACKENDS), indirect=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL server for the whole run; skips when there is none."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip(HOW_TO_ENABLE)
    cluster = Cluster(bindir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """A fresh schema of the session's PostgreSQL server, as a URL."""
    return pg_cluster.create_schema()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Which store this test runs on (``sqlite`` unless the module is marked ``backends``)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def db_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """This test's own database: a file, or a fresh PostgreSQL database's URL."""
    if backend == "postgres":
        cluster: Cluster = request.getfixturevalue("pg_cluster")
        return cluster.create_schema()
    return str(tmp_path / "profiles.sqlite3")


@pytest.fixture(autouse=True)
def _isolated_env(db_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's database, API key or settings."""
    monkeypatch.setenv("MCP_PROFILES_DB", db_target)
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "MCP_PROFILES_TOKENS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def config(db_target: str) -> Config:
    """A configuration pointing at this test's own database."""
    return Config(db=db_target)


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
