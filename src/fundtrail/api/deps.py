"""Dependencies of the routes: the shared state, the signed-in user and their permissions, paging,
the reason for an access, and analyses bounded in time (202 + job when they take long)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from fundtrail.api.access import AnyAction, Principal, check
from fundtrail.api.errors import FieldError, Unauthenticated
from fundtrail.api.schemas import MAX_PAGE
from fundtrail.api.state import ApiState
from fundtrail.errors import InputError

if TYPE_CHECKING:
    from fundtrail.api.casework import CaseWork

SESSION_COOKIE = "fundtrail_session"
CSRF_HEADER = "X-Requested-With"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"At most this many items (1 to {MAX_PAGE}).")]
Offset = Annotated[int, Query(ge=0, le=10**9, description="Items to skip.")]


def api_state(request: Request) -> ApiState:
    """The state of the app serving ``request``."""
    state: ApiState = request.app.state.fundtrail
    return state


def _credentials(request: Request, *, csrf: bool = True) -> tuple[str | None, str]:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        return value.strip(), "token"
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        # Cookies travel with cross-site requests; a custom header cannot without CORS, which is off.
        if csrf and request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
            raise Unauthenticated(f"changes signed in by cookie need the {CSRF_HEADER} header")
        return cookie, "session"
    return None, "none"


def request_principal(request: Request) -> Principal:
    """The signed-in user (bearer token or session cookie); 401 when there is none or it is not valid."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token, via = _credentials(request)
    if token is None:
        raise Unauthenticated()
    principal = api_state(request).auth.principal_for_token(token, via=via)
    if principal is None:
        raise Unauthenticated("the token or session is unknown, expired or revoked")
    request.state.principal = principal
    return principal


async def current_principal(request: Request) -> Principal:
    """:func:`request_principal` for routes: a token checked recently costs no database call nor thread."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token, via = _credentials(request)
    if token is None:
        raise Unauthenticated()
    principal = api_state(request).auth.cached_principal(token, via=via)
    if principal is None:
        return await run_in_threadpool(request_principal, request)
    request.state.principal = principal
    return principal


def signed_out_principal(request: Request) -> Principal | None:
    """The signed-in user (bearer token or session cookie) of a sign-out, or None.

    Unlike :func:`request_principal`, a cookie needs no CSRF header here: the dashboard's sign-out is a
    plain form, ending a session only takes access away, and the SameSite=Strict cookie is not sent with
    requests from other sites.
    """
    try:
        token, via = _credentials(request, csrf=False)
    except Unauthenticated:
        return None
    return api_state(request).auth.principal_for_token(token, via=via) if token else None


def optional_principal(request: Request) -> Principal | None:
    """The signed-in user, or None (for pages that show a sign-in form instead)."""
    try:
        return request_principal(request)
    except Unauthenticated:
        return None


def allowed(action: AnyAction) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the signed-in user, when their role allows ``action`` (403 otherwise)."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        check(principal, action)
        return principal

    dependency.__name__ = f"allowed_{action.name.lower()}"
    return dependency


User = Annotated[Principal, Depends(current_principal)]


def clean_reason(text: str | None) -> str | None:
    """A reason as given, trimmed; None when empty."""
    return text.strip() if text and text.strip() else None


ReasonHeader = Annotated[str | None, Header(
    max_length=500, description="Why you access this case data; kept in the audit log.")]
"""The ``X-Reason`` header, as a parameter of a route or a dependency."""


async def read_reason(x_reason: ReasonHeader = None) -> str | None:
    """The reason given for a read (optional)."""
    return clean_reason(x_reason)


ReadReason = Annotated[str | None, Depends(read_reason)]


def write_reason(body_reason: str | None, header_reason: str | None) -> str:
    """The reason for a change: the body's ``reason`` or the ``X-Reason`` header; required."""
    reason = (body_reason or "").strip() or (header_reason or "").strip()
    if not reason:
        raise FieldError("reason", InputError("a reason is required for changes to case data "
                                              "(the 'reason' field or the X-Reason header)"))
    return reason


def job_document(job: Any) -> dict[str, Any]:
    """The ``GET /jobs/{id}`` document of a job (see :meth:`fundtrail.api.jobs.Job.to_document`)."""
    doc: dict[str, Any] = job.to_document()
    return doc


def bounded(request: Request, principal: Principal, kind: str, work: Callable[[], Any], *,
            background: bool = False) -> Any:
    """Run ``work`` as a job; its result when it finishes within the sync wait, else 202 with the job."""
    state = api_state(request)
    job = state.jobs.submit(kind, principal.user_id, work)
    if not background and state.jobs.wait(job, state.settings.sync_seconds):
        error = job.future.exception()
        if error is not None:
            raise error
        return job.future.result()
    location = str(request.url_for("get_job", job_id=job.id).path)
    return JSONResponse({"job_id": job.id, "kind": kind, "status": job.status, "location": location},
                        status_code=202, headers={"Location": location})


class CaseAccess:
    """Case data for one request: runs case-layer services as the user, with the reason, audited.

    The role check happens here too, so that a refused call is recorded in the audit log as well.
    """

    def __init__(self, request: Request, principal: Principal, action: Any,
                 header_reason: str | None, operation_id: str | None = None) -> None:
        self.request = request
        self.principal = principal
        self.action = action
        self.header_reason = header_reason
        route = request.scope.get("route")
        self.operation_id = operation_id or getattr(route, "operation_id", None) or request.url.path
        self.cases: CaseWork = api_state(request).cases

    def _call(self, reason: str | None, case: str | None) -> Any:
        from fundtrail.api.casework import CaseCall

        return CaseCall(self.operation_id, self.request.method, self.request.url.path, self.principal.via,
                        reason, case)

    def _check(self, call: Any) -> None:
        from fundtrail.errors import PermissionDeniedError

        try:
            check(self.principal, self.action)
        except PermissionDeniedError as error:
            self.cases._refused(self.principal, call, error)
            raise

    def read(self, work: Callable[[Any], T], *, case: str | None = None, writes: bool = False) -> T:
        """Run a read (in a snapshot, see :meth:`CaseWork.read`); the reason (``X-Reason``) is optional.
        A read that also records something besides its audit records (``writes``) runs as a change does."""
        call = self._call(self.header_reason, case)
        self._check(call)
        if writes:
            return self.cases.run(self.principal, call, work)
        return self.cases.read(self.principal, call, work)

    async def read_case(self, number: str) -> bytes:
        """The document of case ``number`` as JSON, its read audited (see :meth:`CaseWork.read_case`)."""
        call = self._call(self.header_reason, number.upper())
        return await self.cases.read_case(self.principal, call, number, self.header_reason)

    def write(self, work: Callable[[Any, str], T], *, case: str | None = None,
              body_reason: str | None = None) -> T:
        """Run a change; a reason (body ``reason`` or ``X-Reason``) is required and passed to ``work``."""
        self._check(self._call(body_reason or self.header_reason, case))
        reason = write_reason(body_reason, self.header_reason)
        return self.cases.run(self.principal, self._call(reason, case), lambda ctx: work(ctx, reason))


def case_data(action: Any) -> Callable[..., Awaitable[CaseAccess]]:
    """A dependency: :class:`CaseAccess` for routes doing ``action`` on case data."""

    async def dependency(request: Request, principal: Annotated[Principal, Depends(current_principal)],
                         reason: ReadReason) -> CaseAccess:
        return CaseAccess(request, principal, action, reason)

    dependency.__name__ = f"case_data_{getattr(action, 'name', str(action)).lower()}"
    return dependency
