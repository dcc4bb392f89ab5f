"""The AI management API (``/umbraco/ai/management/api/v1``): assistant profiles and connections.

Its clients send and read camelCase documents (``connectionId``, ``maxTokens``,
``"$type"``); this module maps them to and from our assistant profiles and connections and
calls the same service operations as the MCP tools. Only assistant profiles are visible
here. Errors are RFC 7807 problem details with the API's own words ("Profile not found",
"Connection not found"). A connection never shows a secret: its key is stored and shown
only as the name of the environment variable that holds it (``"apiKey": "$OPENAI_API_KEY"``).
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, JsonValue, StringConstraints
from starlette.responses import JSONResponse, Response

from ..errors import NotFound
from ..models import (
    ALIAS_RE,
    ENV_NAME_RE,
    PROFILE_ID_RE,
    ChatSettings,
    Connection,
    EmbeddingSettings,
    Profile,
)
from .base import Call, ErrorStyle, Failure, Operation, Param, Reply, RequestModel, json_response

__all__ = ["BASE", "Problem", "operations"]

BASE = "/umbraco/ai/management/api/v1"

_TYPES = {
    400: ("https://tools.ietf.org/html/rfc7231#section-6.5.1", "Bad Request"),
    401: ("https://tools.ietf.org/html/rfc7235#section-3.1", "Unauthorized"),
    403: ("https://tools.ietf.org/html/rfc7231#section-6.5.3", "Forbidden"),
    404: ("https://tools.ietf.org/html/rfc7231#section-6.5.4", "Not Found"),
    405: ("https://tools.ietf.org/html/rfc7231#section-6.5.5", "Method Not Allowed"),
    409: ("https://tools.ietf.org/html/rfc7231#section-6.5.8", "Conflict"),
    413: ("https://tools.ietf.org/html/rfc7231#section-6.5.11", "Payload Too Large"),
    415: ("https://tools.ietf.org/html/rfc7231#section-6.5.13", "Unsupported Media Type"),
    421: ("https://tools.ietf.org/html/rfc7540#section-9.1.2", "Misdirected Request"),
    500: ("https://tools.ietf.org/html/rfc7231#section-6.6.1", "Internal Server Error"),
}
PROFILE_NOT_FOUND = "Profile not found"
CONNECTION_NOT_FOUND = "Connection not found"


class Problem(BaseModel):
    """RFC 7807 problem details."""

    type: str
    title: str
    status: int
    detail: str


class ProblemErrors(ErrorStyle):
    """``application/problem+json``; ``detail`` is the API's own words, or ``field: rule``."""

    media_type = "application/problem+json"

    def render(self, failure: Failure) -> Response:
        kind, title = _TYPES.get(failure.status, _TYPES[400])
        # The AI management API answers a rule broken by valid JSON (a taken alias, a
        # connection in use) with 400, as it does every other validation error.
        status = 400 if failure.status == 409 and failure.code == "conflict" else failure.status
        if status != failure.status:
            kind, title = _TYPES[400]
        body = {"type": kind, "title": title, "status": status, "detail": failure.message}
        return JSONResponse(body, status_code=status, headers=failure.headers, media_type=self.media_type)

    def schema_model(self) -> type[BaseModel]:
        return Problem


STYLE = ProblemErrors()

# ---- the wire shapes ----------------------------------------------------------------

ProviderId = Annotated[str, StringConstraints(min_length=1, max_length=100)]
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
RefText = Annotated[str, StringConstraints(pattern=PROFILE_ID_RE.pattern)]
AliasText = Annotated[str, StringConstraints(pattern=ALIAS_RE.pattern)]
NameText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
TagText = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f]{1,64}$")]
CapabilityIn = Literal["Chat", "Embedding", "chat", "embedding"]
CapabilityOut = Literal["Chat", "Embedding"]


class ModelRefIn(RequestModel):
    """Which model the profile runs on."""

    providerId: ProviderId
    modelId: ModelId


class ChatSettingsIn(RequestModel):
    """Settings of a chat profile."""

    type: Literal["chat"] = Field(alias="$type")
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    maxTokens: int | None = Field(None, gt=0, le=1_000_000)
    topP: float | None = Field(None, ge=0.0, le=1.0)
    systemPromptTemplate: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    stopSequences: list[str] | None = Field(None, max_length=16)


class EmbeddingSettingsIn(RequestModel):
    """Settings of an embedding profile."""

    type: Literal["embedding"] = Field(alias="$type")
    dimensions: int | None = Field(None, gt=0, le=65_536)
    normalize: bool | None = None


