"""Property tests of the REST APIs against their own ``/openapi.json`` (schemathesis).

schemathesis loads the document from the deployment's ASGI app in-process
(``schemathesis.openapi.from_asgi``), generates valid and invalid requests for every route
(a bounded number each), and checks every answer: no 5xx, status codes, content types,
headers and bodies as documented, invalid input rejected, and no route that ignores the
bearer token. It runs the app on its own event-loop thread, so the app's lifespan here
opens the store and builds the deployment, as ``mcp-profiles serve`` does.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi as schemathesis_asgi

from mcp_profiles.app import build_http_app
from mcp_profiles.config import Config
from mcp_profiles.runtime import open_app

TOKEN = "tok-schema-0123456789"
CONNECTION = "d290f1ee-6c54-4b01-90e6-d701748f0851"
PROFILE = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
MAX_EXAMPLES = 25


class Deployment:
    """The deployment's ASGI app, built in its own lifespan over a fresh database with the
    seed document's connection and profile, so generated ids sometimes hit real ones."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.starts = 0
        self.asgi: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.asgi(scope, receive, send)
            return
        async with AsyncExitStack() as stack:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.starts += 1  # schemathesis may restart the app: each start gets a new database
                    db = Path(self.folder) / f"profiles-{self.starts}.sqlite3"
                    config = Config(db=str(db), tokens={TOKEN: "default"})
                    app = await stack.enter_async_context(open_app(config, worker=False))
                    await app.service.add_connection("default", CONNECTION, "openai", alias="openai-main")
                    await app.service.update_profile(
                        "default",
                        PROFILE,
                        {
                            "alias": "content-assistant",
                            "name": "Content Assistant",
                            "model": {"provider_id": "openai", "model_id": "gpt-4o"},
                            "connection_id": CONNECTION,
                        },
                        create=True,
                        kind="assistant",
                    )
                    self.asgi, _ = build_http_app(
                        config, "http", port=8000, app=app, allowed_hosts=["testserver"]
                    )
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    break
        await send({"type": "lifespan.shutdown.complete"})


CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": MAX_EXAMPLES},
        # the token as the document's "bearer" scheme, so schemathesis also sends requests without it
        "auth": {"openapi": {"bearer": {"bearer": TOKEN}}},
        "checks": {
            # Schema-valid input can still break a rule JSON Schema cannot state (an unknown
            # connection, a taken alias, data over the byte limit): the API answers 400/413. No
            # 401: valid requests carry the token, so a 401 would mean the token was not honoured.
            "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404", "409", "413"]},
        },
    }
)


# Loaded at collection, as ``@schema.parametrize()`` needs it (``schemathesis.pytest.from_fixture``
# does not work with pytest 9); the database lives in a folder removed when the module ends.
_DIR = tempfile.mkdtemp(prefix="mcp-profiles-schema-")
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    Deployment(_DIR),
    config=CONFIG,
)


@pytest.fixture(scope="module", autouse=True)
def _stop_the_app() -> Iterator[None]:
    yield
    schemathesis_asgi.shutdown_lifespans()
    shutil.rmtree(_DIR, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_answers_as_documented(case: Any) -> None:
    case.call_and_validate()
