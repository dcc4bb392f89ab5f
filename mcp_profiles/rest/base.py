"""What both REST adapters share: the route table, the guard, the body reader, the errors.

Every REST request passes the same checks as ``/mcp`` before a handler runs: Host and
Origin (the DNS-rebinding guard), the bearer token (which names the namespace), the
request body limit, then JSON parsing and validation with the route's pydantic model.
The same models describe the routes in ``/openapi.json``, so the two cannot drift. A
failure anywhere is answered in the API's own error shape (its :class:`ErrorStyle`).
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import Conflict, Invalid, NotFound, ProfilesError, TooLarge, Unauthorized
from ..runtime import AppContext
from ..transports import NamespaceTokens

__all__ = [
    "ALL_METHODS",
    "Call",
    "ErrorStyle",
    "Failure",
    "Guard",
    "Operation",
    "Param",
    "Reply",
    "RequestModel",
    "json_response",
    "validation_message",
]

log = logging.getLogger("mcp_profiles")

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]


class RequestModel(BaseModel):
    """A request body: strict JSON types (no "5" for 5), unknown fields ignored.

    Ignoring unknown fields lets existing clients send what their API has and this server
    does not keep (``contextIds``, read-only fields copied from a GET); nothing of them
    is stored. Strict types make a wrong type a 400 rather than a silent conversion.
    """

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False, protected_namespaces=())


@dataclass
class Failure(Exception):
    """A request answered with an error: status, code word and message for the caller."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, error: ProfilesError) -> Failure:
        """The HTTP status of a domain error."""
        status = {
            Invalid: 400,
            NotFound: 404,
            Conflict: 409,
            TooLarge: 413,
            Unauthorized: 401,
        }.get(type(error), 400)
        return cls(status, error.code, error.message)


class ErrorStyle(ABC):
    """How an API writes its errors: each API (GetProfile, AI management) supplies one."""

    media_type = "application/json"

    @abstractmethod
    def render(self, failure: Failure) -> Response:
        """The response for a failure."""

    @abstractmethod
    def schema_model(self) -> type[BaseModel]:
        """The model of the error body, for the OpenAPI document."""


@dataclass(frozen=True)
class Param:
    """A path or query parameter, validated and described by one type."""

    name: str
    where: Literal["path", "query"]
    type: Any
    description: str
    required: bool = True

    @property
    def adapter(self) -> TypeAdapter[Any]:
        return _adapter(self.type)


_ADAPTERS: dict[int, TypeAdapter[Any]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    found = _ADAPTERS.get(id(tp))
    if found is None:
        found = _ADAPTERS[id(tp)] = TypeAdapter(tp)
    return found


@dataclass(frozen=True)
class Reply:
    """A documented response: status, what it means, and its body model (None: empty)."""

    status: int
    description: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One validated request, as a handler sees it."""

    app: AppContext
    ns: str
    params: dict[str, Any]
    body: Any
    request: Request


Handler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    """One route: method and path, the models it validates with, and its handler."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    style: ErrorStyle
    handler: Handler
    params: tuple[Param, ...] = ()
    body: type[RequestModel] | None = None
    replies: tuple[Reply, ...] = ()
    description: str = ""
    deprecated: bool = False


def validation_message(e: ValidationError, prefix: str = "") -> str:
    """``field.path: rule`` of the first error (and how many more), in the API's field names."""
    err = e.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p not in ("", "chat", "embedding"))
    msg = err["msg"]
    if err["type"] == "missing":
        msg = "required"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{loc or 'body'}: {msg}{more}"


MAX_DEPTH = 64