SettingsIn = Annotated[ChatSettingsIn | EmbeddingSettingsIn, Field(discriminator="type")]


class ProfileUpdate(RequestModel):
    """The whole profile (PUT replaces it). ``capability``, when sent, must be the current one."""

    alias: AliasText
    name: NameText
    model: ModelRefIn
    connectionId: RefText = Field(description="Id (or alias) of an existing connection.")
    settings: SettingsIn | None = None
    tags: list[TagText] = Field(default_factory=list, max_length=100)
    capability: CapabilityIn | None = Field(None, description="Cannot change after creation.")


class ProfileCreate(ProfileUpdate):
    """A new profile; ``capability`` defaults to the settings' ``$type``, else Chat."""


class ModelRefOut(BaseModel):
    providerId: str
    modelId: str


class ProfileItem(BaseModel):
    """One row of the profile list."""

    id: str
    alias: str | None
    name: str | None
    capability: CapabilityOut
    model: ModelRefOut | None
    dateCreated: str | None
    dateModified: str | None


class ProfileOut(ProfileItem):
    """A whole assistant profile."""

    connectionId: str | None
    settings: dict[str, JsonValue] | None = Field(description="Capability settings, with '$type'.")
    tags: list[str]
    version: int


class ProfileList(BaseModel):
    total: int
    items: list[ProfileItem]


class ConnectionUpdate(RequestModel):
    """A connection (PUT replaces it). Secrets are never stored: send the key as the name of
    the environment variable that holds it, ``"apiKey": "$OPENAI_API_KEY"``."""

    name: NameText
    alias: AliasText | None = Field(None, description="Unique alias; unchanged when absent.")
    providerId: ProviderId | None = Field(None, description="Cannot change after creation.")
    settings: dict[str, JsonValue] = Field(default_factory=dict)
    isActive: bool = True


class ConnectionCreate(ConnectionUpdate):
    """A new connection."""

    providerId: ProviderId


class ConnectionOut(BaseModel):
    """A connection; ``settings.apiKey`` is the variable that holds the key, never the key."""

    id: str
    alias: str | None
    name: str | None
    providerId: str
    isActive: bool
    version: int
    dateCreated: str | None
    dateModified: str | None
    settings: dict[str, JsonValue]


class ConnectionList(BaseModel):
    total: int
    items: list[ConnectionOut]


class ListQuery:
    """The list routes' query parameters."""

    filter = Param(
        "filter",
        "query",
        Annotated[str, StringConstraints(max_length=200)],
        "Text in id, alias or name.",
        False,
    )
    capability = Param("capability", "query", CapabilityIn, "Only profiles of this capability.", False)
    skip = Param(
        "skip", "query", Annotated[int, Field(ge=0, le=1_000_000)], "Items to skip (default 0).", False
    )
    take = Param(
        "take", "query", Annotated[int, Field(ge=0, le=1000)], "Items to return (default 100).", False
    )


PROFILE_REF = Param("profileIdOrAlias", "path", RefText, "Profile id (GUID) or alias.")
ALIAS = Param("alias", "path", AliasText, "The alias to check.")
CONNECTION_REF = Param("connectionIdOrAlias", "path", RefText, "Connection id (GUID) or alias.")

# ---- mapping ------------------------------------------------------------------------

_SETTINGS_KEYS = dict.fromkeys({*ChatSettings.model_fields, *EmbeddingSettings.model_fields})
_CAMEL = {
    "max_tokens": "maxTokens",
    "top_p": "topP",
    "system_prompt_template": "systemPromptTemplate",
    "stop_sequences": "stopSequences",
    "type": "$type",
}
_SECRETISH = re.compile(r"key|secret|password|token|credential", re.I)
_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_:]{0,127})$")


def _capability(value: str | None) -> CapabilityOut:
    return "Embedding" if value == "embedding" else "Chat"


def _settings_out(profile: Profile) -> dict[str, JsonValue] | None:
    if profile.settings is None:
        return None
    dumped = profile.settings.model_dump(mode="json", exclude_none=True)
    return {_CAMEL.get(k, k): v for k, v in dumped.items()}


def profile_item(p: Profile) -> ProfileItem:
    """The list row of an assistant profile."""
    return ProfileItem(
        id=p.id,
        alias=p.alias,
        name=p.name,
        capability=_capability(p.capability),
        model=ModelRefOut(providerId=p.model.provider_id, modelId=p.model.model_id) if p.model else None,
        dateCreated=p.created_at,
        dateModified=p.updated_at,
    )


