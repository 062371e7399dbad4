"""Users, for admins: who may sign in, with which role, unit and jurisdiction; setting passwords."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from fundtrail.api.access import Action, Principal
from fundtrail.api.deps import Limit, Offset, allowed, api_state
from fundtrail.api.schemas import Page, PasswordSet, UserInfo, page_of

router = APIRouter(tags=["users"])

Admin = Annotated[Principal, Depends(allowed(Action.USERS_ADMIN))]
UsernamePath = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/users", operation_id="list_users", response_model=Page[UserInfo], summary="Users")
def list_users(request: Request, admin: Admin, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Every user with role, unit, jurisdiction, and whether they have a password."""
    items, total = api_state(request).cases.users(limit, offset)
    return page_of(items, total, limit, offset)


@router.put("/users/{username}/password", operation_id="set_password", status_code=204,
            summary="Set a user's password")
def set_password(request: Request, username: UsernamePath, body: PasswordSet, admin: Admin) -> Response:
    """Set (or reset) a user's password; their open sessions end."""
    api_state(request).auth.set_password(username, body.password)
    return Response(status_code=204)
