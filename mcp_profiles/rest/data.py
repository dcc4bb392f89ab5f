"""A profile's data items over REST, beside GetProfile's ``/v1/profile/{id}``: list them
(``list_data``) and forget one (``forget_data``), in GetProfile's error shape."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints
from starlette.responses import Response

from ..results import ForgetDataResult, ListDataResult, data_page_result, forget_result
from .base import Call, Operation, Param, Reply, json_response
from .getprofile import BASE, error_replies, operation

__all__ = ["operations"]

REF = Param(
    "id", "path", Annotated[str, StringConstraints(min_length=1, max_length=128)], "Profile id or alias."
)
DATA_ID = Param(
    "data_id",
    "path",
    Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")],
    "The data item (the job id upsert returned; listed by GET …/data).",
)
STATUS = Param(
    "status", "query", Literal["pending", "processing", "done", "failed"], "Only items in this state.", False
)
LIMIT = Param("limit", "query", Annotated[int, Field(ge=1, le=200)], "Page size, 1-200 (default 50).", False)
CURSOR = Param(
    "cursor",
    "query",
    Annotated[str, StringConstraints(max_length=512)],
    "next_cursor of the previous page.",
    False,
)


async def list_items(call: Call) -> Response:
    """The profile's data items, oldest first, with the facts each one supports."""
    page = await call.app.lifecycle.list_data(
        call.ns,
        call.params["id"],
        status=call.params.get("status"),
        limit=call.params.get("limit", 50),
        cursor=call.params.get("cursor"),
    )
    return json_response(data_page_result(page))


async def forget_item(call: Call) -> Response:
    """Erase one data item and what was derived only from it (announces the change)."""
    out = await call.app.lifecycle.forget_data(
        call.ns, call.params["id"], call.params["data_id"], actor="rest"
    )
    return json_response(forget_result(out))


def operations() -> list[Operation]:
    """The data-item routes."""
    return [
        operation(
            "GET",
            f"{BASE}/profile/{{id}}/data",
            "listProfileData",
            "List the raw data items sent for a profile, oldest first, with the facts each supports.",
            list_items,
            params=(REF, STATUS, LIMIT, CURSOR),
            replies=(
                Reply(200, "A page of data items.", ListDataResult),
                *error_replies(400, 401, 403, 404, 405, 421),
            ),
        ),
        operation(
            "DELETE",
            f"{BASE}/profile/{{id}}/data/{{data_id}}",
            "forgetProfileData",
            "Forget one data item: its content, the facts only it supports, its evidence on shared facts, "
            "an extracted summary it contributed to, and its values in the history. Cannot be undone.",
            forget_item,
            params=(REF, DATA_ID),
            replies=(
                Reply(200, "Forgotten; what was removed.", ForgetDataResult),
                *error_replies(400, 401, 403, 404, 405, 409, 421),
            ),
        ),
    ]