def profile_out(p: Profile) -> ProfileOut:
    """The whole assistant profile in the API's shape."""
    return ProfileOut(
        **profile_item(p).model_dump(),
        connectionId=p.connection_id,
        settings=_settings_out(p),
        tags=list(p.tags),
        version=p.version,
    )


def _patch(body: ProfileUpdate, connection_id: str) -> dict[str, Any]:
    """A merge patch that sets every field of the API's shape (absent ones cleared); the
    persona facts this API does not show (attributes, summary) are kept."""
    settings: dict[str, Any] | None = None
    if body.settings is not None:
        given = body.settings.model_dump(by_alias=True, exclude_none=True)
        # every key of both settings types: null removes what the new settings do not set
        settings = {key: given.get(_CAMEL.get(key, key)) for key in _SETTINGS_KEYS}
    patch: dict[str, Any] = {
        "alias": body.alias,
        "name": body.name,
        "model": {"provider_id": body.model.providerId, "model_id": body.model.modelId},
        "connection_id": connection_id,
        "settings": settings,
        "tags": list(body.tags),
    }
    return patch


def connection_out(c: Connection) -> ConnectionOut:
    """A connection in the API's shape: the key only as the name of its variable."""
    settings = dict(c.settings)
    if c.api_key_env:
        settings["apiKey"] = f"${c.api_key_env}"
    return ConnectionOut(
        id=c.id,
        alias=c.alias,
        name=c.name,
        providerId=c.provider_id,
        isActive=c.is_active,
        version=c.version,
        dateCreated=c.created_at,
        dateModified=c.updated_at or c.created_at,
        settings=settings,
    )


def split_secrets(settings: dict[str, JsonValue]) -> tuple[str | None, dict[str, JsonValue]]:
    """(the key's variable name, the settings to store). A secret-looking setting must be a
    reference to a variable, ``"$NAME"`` (``$A:B:C`` is read as ``A__B__C``, .NET's spelling).

    Raises:
        Failure: a secret-looking setting holds a value instead of a reference.
    """
    api_key_env: str | None = None
    kept: dict[str, JsonValue] = {}
    for key, value in settings.items():
        if not _SECRETISH.search(key):
            kept[key] = value
            continue
        match = _REFERENCE.match(value) if isinstance(value, str) else None
        name = match.group(1).replace(":", "__") if match else ""
        if not ENV_NAME_RE.match(name):
            raise Failure(
                400,
                "invalid",
                f"settings.{key}: secrets are never stored; give the name of the environment variable "
                'that holds it, as "$VARIABLE_NAME"',
            )
        if key.lower() in ("apikey", "api_key"):
            api_key_env = name
        else:
            kept[key] = f"${name}"
    return api_key_env, kept


# ---- handlers -----------------------------------------------------------------------


async def _assistant(call: Call, ref: str) -> Profile:
    try:
        profile = await call.app.service.get_profile(call.ns, ref)
    except NotFound:
        raise Failure(404, "not_found", PROFILE_NOT_FOUND) from None
    if profile.kind != "assistant":
        raise Failure(404, "not_found", PROFILE_NOT_FOUND)
    return profile


async def _connection_id(call: Call, ref: str) -> str:
    try:
        return (await call.app.service.get_connection(call.ns, ref)).id
    except NotFound:
        raise Failure(400, "invalid", CONNECTION_NOT_FOUND) from None


async def _find_connection(call: Call, ref: str) -> Connection:
    try:
        return await call.app.service.get_connection(call.ns, ref)
    except NotFound:
        raise Failure(404, "not_found", CONNECTION_NOT_FOUND) from None


def _empty() -> Response:
    return Response(status_code=200)


def _created(path: str, new_id: str) -> Response:
    return JSONResponse(new_id, status_code=201, headers={"Location": f"{BASE}/{path}/{new_id}"})


async def list_profiles(call: Call) -> Response:
    """Assistant profiles, filtered and paged."""
    capability = call.params.get("capability")
    total, page = await call.app.service.assistant_page(
        call.ns,
        text=call.params.get("filter"),
        capability=capability.lower() if capability else None,
        skip=call.params.get("skip", 0),
        take=call.params.get("take", 100),
    )
    return json_response(ProfileList(total=total, items=[profile_item(p) for p in page]))


async def get_profile(call: Call) -> Response:
    """One assistant profile by id or alias."""
    return json_response(profile_out(await _assistant(call, call.params["profileIdOrAlias"])))


async def alias_exists(call: Call) -> Response:
    """Whether a profile already has this alias (or id)."""
    return JSONResponse(await call.app.service.alias_owner(call.ns, call.params["alias"]) is not None)


