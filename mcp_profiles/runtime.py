"""What one running process holds: the store, the services, the extraction worker.

Opened once per process by ``mcp-profiles serve`` (every SSE connection shares it), or
per in-process client in tests. The worker resumes interrupted items when it starts; the
retention sweep runs at start and then every ``Config.prune_interval`` seconds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from .bus import NamespacedBus, profile_uri
from .config import Config
from .contract import ChangeFeed, Store
from .jobs import Extractor
from .lifecycle import Lifecycle
from .llm import LLM, AnthropicLLM
from .service import ProfileService
from .stores import open_store

__all__ = ["AppContext", "llm_from_env", "open_app"]

log = logging.getLogger("mcp_profiles")


@dataclass
class AppContext:
    """What every request handler needs; yielded by the MCP lifespan."""

    config: Config
    store: Store
    service: ProfileService
    bus: NamespacedBus
    extractor: Extractor
    lifecycle: Lifecycle = field(init=False)

    def __post_init__(self) -> None:
        self.lifecycle = Lifecycle(self.store, self.config, self.service.announce)


def llm_from_env(config: Config, env: Mapping[str, str] | None = None) -> LLM | None:
    """Anthropic when ``ANTHROPIC_API_KEY`` is set (and extraction is not switched off)."""
    env = os.environ if env is None else env
    if config.extraction == "none" or not env.get("ANTHROPIC_API_KEY", "").strip():
        return None
    return AnthropicLLM(config.model, timeout=config.llm_timeout, max_retries=config.llm_max_retries)


ERASURE_TICK_SECONDS = 5.0


async def _finish_erasures(store: Store) -> None:
    """The periodic tick that completes an erasure a reader held back, when no write comes."""
    while True:
        await anyio.sleep(ERASURE_TICK_SECONDS)
        if store.wal_pending:
            try:
                await store.finish_erasure()
            except Exception:  # a locked or busy file: the next tick, write or close retries
                log.warning("checkpoint after erasure failed; retrying", exc_info=True)


async def sweep(lifecycle: Lifecycle, interval: float) -> None:
    """Apply the retention settings now and every ``interval`` seconds (runs until cancelled)."""
    while True:
        try:
            counts = await lifecycle.prune()
        except Exception:  # a failed sweep must not stop the server; the next one retries
            log.exception("retention sweep failed")
        else:
            if counts.data_contents or counts.revisions:
                log.info(
                    "retention: deleted the content of %d data item(s) and %d old version(s)",
                    counts.data_contents,
                    counts.revisions,
                )
        await anyio.sleep(interval)


@asynccontextmanager
async def open_app(
    config: Config, *, llm: LLM | None = None, bus: NamespacedBus | None = None, worker: bool = True
) -> AsyncIterator[AppContext]:
    """Open the store and start the extraction worker; stop and close on exit."""
    bus = bus or NamespacedBus(config.namespace)
    async with open_store(config.db_path) as store:
        service = ProfileService(store, config, bus)

        async def on_change(ns: str, profile_id: str) -> None:
            await service.announce(ns, profile_id, listed=False)

        extractor = Extractor(store, service, config, llm, on_change=on_change)
        app = AppContext(config, store, service, bus, extractor)
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(bus.run)
                if worker:
                    tg.start_soon(extractor.run_worker)
                    tg.start_soon(sweep, app.lifecycle, config.prune_interval)
                tg.start_soon(_finish_erasures, store)
                if isinstance(store, ChangeFeed):

                    async def deliver(ns: str, profile_id: str, listed: bool) -> None:
                        await bus.announce(ns, profile_uri(profile_id), listed=listed)

                    tg.start_soon(store.follow_changes, deliver)
                try:
                    yield app
                except Exception as e:  # re-raised below, not wrapped in an ExceptionGroup
                    failure = e
                finally:
                    tg.cancel_scope.cancel()
            if failure is not None:
                raise failure
        finally:
            if llm is not None:
                await llm.aclose()
