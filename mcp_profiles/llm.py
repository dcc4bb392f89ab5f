"""The model boundary: the ``LLM`` protocol and its Anthropic adapter.

Extraction speaks only to ``LLM.complete``; this is the one module that imports
``anthropic``, and it does so lazily because the SDK costs over a second of start-up that
``mcp-profiles show`` should not pay. Every SDK failure is translated here into
``ExtractionFailed`` with a reason a person can act on, and nothing else (no request ids,
no keys, no stack) leaks past this line.

Caching: the request is laid out as tools → system → context → data, with one
``cache_control`` breakpoint after the system prompt. The system prompt (instructions,
few-shot examples, tool schema) is byte-identical across calls, so it is cached for every
profile. The context (the current profile) is not marked: ``Extractor.run_items`` sends the
profile as each earlier answer left it, so an identical context is only ever re-sent by a
repair attempt, and a context written but never re-read costs 25 % extra on its tokens
(``bench/cost.py`` measured no re-read outside repairs). A prefix below the model's
minimum cacheable length (1024-4096 tokens depending on the model) is silently not cached.

Sampling parameters (``temperature``) are not sent: SDK 2.x speaks API version
2026-10-21, which rejects ``temperature``/``top_p``/``top_k`` with a 400, and the SDK no
longer has the parameters. Determinism comes from the forced tool and the validation in
``extract.py``, not from temperature.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ExtractionFailed

if TYPE_CHECKING:
    import anthropic
    import httpx2
    from anthropic.types import (
        CacheControlEphemeralParam,
        ContentBlockParam,
        Message,
        MessageParam,
    )

__all__ = [
    "DEFAULT_MODEL",
    "BatchState",
    "LLM",
    "AnthropicLLM",
    "LLMAnswer",
    "LLMRequest",
    "ModelUnavailable",
    "Repair",
    "Usage",
    "anthropic_from_env",
]

# The newest small model in anthropic 2.12's ModelParam literal that is not in its
# DEPRECATED_MODELS. Availability on a given account is not verifiable offline; the model
# is configurable everywhere.
DEFAULT_MODEL = "claude-haiku-5-5"

_EPHEMERAL: CacheControlEphemeralParam = {"type": "ephemeral"}


class ModelUnavailable(ExtractionFailed):
    """The model could not answer now (429, 529, 5xx, a timeout, no connection): the call is
    worth making again later, after ``retry_after`` seconds when the API said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Usage:
    """Tokens spent, summed over requests; recorded per data item."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    batch_requests: int = 0  # of ``requests``, how many went through a Message Batch (half price)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.requests + other.requests,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.batch_requests + other.batch_requests,
        )

    def billed_input_equivalent(self) -> float:
        """Input cost in plain-input tokens: cache writes bill at 1.25x, cache reads at 0.1x.

        The weights are Anthropic's prompt-caching prices for the default five-minute
        cache, relative to the model's base input price; they make runs with and without
        cache hits comparable in one number.
        """
        return (
            self.input_tokens + self.cache_creation_input_tokens * 1.25 + self.cache_read_input_tokens * 0.1
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "batch_requests": self.batch_requests,
        }


@dataclass(frozen=True)
class BatchState:
    """A Message Batch as the API reports it."""

    status: str  # in_progress, canceling, ended
    counts: dict[str, int]


@dataclass(frozen=True)
class LLMRequest:
    """One extraction call, split by how often each part changes (for prompt caching)."""

    system: str
    context: str
    data: str
    tool_name: str
    tool_description: str
    input_schema: dict[str, Any]
    max_tokens: int


@dataclass(frozen=True)
class LLMAnswer:
    """What the model said: the forced tool's input if it called it, and any text."""

    tool_input: dict[str, Any] | None
    text: str
    usage: Usage
    stop_reason: str | None
    model: str
    tool_use_id: str | None = None


@dataclass(frozen=True)
class Repair:
    """A second chance: the rejected answer and why it was rejected."""

    previous: LLMAnswer
    error: str


class LLM(Protocol):
    """A model that answers an ``LLMRequest`` by calling the requested tool."""

    @property
    def name(self) -> str: ...

    async def complete(self, request: LLMRequest, repair: Repair | None = None) -> LLMAnswer:
        """Raises ExtractionFailed when the model cannot be reached or refuses the request."""
        ...

    async def aclose(self) -> None: ...


