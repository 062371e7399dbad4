"""Errors to HTTP: the one place where FundTrail errors become problem-details responses (RFC 9457).

Every error answer is ``application/problem+json``::

    {"type": "urn:fundtrail:problem:invalid-input", "title": "Invalid input", "status": 422,
     "detail": "seeds: at least one seed is needed", "instance": "/traces",
     "errors": [{"field": "seeds", "location": "body", "message": "at least one seed is needed"}]}

``errors`` names the fields for validation errors. Unexpected exceptions are logged with their traceback
and answered 500 without internals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fundtrail.errors import (
    ConflictError,
    FundTrailError,
    InputError,
    IntegrityError,
    InvalidTransitionError,
    NotFoundError,
    PermissionDeniedError,
    PolicyViolationError,
    SourceUnavailableError,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# (error class, HTTP status, problem slug, title); the first matching class wins, so subclasses come first.
ERROR_STATUS: list[tuple[type[BaseException], int, str, str]] = [
    (InvalidTransitionError, 409, "invalid-transition", "Action not allowed in this state"),
    (PolicyViolationError, 403, "policy-violation", "Forbidden by a rule"),
    (InputError, 422, "invalid-input", "Invalid input"),
    (NotFoundError, 404, "not-found", "Not found"),
    (PermissionDeniedError, 403, "forbidden", "Not allowed"),
    (ConflictError, 409, "conflict", "Conflicting update"),
    (IntegrityError, 409, "integrity-failure", "Integrity check failed"),
    (SourceUnavailableError, 503, "source-unavailable", "Source unavailable"),
]

_HTTP_SLUGS = {400: ("bad-request", "Bad request"), 401: ("unauthenticated", "Authentication required"),
               403: ("forbidden", "Not allowed"), 404: ("not-found", "Not found"),
               405: ("method-not-allowed", "Method not allowed"), 406: ("not-acceptable", "Not acceptable"),
               409: ("conflict", "Conflict"), 413: ("too-large", "Request too large"),
               415: ("unsupported-media-type", "Unsupported media type"),
               422: ("invalid-input", "Invalid input"), 429: ("too-many-requests", "Too many requests"),
               503: ("unavailable", "Service unavailable")}


class Unauthenticated(Exception):
    """No valid credentials: answered 401 with a ``WWW-Authenticate: Bearer`` challenge."""

    def __init__(self, detail: str = "sign in or send a valid bearer token") -> None:
        self.detail = detail
        super().__init__(detail)


class TooManyRequests(Exception):
    """Too many attempts (failed logins); answered 429 with ``Retry-After``."""

    def __init__(self, detail: str, retry_after: int) -> None:
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(detail)


class FieldError(Exception):
    """An input error attributed to one request field (path, query or body)."""

    def __init__(self, field: str, error: BaseException, location: str = "body") -> None:
        self.field = field
        self.location = location
        self.error = error
        super().__init__(f"{field}: {error}")


@contextmanager
def about_field(field: str, location: str = "body") -> Iterator[None]:
    """Attribute the InputErrors raised inside the block to ``field`` (a bad address, a bad seed ...)."""
    try:
        yield
    except InvalidTransitionError:
        raise
    except InputError as error:
        raise FieldError(field, error, location) from error


def problem(status: int, slug: str, title: str, detail: str, request: Request | None = None,
            **extra: Any) -> JSONResponse:
    """A problem-details response."""
    body: dict[str, Any] = {"type": f"urn:fundtrail:problem:{slug}", "title": title, "status": status,
                            "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def classify(error: BaseException) -> tuple[int, str, str]:
    """HTTP status, problem slug and title of a FundTrail error."""
    for cls, status, slug, title in ERROR_STATUS:
        if isinstance(error, cls):
            return status, slug, title
    return 500, "internal-error", "Internal error"


def _loc_field(loc: tuple[Any, ...] | list[Any]) -> tuple[str, str]:
    parts = list(loc)
    location = str(parts[0]) if parts else "body"
    rest = [str(p) for p in parts[1:]]
    return location, ".".join(rest) if rest else location


async def _fundtrail_error(request: Request, error: Exception) -> JSONResponse:
    status, slug, title = classify(error)
    return problem(status, slug, title, str(error), request)


async def _field_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, FieldError)
    status, slug, title = classify(error.error)
    return problem(status, slug, title, str(error), request,
                   errors=[{"field": error.field, "location": error.location, "message": str(error.error)}])


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    items = []
    for e in error.errors():
        location, field = _loc_field(e.get("loc", ()))
        items.append({"field": field, "location": location, "message": str(e.get("msg", "invalid"))})
    detail = "; ".join(f"{i['field']}: {i['message']}" for i in items) or "invalid request"
    return problem(422, "invalid-input", "Invalid input", detail, request, errors=items)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    slug, title = _HTTP_SLUGS.get(error.status_code, ("http-error", "Error"))
    detail = error.detail if isinstance(error.detail, str) else title
    response = problem(error.status_code, slug, title, detail, request)
    for key, value in (error.headers or {}).items():
        response.headers[key] = value
    return response


async def _unauthenticated(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Unauthenticated)
    response = problem(401, "unauthenticated", "Authentication required", error.detail, request)
    response.headers["WWW-Authenticate"] = 'Bearer realm="fundtrail"'
    return response


async def _too_many(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, TooManyRequests)
    response = problem(429, "too-many-requests", "Too many requests", error.detail, request)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(500, "internal-error", "Internal error",
                   "the server failed to answer; the error is in its log", request)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping of errors to problem-details responses on ``app``."""
    app.add_exception_handler(FieldError, _field_error)
    app.add_exception_handler(FundTrailError, _fundtrail_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Unauthenticated, _unauthenticated)
    app.add_exception_handler(TooManyRequests, _too_many)
    app.add_exception_handler(Exception, _unexpected)

