"""Signing in and out, the signed-in user, and their API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from fundtrail.api.access import Principal
from fundtrail.api.deps import SESSION_COOKIE, Limit, Offset, User, api_state
from fundtrail.api.errors import FieldError
from fundtrail.api.schemas import (
    LoginRequest,
    Me,
    OidcLogin,
    Page,
    Problem,
    TokenCreate,
    TokenInfo,
    TokenIssued,
    page_of,
)
from fundtrail.errors import InputError, PermissionDeniedError

router = APIRouter(tags=["authentication"])

LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": LoginRequest.model_json_schema()},
        },
    }
}


async def _login_form(request: Request) -> LoginRequest:
    """The user name and password from a JSON or form body; 422 naming the field otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            data: Any = await request.json()
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            data = dict(await request.form())
        else:
            raise FieldError("body", InputError("send the user name and password as JSON or as a form"))
    except ValueError:
        raise FieldError("body", InputError("the body is not valid JSON")) from None
    if not isinstance(data, dict):
        raise FieldError("body", InputError("the body must be an object with username and password"))
    try:
        return LoginRequest.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise FieldError(field, InputError(first.get("msg", "invalid"))) from None


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    """Put the session token in an HttpOnly, SameSite=Strict cookie."""
    settings = api_state(request).settings
    max_age = int(timedelta(hours=settings.session_hours).total_seconds())
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age,
                        httponly=True, samesite="strict", secure=settings.cookie_secure, path="/")


@router.post("/auth/login", operation_id="login", response_model=TokenIssued, openapi_extra=LOGIN_BODY,
             responses={429: {"model": Problem, "content": {"application/problem+json": {}},
                              "description": "Too many failed sign-ins for this user: wait."}},
             summary="Sign in with a user name and password")
async def login(request: Request, response: Response) -> dict[str, Any]:
    """Check the password; answer a session token and set it as the dashboard's cookie.

    The body is JSON or a form with ``username`` and ``password``.
    """
    form = await _login_form(request)
    auth = api_state(request).auth
    token, info = await run_in_threadpool(auth.login, form.username, form.password)
    set_session_cookie(request, response, token)
    return {"token": token, "token_type": "bearer", **_issued(info)}


@router.post("/auth/oidc", operation_id="login_oidc", response_model=TokenIssued,
             summary="Sign in with an OpenID Connect ID token")
def login_oidc(request: Request, response: Response, body: OidcLogin) -> dict[str, Any]:
    """Exchange an ID token of the configured issuer for a session (404 when OpenID Connect is off)."""
    token, info = api_state(request).auth.login_oidc(body.id_token)
    set_session_cookie(request, response, token)
    return {"token": token, "token_type": "bearer", **_issued(info)}


def end_session(request: Request, principal: Principal | None, response: Response) -> None:
    """Sign out: revoke the session or token ``principal`` signed in with (at once, server-side) and
    clear the cookie. The API's logout and the dashboard's sign-out both come here."""
    if principal is not None and principal.token_id is not None:
        api_state(request).auth.revoke(principal, principal.token_id)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.post("/auth/logout", operation_id="logout", status_code=204, summary="Sign out")
def logout(request: Request, user: User) -> Response:
    """End the current session (or revoke the token used) and clear the cookie."""
    response = Response(status_code=204)
    end_session(request, user, response)
    return response


@router.get("/auth/me", operation_id="get_me", response_model=Me, summary="The signed-in user")
def me(user: User) -> dict[str, Any]:
    """Who you are signed in as, and what your role may do."""
    return {"username": user.username, "role": user.role, "unit": user.unit,
            "jurisdiction": user.jurisdiction,
            "display_name": user.display_name, "permissions": sorted(a.value for a in user.actions)}


def _issued(info: dict[str, Any]) -> dict[str, Any]:
    return {"id": info["id"], "name": info["name"], "kind": info["kind"], "expires_at": info["expires_at"]}


@router.post("/tokens", operation_id="create_token", response_model=TokenIssued, status_code=201,
             summary="Make an API token")
def create_token(request: Request, body: TokenCreate, user: User) -> dict[str, Any]:
    """A new API token for yourself (admins: for any user). The token is shown in this answer only."""
    username = body.username or user.username
    if username != user.username and user.role != "admin":
        raise PermissionDeniedError("only admins make tokens for other users")
    token, info = api_state(request).auth.issue(username, name=body.name, kind="api",
                                                lifetime=timedelta(days=body.expires_in_days))
    return {"token": token, "token_type": "bearer", **_issued(info)}


@router.get("/tokens", operation_id="list_tokens", response_model=Page[TokenInfo], summary="Your tokens")
def list_tokens(request: Request, user: User, limit: Limit = 50, offset: Offset = 0,
                everyone: Annotated[bool, Query(description="Admins: every user's tokens.")] = False
                ) -> dict[str, Any]:
    """Your API tokens and sessions (never their secrets); admins may list everyone's."""
    items, total = api_state(request).auth.list_tokens(user, everyone=everyone, limit=limit, offset=offset)
    return page_of(items, total, limit, offset)


@router.delete("/tokens/{token_id}", operation_id="revoke_token", response_model=TokenInfo,
               summary="Revoke a token")
def revoke_token(request: Request, token_id: Annotated[str, Path(min_length=1, max_length=32)],
                 user: User) -> dict[str, Any]:
    """Revoke one of your tokens (admins: anyone's). It stops working at once."""
    return api_state(request).auth.revoke(user, token_id)
