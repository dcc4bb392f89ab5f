"""A scripted Message Batches endpoint for the real SDK over ``httpx2.MockTransport``.

``POST /v1/messages/batches`` creates a batch, ``GET /v1/messages/batches/{id}`` reports it
``in_progress`` for ``polls`` retrievals and then ``ended``, and ``GET {results_url}``
streams one JSONL line per request, as the API does. Each request's message is produced by
``answer`` (a function of the request's params returning a Messages API response body);
``outcome`` can make a request ``errored``, ``expired`` or ``canceled`` instead. Used by
``bench/cost.py`` (the batch scenario) and by ``tests/test_batches.py``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

Answer = Callable[[dict[str, Any]], dict[str, Any]]
Outcome = Callable[[str, dict[str, Any]], str]

BASE = "/v1/messages/batches"


@dataclass
class _Batch:
    id: str
    requests: list[dict[str, Any]]
    polls_left: int
    results: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False


class BatchesAPI:
    """Scripted batches; every HTTP request is recorded in ``calls`` as (method, path)."""

    def __init__(self, answer: Answer, *, polls: int = 1, outcome: Outcome | None = None) -> None:
        self.answer = answer
        self.polls = polls
        self.outcome = outcome or (lambda custom_id, params: "succeeded")
        self.batches: dict[str, _Batch] = {}
        self.calls: list[tuple[str, str]] = []
        self.messages = handler_for(answer)

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        self.calls.append((request.method, path))
        if path == "/v1/messages" and request.method == "POST":
            return self.messages(request)
        if path == BASE and request.method == "POST":
            body = json.loads(request.content)
            batch = _Batch(f"msgbatch_{len(self.batches) + 1:04d}", body["requests"], self.polls)
            self.batches[batch.id] = batch
            return httpx2.Response(200, json=self._view(batch))
        parts = path.removeprefix(BASE + "/").split("/")
        batch = self.batches.get(parts[0]) if path.startswith(BASE + "/") else None
        if batch is None or request.method != "GET":
            return httpx2.Response(
                404, json={"type": "error", "error": {"type": "not_found_error", "message": "no such batch"}}
            )
        if len(parts) == 1:
            if not batch.ended:
                if batch.polls_left <= 0:
                    self._finish(batch)
                batch.polls_left -= 1
            return httpx2.Response(200, json=self._view(batch))
        if parts[1:] == ["results"] and batch.ended:
            lines = "".join(json.dumps(r) + "\n" for r in batch.results)
            return httpx2.Response(
                200, content=lines.encode(), headers={"content-type": "application/binary"}
            )
        return httpx2.Response(
            404, json={"type": "error", "error": {"type": "not_found_error", "message": "x"}}
        )

    def _finish(self, batch: _Batch) -> None:
        for req in batch.requests:
            kind = self.outcome(req["custom_id"], req["params"])
            if kind == "succeeded":
                result: dict[str, Any] = {"type": "succeeded", "message": self.answer(req["params"])}
            elif kind == "errored":
                result = {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                }
            else:
                result = {"type": kind}
            batch.results.append({"custom_id": req["custom_id"], "result": result})
        batch.ended = True

    def _view(self, batch: _Batch) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.ended:
            for r in batch.results:
                counts[r["result"]["type"]] += 1
        else:
            counts["processing"] = len(batch.requests)
        created = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if batch.ended else "in_progress",
            "request_counts": counts,
            "created_at": created.isoformat(),
            "expires_at": (created + dt.timedelta(days=1)).isoformat(),
            "ended_at": created.isoformat() if batch.ended else None,
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": f"https://api.anthropic.com{BASE}/{batch.id}/results" if batch.ended else None,
        }

    def sent_requests(self) -> int:
        return sum(len(b.requests) for b in self.batches.values())


def handler_for(answer: Answer) -> Callable[[httpx2.Request], httpx2.Response]:
    """``POST /v1/messages`` answered with the same ``answer`` (for the synchronous path)."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=answer(json.loads(request.content)))

    return handle