class AnthropicLLM:
    """Claude through the Messages API, a forced tool call per request.

    Retries (408/409/429/5xx/529 and connection errors, with backoff honouring
    ``retry-after``) are the SDK's own; ``max_retries`` is passed through. ``api_key`` and
    ``base_url`` are passed on only when given, so the SDK's ``ANTHROPIC_API_KEY`` and
    ``ANTHROPIC_BASE_URL`` keep working. An ``http_client`` given here is owned by this
    object and closed by ``aclose``.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self._api_key = api_key
        self._http_client = http_client
        self._client: anthropic.AsyncAnthropic | None = None

    def __repr__(self) -> str:  # never show the key
        return f"AnthropicLLM(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def name(self) -> str:
        return f"anthropic:{self.model}"

    def _sdk(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            import anthropic

            kwargs: dict[str, Any] = {"timeout": self.timeout, "max_retries": self.max_retries}
            if self._api_key is not None:
                kwargs["api_key"] = self._api_key
            if self.base_url is not None:
                kwargs["base_url"] = self.base_url
            if self._http_client is not None:
                kwargs["http_client"] = self._http_client
            try:
                self._client = anthropic.AsyncAnthropic(**kwargs)
            except anthropic.AnthropicError as e:
                raise ExtractionFailed(
                    f"could not configure the Anthropic client ({type(e).__name__})"
                ) from e
        return self._client

    async def complete(self, request: LLMRequest, repair: Repair | None = None) -> LLMAnswer:
        import anthropic

        client = self._sdk()
        try:
            message = await client.messages.create(**self.params(request, repair))
        except anthropic.APIStatusError as e:
            if e.status_code in (429, 529) or e.status_code >= 500:
                raise ModelUnavailable(_status_reason(e, self.model), _retry_after(e.response.headers)) from e
            raise ExtractionFailed(_status_reason(e, self.model)) from e
        except anthropic.APITimeoutError as e:
            raise ModelUnavailable(
                f"the Anthropic API did not answer within {self.timeout:g} s (after {_retries(e)} retries)"
            ) from e
        except anthropic.APIConnectionError as e:
            cause = type(e.__cause__).__name__ if e.__cause__ else "connection error"
            raise ModelUnavailable(
                f"could not reach the Anthropic API ({cause}, after {_retries(e)} retries); "
                "check the network and ANTHROPIC_BASE_URL"
            ) from e
        except anthropic.APIError as e:
            raise ExtractionFailed(f"the Anthropic API failed ({type(e).__name__})") from e
        except TypeError as e:
            if "Could not resolve authentication" not in str(e):
                raise
            raise ExtractionFailed("no Anthropic credentials; set ANTHROPIC_API_KEY") from e
        return _answer(message, request.tool_name)

    def params(self, request: LLMRequest, repair: Repair | None = None) -> dict[str, Any]:
        """The Messages API parameters of one extraction call (also one request of a batch)."""
        return {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "system": [{"type": "text", "text": request.system, "cache_control": _EPHEMERAL}],
            "messages": _messages(request, repair),
            "tools": [
                {
                    "name": request.tool_name,
                    "description": request.tool_description,
                    "input_schema": request.input_schema,
                }
            ],
            "tool_choice": {"type": "tool", "name": request.tool_name, "disable_parallel_tool_use": True},
        }

    # ---- Message Batches: half price, answered within 24 hours ----------------------------

    async def create_batch(self, requests: list[tuple[str, dict[str, Any]]]) -> str:
        """Send ``(custom_id, params)`` requests as one Message Batch; returns its id."""
        import anthropic

        client = self._sdk()
        # params come from self.params(), the same dict messages.create is called with
        body: list[Any] = [{"custom_id": cid, "params": params} for cid, params in requests]
        try:
            batch = await client.messages.batches.create(requests=body)
        except anthropic.APIError as e:
            raise _translate(e, self) from e
        return batch.id

    async def batch_state(self, batch_id: str) -> BatchState:
        """Where a batch is: ``in_progress``, ``canceling`` or ``ended``, with its counts."""
        import anthropic

        try:
            batch = await self._sdk().messages.batches.retrieve(batch_id)
        except anthropic.APIError as e:
            raise _translate(e, self) from e
        counts = batch.request_counts
        return BatchState(
            batch.processing_status,
            {
                "processing": counts.processing,
                "succeeded": counts.succeeded,
                "errored": counts.errored,
                "canceled": counts.canceled,
                "expired": counts.expired,
            },
        )

    async def batch_results(self, batch_id: str, tool_name: str) -> dict[str, LLMAnswer | str]:
        """An ended batch's results by custom_id: the answer, or why there is none."""
        import anthropic

        out: dict[str, LLMAnswer | str] = {}
        try:
            async for entry in await self._sdk().messages.batches.results(batch_id):
                result = entry.result
                if result.type == "succeeded":
                    answer = _answer(result.message, tool_name)
                    out[entry.custom_id] = replace(answer, usage=replace(answer.usage, batch_requests=1))
                elif result.type == "errored":
                    error = result.error.error
                    out[entry.custom_id] = f"the batch request failed ({error.type}: {error.message[:200]})"
                else:
                    out[entry.custom_id] = f"the batch request was {result.type}"
        except anthropic.APIError as e:
            raise _translate(e, self) from e
        return out

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        elif self._http_client is not None:
            await self._http_client.aclose()


