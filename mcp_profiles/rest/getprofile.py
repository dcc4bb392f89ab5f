"""GetProfile's REST API (``/v1/profile/{id}``) over the same operations as the MCP tools.

``POST`` is ``upsert_profile_from_data`` with ``wait: false``: the data is stored first and
queued for extraction, and the answer says which of accepted, pending (no backend) or
duplicate happened. ``GET`` serves our profile document in GetProfile's wrapper; ``DELETE``
erases like ``delete_profile``. Errors are ``{"error": <status>, "message": "code: …"}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints
from starlette.responses import JSONResponse, Response

from ..models import PROFILE_ID_RE, Profile
from .base import (
    Call,
    ErrorStyle,
    Failure,
    Handler,
    Operation,
    Param,
    Reply,
    RequestModel,
    json_response,
)

__all__ = ["BASE", "ErrorBody", "error_replies", "operation", "operations"]

BASE = "/v1"


class ErrorBody(BaseModel):
    """GetProfile's error: the HTTP status, and a message that starts with a code word."""

    error: int = Field(description="The HTTP status code.")
    message: str = Field(description="'code_word: what went wrong and what to do'.")


class GetProfileErrors(ErrorStyle):
    """``{"error": 404, "message": "not_found: …"}``."""

    def render(self, failure: Failure) -> Response:
        body = {"error": failure.status, "message": f"{failure.code}: {failure.message}"}
        return JSONResponse(body, status_code=failure.status, headers=failure.headers)

    def schema_model(self) -> type[BaseModel]:
        return ErrorBody


STYLE = GetProfileErrors()


class ProfileData(RequestModel):
    """Raw data about the profile's subject."""

    data: str = Field(
        description="Raw data: a chat history, activity log, character description, JSON or markdown. "
        "It is treated as data, never as instructions.",
        min_length=1,
    )
    input_type: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        None, description="What the data is: 'chat history', 'activity log', 'json', …"
    )


class Accepted(BaseModel):
    """The data is stored; ``message`` says whether it is queued, pending or a duplicate."""

    id: str = Field(description="The profile id.")
    message: str = Field(description="What happened to the data, and the job id to follow.")


class ProfileEnvelope(BaseModel):
    """GetProfile's wrapper around this server's profile document."""

    profile_id: str
    profile: Profile


class Deleted(BaseModel):
    """The profile, its history and its raw data are erased."""

    id: str
    deleted: bool


ProfileIdParam = Annotated[str, StringConstraints(pattern=PROFILE_ID_RE.pattern)]
ID = Param(
    "id",
    "path",
    ProfileIdParam,
    "Profile id (1-128 letters, digits, '_', '.', '@', '-'); GET and DELETE also take an alias.",
)


async def post_profile(call: Call) -> Response:
    """Store the data and queue it, exactly as upsert_profile_from_data with wait: false."""
    body: ProfileData = call.body
    ref: str = call.params["id"]
    app = call.app
    outcome = await app.extractor.upsert(call.ns, ref, body.data, body.input_type, None, wait=False)
    if outcome.created:
        await app.service.announce(call.ns, outcome.job.profile_id, listed=True)
    return json_response(Accepted(id=outcome.job.profile_id, message=outcome.message))


async def get_profile(call: Call) -> Response:
    """The profile document in GetProfile's wrapper."""
    doc = await call.app.service.get_profile(call.ns, call.params["id"])
    return json_response(ProfileEnvelope(profile_id=doc.id, profile=doc))


async def delete_profile(call: Call) -> Response:
    """Erase the profile, its history and its raw data."""
    result = await call.app.service.delete_profile(call.ns, call.params["id"])  # announces the erasure
    return json_response(Deleted(id=result.id, deleted=result.deleted))


ERRORS = (
    Reply(
        400, "Bad input: malformed JSON, a wrong type, a missing field, or an id that breaks the id rules."
    ),
    Reply(401, "No valid bearer token."),
    Reply(403, "Origin header not allowed."),
    Reply(404, "No such profile."),
    Reply(405, "Method not allowed."),
    Reply(409, "The profile changed at the same time; retry."),
    Reply(413, "Body or data over the limit."),
    Reply(415, "Body not sent as application/json."),
    Reply(421, "Host header not allowed."),
)


def error_replies(*statuses: int) -> tuple[Reply, ...]:
    """The replies of these error statuses, in GetProfile's error shape."""
    return tuple(Reply(r.status, r.description, ErrorBody) for r in ERRORS if r.status in statuses)


def operation(method: str, path: str, oid: str, summary: str, handler: Handler, **kw: Any) -> Operation:
    """A route under GetProfile's tag, answering errors in its shape."""
    return Operation(method, path, oid, summary, "GetProfile", STYLE, handler, **kw)


_COMMON = (400, 401, 403, 404, 405, 413, 415, 421)


def operations() -> list[Operation]:
    """GetProfile's routes."""
    path = f"{BASE}/profile/{{id}}"
    return [
        operation(
            "POST",
            path,
            "createOrUpdateProfile",
            "Send raw data about a profile (created when missing); it is stored and queued for extraction.",
            post_profile,
            params=(ID,),
            body=ProfileData,
            replies=(
                Reply(200, "Stored and queued (or pending, or a duplicate).", Accepted),
                *error_replies(*_COMMON, 409),
            ),
        ),
        operation(
            "GET",
            path,
            "getProfile",
            "Read a profile.",
            get_profile,
            params=(ID,),
            replies=(Reply(200, "The profile document.", ProfileEnvelope), *error_replies(*_COMMON)),
        ),
        operation(
            "DELETE",
            path,
            "deleteProfile",
            "Erase a profile with its history and raw data. This cannot be undone.",
            delete_profile,
            params=(ID,),
            replies=(Reply(200, "Erased.", Deleted), *error_replies(*_COMMON)),
        ),
    ]