async def create_profile(call: Call) -> Response:
    """A new assistant profile with a GUID id."""
    body: ProfileCreate = call.body
    connection_id = await _connection_id(call, body.connectionId)
    patch = _patch(body, connection_id)
    if body.capability is not None:
        patch["capability"] = body.capability.lower()
    new_id = str(uuid.uuid4())
    result = await call.app.service.update_profile(  # the service announces every committed change
        call.ns, new_id, patch, create=True, kind="assistant", actor="rest", reason="created by the REST API"
    )
    return _created("profiles", result.profile.id)


async def update_profile(call: Call) -> Response:
    """Replace an assistant profile; its capability cannot change."""
    body: ProfileUpdate = call.body
    current = await _assistant(call, call.params["profileIdOrAlias"])
    if body.capability is not None and body.capability.lower() != current.capability:
        raise Failure(
            400,
            "invalid",
            f"capability: cannot change from {_capability(current.capability)!r} after creation",
        )
    connection_id = await _connection_id(call, body.connectionId)
    await call.app.service.update_profile(
        call.ns,
        current.id,
        _patch(body, connection_id),
        kind="assistant",
        expected_version=current.version,
        actor="rest",
    )
    return _empty()


async def delete_profile(call: Call) -> Response:
    """Erase an assistant profile."""
    current = await _assistant(call, call.params["profileIdOrAlias"])
    await call.app.service.delete_profile(call.ns, current.id)
    return _empty()


async def list_connections(call: Call) -> Response:
    """Connections, filtered and paged."""
    conns = await call.app.service.list_connections(call.ns)
    text = (call.params.get("filter") or "").lower()
    if text:
        conns = [c for c in conns if any(text in (v or "").lower() for v in (c.id, c.alias, c.name))]
    skip, take = call.params.get("skip", 0), call.params.get("take", 100)
    return json_response(
        ConnectionList(total=len(conns), items=[connection_out(c) for c in conns[skip : skip + take]])
    )


async def get_connection(call: Call) -> Response:
    """One connection by id or alias."""
    return json_response(connection_out(await _find_connection(call, call.params["connectionIdOrAlias"])))


async def _announce_connections(call: Call) -> None:
    await call.app.bus.announce(call.ns, "connections://index", listed=False)


async def create_connection(call: Call) -> Response:
    """A new connection with a GUID id."""
    body: ConnectionCreate = call.body
    api_key_env, settings = split_secrets(body.settings)
    conn = await call.app.service.add_connection(
        call.ns,
        str(uuid.uuid4()),
        body.providerId,
        name=body.name,
        api_key_env=api_key_env,
        settings=settings,
        alias=body.alias,
        is_active=body.isActive,
    )
    await _announce_connections(call)
    return _created("connections", conn.id)


async def update_connection(call: Call) -> Response:
    """Replace a connection's name, alias, settings and state; its provider cannot change."""
    body: ConnectionUpdate = call.body
    current = await _find_connection(call, call.params["connectionIdOrAlias"])
    api_key_env, settings = split_secrets(body.settings)
    await call.app.service.update_connection(
        call.ns,
        current.id,
        name=body.name,
        alias=body.alias if "alias" in body.model_fields_set else current.alias,
        api_key_env=api_key_env,
        settings=settings,
        is_active=body.isActive,
        provider_id=body.providerId,
    )
    await _announce_connections(call)
    return _empty()


async def delete_connection(call: Call) -> Response:
    """Remove a connection no assistant profile uses."""
    current = await _find_connection(call, call.params["connectionIdOrAlias"])
    await call.app.service.remove_connection(call.ns, current.id)
    await _announce_connections(call)
    return _empty()


# ---- the route table ----------------------------------------------------------------

ERRORS = {
    400: "Validation error: malformed JSON, a wrong type, a broken rule (the field and rule are in 'detail'), "
    "'Connection not found', a taken alias, or a connection still in use.",
    401: "No valid bearer token.",
    403: "Origin header not allowed.",
    404: "Not found ('Profile not found', 'Connection not found').",
    405: "Method not allowed.",
    409: "Changed at the same time by another request; retry.",
    413: "Body over the limit.",
    415: "Body not sent as application/json.",
    421: "Host header not allowed.",
}


def _errors(*extra: int) -> tuple[Reply, ...]:
    statuses = sorted({400, 401, 403, 404, 405, 421, *extra})
    return tuple(Reply(s, ERRORS[s], Problem) for s in statuses)