def _translate(e: anthropic.APIError, llm: AnthropicLLM) -> ExtractionFailed:
    """An SDK failure of a batch call as ExtractionFailed, worded as for single calls."""
    import anthropic

    if isinstance(e, anthropic.APIStatusError):
        return ExtractionFailed(_status_reason(e, llm.model))
    if isinstance(e, anthropic.APITimeoutError):
        return ExtractionFailed(f"the Anthropic API did not answer within {llm.timeout:g} s")
    if isinstance(e, anthropic.APIConnectionError):
        return ExtractionFailed("could not reach the Anthropic API; check the network and ANTHROPIC_BASE_URL")
    return ExtractionFailed(f"the Anthropic API failed ({type(e).__name__})")


def anthropic_from_env(model: str, env: Mapping[str, str]) -> AnthropicLLM | None:
    """The Anthropic backend when ``ANTHROPIC_API_KEY`` is set, else None (extraction off)."""
    key = env.get("ANTHROPIC_API_KEY", "").strip()
    if not key:
        return None
    return AnthropicLLM(model or DEFAULT_MODEL, api_key=key, base_url=env.get("ANTHROPIC_BASE_URL") or None)


def _messages(request: LLMRequest, repair: Repair | None) -> list[MessageParam]:
    """The user turn, plus on repair the rejected answer and a tool_result naming the error.

    Echoing the model's own tool call and answering it with ``is_error`` is how the API
    expects a tool failure to be reported, so the model corrects the call rather than
    apologising in prose.
    """
    user: MessageParam = {
        "role": "user",
        "content": [
            {"type": "text", "text": request.context},
            {"type": "text", "text": request.data},
        ],
    }
    if repair is None:
        return [user]
    previous = repair.previous
    content: list[ContentBlockParam] = []
    if previous.text.strip():
        content.append({"type": "text", "text": previous.text})
    follow_up: list[ContentBlockParam]
    if previous.tool_input is not None and previous.tool_use_id:
        content.append(
            {
                "type": "tool_use",
                "id": previous.tool_use_id,
                "name": request.tool_name,
                "input": previous.tool_input,
            }
        )
        follow_up = [
            {
                "type": "tool_result",
                "tool_use_id": previous.tool_use_id,
                "is_error": True,
                "content": f"Rejected: {repair.error}\nCall {request.tool_name} again with a corrected input.",
            }
        ]
    else:
        follow_up = [
            {
                "type": "text",
                "text": f"Your answer was not usable: {repair.error}\n"
                f"Call {request.tool_name} with the operations.",
            }
        ]
    if not content:
        return [user, {"role": "user", "content": follow_up}]
    return [user, {"role": "assistant", "content": content}, {"role": "user", "content": follow_up}]


def _answer(message: Message, tool_name: str) -> LLMAnswer:
    tool_input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    texts: list[str] = []
    for block in message.content:
        if block.type == "tool_use" and block.name == tool_name and tool_input is None:
            tool_input = block.input if isinstance(block.input, dict) else {"_raw": json.dumps(block.input)}
            tool_use_id = block.id
        elif block.type == "text":
            texts.append(block.text)
    u = message.usage
    usage = Usage(
        requests=1,
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_creation_input_tokens=u.cache_creation_input_tokens or 0,
        cache_read_input_tokens=u.cache_read_input_tokens or 0,
    )
    return LLMAnswer(
        tool_input=tool_input,
        text="\n".join(texts),
        usage=usage,
        stop_reason=message.stop_reason,
        model=message.model,
        tool_use_id=tool_use_id,
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the API asked us to wait (``retry-after-ms``, or ``retry-after`` in seconds or
    as an HTTP date), or None."""
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        raw = headers.get("retry-after")
        if not raw:
            return None
        try:
            return max(0.0, float(raw))
        except ValueError:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _retries(e: anthropic.APIError) -> int:
    """How many retries the SDK made, from the header it stamps on every attempt."""
    try:
        return int(e.request.headers.get("x-stainless-retry-count", "0"))
    except ValueError:
        return 0


def _status_reason(e: anthropic.APIStatusError, model: str) -> str:
    status, retries = e.status_code, _retries(e)
    after = f" after {retries} retries" if retries else ""
    if status == 401:
        return "Anthropic API rejected the API key (401); check ANTHROPIC_API_KEY"
    if status == 403:
        return f"Anthropic API denied access (403); the key may not be allowed to use model {model!r}"
    if status == 404:
        return (
            f"Anthropic API does not know model {model!r} (404); check the model name and ANTHROPIC_BASE_URL"
        )
    if status == 413:
        return "Anthropic API refused the request as too large (413); lower the extraction token budget"
    if status == 429:
        return f"Anthropic API rate limited the request (429){after}; try again later"
    if status == 529:
        return f"Anthropic API overloaded (529){after}; try again later"
    if status >= 500:
        return f"Anthropic API failed with a server error ({status}){after}"
    detail = (e.api_message or "").strip().replace("\n", " ")[:200]
    kind = e.type or "error"
    return f"Anthropic API rejected the request ({status} {kind}){': ' + detail if detail else ''}"