def _check_tree(value: Any) -> None:
    """Refuse what JSON allows but nothing here can store or answer with: nesting deeper than
    ``MAX_DEPTH`` and lone surrogates (``"\\ud800"``), which are not Unicode text."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Failure(400, "invalid", f"body: nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise Failure(
                    400,
                    "invalid",
                    "body: contains a lone surrogate escape (like \\ud800); send valid Unicode",
                ) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class Guard:
    """Runs the shared checks, then the operation that matches the request's method."""

    def __init__(
        self,
        app: AppContext,
        security: TransportSecuritySettings,
        body_limit: int,
    ) -> None:
        self.app = app
        self.security = TransportSecurityMiddleware(security)
        self.body_limit = body_limit
        tokens = app.config.tokens
        self.tokens = NamespaceTokens(tokens) if tokens else None

    def endpoint(self, ops: list[Operation], style: ErrorStyle) -> Callable[[Request], Awaitable[Response]]:
        """A Starlette endpoint for every method of one path (an empty list: unknown path)."""
        by_method = {op.method: op for op in ops}
        allow = ", ".join(by_method)

        async def endpoint(request: Request) -> Response:
            try:
                await self._check_host(request)
                ns = await self._namespace(request)
                op = by_method.get(request.method)
                if op is None:
                    if not ops:
                        raise Failure(404, "not_found", f"no endpoint at {request.url.path}")
                    raise Failure(
                        405,
                        "invalid",
                        f"method {request.method} is not allowed here; use {allow}",
                        {"Allow": allow},
                    )
                params = self._params(op, request)
                body = await self._body(op, request) if op.body is not None else None
                return await op.handler(Call(self.app, ns, params, body, request))
            except Failure as f:
                return style.render(f)
            except ProfilesError as e:
                return style.render(Failure.of(e))
            except Exception:  # a bug: log it, answer in the API's shape, never leak internals
                log.exception("REST %s %s failed", request.method, request.url.path)
                return style.render(
                    Failure(500, "error", "the request failed unexpectedly; see the server log")
                )

        return endpoint

    async def _check_host(self, request: Request) -> None:
        refused = await self.security.validate_request(request, is_post=False)
        if refused is not None:
            what = "Host" if refused.status_code == 421 else "Origin"
            raise Failure(
                refused.status_code, "unauthorized", f"this server does not answer for this {what} header"
            )

    async def _namespace(self, request: Request) -> str:
        if self.tokens is None:
            return self.app.config.namespace
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = await self.tokens.verify_token(token.strip()) if scheme.lower() == "bearer" else None
        if found is None or not found.claims:
            raise Failure(
                401,
                "unauthorized",
                "send a valid bearer token: Authorization: Bearer TOKEN (tokens are set by MCP_PROFILES_TOKENS)",
                {"WWW-Authenticate": 'Bearer realm="mcp-profiles"'},
            )
        return str(found.claims["namespace"])

    @staticmethod
    def _params(op: Operation, request: Request) -> dict[str, Any]:
        known = [p.name for p in op.params if p.where == "query"]
        unknown = sorted(set(request.query_params) - set(known))
        if unknown:
            accepted = f"accepted: {', '.join(known)}" if known else "this route takes none"
            raise Failure(400, "invalid", f"{unknown[0]!r}: unknown query parameter ({accepted})")
        values: dict[str, Any] = {}
        for param in op.params:
            source = request.path_params if param.where == "path" else request.query_params
            raw = source.get(param.name)
            if raw is None:
                if param.required:
                    raise Failure(400, "invalid", f"{param.name}: required")
                continue
            try:
                values[param.name] = param.adapter.validate_python(raw)
            except ValidationError as e:
                message = validation_message(e, param.name)
                raise Failure(400, "invalid", message) from None
        return values

    async def _body(self, op: Operation, request: Request) -> Any:
        assert op.body is not None
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise Failure(415, "invalid", "body: send JSON with Content-Type: application/json")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.body_limit:
            raise Failure(413, "too_large", f"body: more than {self.body_limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.body_limit:
                raise Failure(413, "too_large", f"body: more than {self.body_limit} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            raise Failure(400, "invalid", "body: required (a JSON object)")
        try:
            value = json.loads(raw, parse_constant=_reject_constant)
        except RecursionError:
            raise Failure(400, "invalid", f"body: nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as e:  # UnicodeDecodeError is one
            if isinstance(e, json.JSONDecodeError):
                reason = e.msg
            elif "digits" in str(e):
                reason = "a number has too many digits"
            else:
                reason = str(e).split(";")[0]
            raise Failure(400, "invalid", f"body: not valid JSON ({reason})") from None
        if not isinstance(value, dict):
            raise Failure(400, "invalid", "body: must be a JSON object")
        _check_tree(value)
        try:
            return op.body.model_validate(value)
        except ValidationError as e:
            raise Failure(400, "invalid", validation_message(e)) from None


def json_response(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON body (a pydantic model is dumped by alias, without nulls it does not declare)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    return JSONResponse(value, status_code=status, headers=dict(headers or {}))