_WRITE = (409, 413, 415)
_LOCATION = {"Location": "The new resource's URL."}


def operations() -> list[Operation]:
    """The AI management API's routes."""
    profiles, connections = f"{BASE}/profiles", f"{BASE}/connections"
    one_profile, one_connection = f"{profiles}/{{profileIdOrAlias}}", f"{connections}/{{connectionIdOrAlias}}"
    listing = (ListQuery.filter, ListQuery.capability, ListQuery.skip, ListQuery.take)
    tag_p, tag_c = "Profiles", "Connections"

    def op(method: str, path: str, oid: str, summary: str, tag: str, handler: Any, **kw: Any) -> Operation:
        return Operation(method, path, oid, summary, tag, STYLE, handler, **kw)

    # The routes by reference, under the plural path and the older singular one (deprecated):
    # (method, operationId, summary, the singular path's summary, handler, body and replies).
    by_ref: tuple[tuple[str, str, str, str, Any, dict[str, Any]], ...] = (
        (
            "GET",
            "getProfile",
            "Get an assistant profile by id or alias.",
            "Get an assistant profile.",
            get_profile,
            {"replies": (Reply(200, "The profile.", ProfileOut), *_errors())},
        ),
        (
            "PUT",
            "updateProfile",
            "Replace an assistant profile (capability cannot change).",
            "Replace an assistant profile.",
            update_profile,
            {"body": ProfileUpdate, "replies": (Reply(200, "Updated (empty body)."), *_errors(*_WRITE))},
        ),
        (
            "DELETE",
            "deleteProfile",
            "Delete an assistant profile.",
            "Delete an assistant profile.",
            delete_profile,
            {"replies": (Reply(200, "Deleted (empty body)."), *_errors(409))},
        ),
    )

    return [
        op(
            "GET",
            profiles,
            "listProfiles",
            "List assistant profiles.",
            tag_p,
            list_profiles,
            params=listing,
            replies=(Reply(200, "A page of profiles and the total.", ProfileList), *_errors()),
        ),
        op(
            "POST",
            profiles,
            "createProfile",
            "Create an assistant profile.",
            tag_p,
            create_profile,
            body=ProfileCreate,
            replies=(Reply(201, "Created; the body is the new id.", str, _LOCATION), *_errors(*_WRITE)),
        ),
        *(
            op(method, one_profile, oid, summary, tag_p, handler, params=(PROFILE_REF,), **kw)
            for method, oid, summary, _, handler, kw in by_ref
        ),
        *(
            op(
                method,
                f"{BASE}/profile/{{profileIdOrAlias}}",
                f"{oid}Singular",
                f"{summary} The older documentation's spelling of the path.",
                tag_p,
                handler,
                params=(PROFILE_REF,),
                deprecated=True,
                **kw,
            )
            for method, oid, _, summary, handler, kw in by_ref
        ),
        op(
            "GET",
            f"{profiles}/{{alias}}/exists",
            "profileAliasExists",
            "Whether the alias is taken.",
            tag_p,
            alias_exists,
            params=(ALIAS,),
            replies=(Reply(200, "true or false.", bool), *_errors()),
        ),
        op(
            "GET",
            connections,
            "listConnections",
            "List connections.",
            tag_c,
            list_connections,
            params=(ListQuery.filter, ListQuery.skip, ListQuery.take),
            replies=(Reply(200, "A page of connections and the total.", ConnectionList), *_errors()),
        ),
        op(
            "POST",
            connections,
            "createConnection",
            "Create a connection.",
            tag_c,
            create_connection,
            body=ConnectionCreate,
            replies=(Reply(201, "Created; the body is the new id.", str, _LOCATION), *_errors(*_WRITE)),
        ),
        op(
            "GET",
            one_connection,
            "getConnection",
            "Get a connection by id or alias.",
            tag_c,
            get_connection,
            params=(CONNECTION_REF,),
            replies=(Reply(200, "The connection (no secrets).", ConnectionOut), *_errors()),
        ),
        op(
            "PUT",
            one_connection,
            "updateConnection",
            "Replace a connection (the provider cannot change).",
            tag_c,
            update_connection,
            params=(CONNECTION_REF,),
            body=ConnectionUpdate,
            replies=(Reply(200, "Updated (empty body)."), *_errors(*_WRITE)),
        ),
        op(
            "DELETE",
            one_connection,
            "deleteConnection",
            "Delete a connection no profile uses.",
            tag_c,
            delete_connection,
            params=(CONNECTION_REF,),
            replies=(Reply(200, "Deleted (empty body)."), *_errors(409)),
        ),
    ]
