"""The dashboard: server-rendered pages (Jinja2, templates and assets in :mod:`fundtrail.web`) over the same
services and permissions as the API.

Pages sign in with the session cookie; a page the user may not see answers with a plain explanation,
and a case out of reach answers "not found", as the API does. Interactive parts (the flow graph,
request actions) call the API from the browser with the same cookie.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import orjson
from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from fundtrail.analysis.flowgraph import chain_color
from fundtrail.analysis.tracing.params import DEFAULT_MAX_HOPS, MAX_HOPS_LIMIT
from fundtrail.api.access import Action, AnyAction, Principal
from fundtrail.api.deps import CaseAccess, api_state, optional_principal, signed_out_principal
from fundtrail.api.documents import address_document, json_bytes
from fundtrail.api.errors import FieldError, TooManyRequests, Unauthenticated
from fundtrail.api.routers.auth import end_session, set_session_cookie
from fundtrail.domain.chains import CHAINS, get_chain
from fundtrail.errors import FundTrailError, NotFoundError, PermissionDeniedError
from fundtrail.watch.service import alert_doc, list_alerts
from fundtrail.web import STATIC, TEMPLATES

log = logging.getLogger(__name__)

templates = Jinja2Templates(directory=str(TEMPLATES))

NAV: list[tuple[str, str, str, AnyAction | None]] = [
    ("cases", "Cases", "/cases", Action.CASE_READ),
    ("address", "Address search", "/address", Action.CHAIN_READ),
    ("trace", "Trace funds", "/trace", Action.TRACE_RUN),
    ("recovery", "Recovery", "/recovery", Action.RECOVERY_READ),
    ("alerts", "Alerts", "/alerts", Action.CASE_READ),
    ("account", "My account", "/account", None),
]


# ------------------------------------------------------------------------------------------ filters


def coins(value: Any, chain: str, asset: str = "native") -> str:
    """Base units as coins with the chain's symbol (``5000000`` on btc -> ``0.05 BTC``)."""
    from fundtrail.domain.cases import format_amount

    if value is None or value == "":
        return "-"
    try:
        amount = int(value)
    except (TypeError, ValueError):
        return str(value)
    params = CHAINS.get(chain)
    if params is None or asset not in ("native", None):
        return f"{amount:,} units"
    return f"{format_amount(amount, params.decimals)} {params.symbol}"


def when(value: Any) -> str:
    """A Unix time or datetime as ``2026-05-01 14:03 UTC``; a date as ``2026-05-01``."""
    if value is None or value == "":
        return "-"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        text: str = value
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return text
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def days_left(value: Any, today: date | None = None) -> int | None:
    """Days from today to a due date (negative when overdue); None without one."""
    if not value:
        return None
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    days: int = (value - (today or datetime.now(UTC).date())).days
    return days


templates.env.filters["coins"] = coins
templates.env.filters["when"] = when
templates.env.globals["days_left"] = days_left


def since(value: Any, now: datetime | None = None) -> str:
    """Time elapsed since ``value`` (an ISO time), as ``2 d 3 h`` / ``3 h 5 min`` / ``4 min``."""
    if not value:
        return ""
    start = datetime.fromisoformat(value) if isinstance(value, str) else value
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - start).total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {rest // 60} min"
    return f"{rest // 60} min"


templates.env.globals["since"] = since


# ------------------------------------------------------------------------------------------ helpers


def _safe_next(target: str | None) -> str:
    """A local path to go to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _same_origin(request: Request) -> bool:
    """True when a form post comes from this site (Origin or Referer match, or neither is sent)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True
    parts = urlsplit(origin)
    return parts.netloc == request.url.netloc


def nav_for(principal: Principal) -> list[dict[str, str]]:
    """The navigation entries the user's role may use."""
    items = [{"key": key, "label": label, "href": href} for key, label, href, action in NAV
             if action is None or principal.may(action)]
    if principal.may(Action.USERS_ADMIN):
        items.insert(0, {"key": "users", "label": "Users", "href": "/admin/users"})
    return items


def render(request: Request, template: str, principal: Principal | None, current: str = "",
           status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with the layout's context (user, navigation)."""
    context.update({"user": principal, "nav": nav_for(principal) if principal else [], "current": current})
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def refusal(request: Request, principal: Principal, error: FundTrailError, current: str = "") -> HTMLResponse:
    """A page explaining why something cannot be shown (not found, not allowed, bad input)."""
    if isinstance(error, NotFoundError):
        status, title = 404, "Not found"
        text = ("This page does not exist, or it belongs to a case outside your unit. "
                "Check the number, or ask your supervisor for access.")
    elif isinstance(error, PermissionDeniedError):
        status, title = 403, "Not allowed"
        text = f"Your role ({principal.role}) may not see this page. {error}"
    else:
        status, title, text = 422, "Cannot show this", str(error)
    return render(request, "message.html", principal, current, status_code=status, title=title, text=text)


def chain_choices(request: Request) -> list[dict[str, Any]]:
    """The chains the store holds (all known chains when it holds none), for the chain selectors, with
    the colour of each in the flow graph."""
    with api_state(request).chain.store() as store:
        names = store.chains()
    names = names or ["btc", "eth"]
    return [{"name": n, "decimals": CHAINS[n].decimals, "symbol": CHAINS[n].symbol,
             "description": CHAINS[n].description, "color": chain_color(n)} for n in names if n in CHAINS]


# ------------------------------------------------------------------------------------------ pages


def home(request: Request) -> Response:
    """Start page: the case list, or where the role begins."""
    principal = optional_principal(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    for _key, _label, href, action in NAV:
        if action is not None and principal.may(action):
            return RedirectResponse(href, status_code=303)
    if principal.may(Action.USERS_ADMIN):
        return RedirectResponse("/admin/users", status_code=303)
    return RedirectResponse("/account", status_code=303)


def login_page(request: Request, next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    """The sign-in form."""
    principal = optional_principal(request)
    if principal is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", None, next=_safe_next(next),
                  oidc=api_state(request).auth.oidc_enabled)


def login_submit(request: Request, username: Annotated[str, Form(max_length=200)] = "",
                 password: Annotated[str, Form(max_length=1000)] = "",
                 next: Annotated[str, Form(max_length=500)] = "/") -> Response:
    """Check the password, set the session cookie and go on; the form again with a message otherwise."""
    if not _same_origin(request):
        return render(request, "login.html", None, status_code=403, next="/",
                      error="The sign-in form must be sent from this site.")
    try:
        if not username or not password:
            raise Unauthenticated("Please give your user name and password.")
        token, _info = api_state(request).auth.login(username, password)
    except Unauthenticated as error:
        message = error.detail if "Please" in error.detail else "Wrong user name or password."
        return render(request, "login.html", None, status_code=401, next=_safe_next(next), username=username,
                      error=message)
    except TooManyRequests as error:
        return render(request, "login.html", None, status_code=429, next=_safe_next(next), username=username,
                      error=f"Too many failed attempts. Please wait {error.retry_after} seconds.")
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(request, response, token)
    return response


def logout_submit(request: Request) -> Response:
    """End the session (revoked server-side, as the API's logout does) and go back to the sign-in form.

    The sign-out form cannot send the API's CSRF header: see :func:`signed_out_principal`.
    """
    response = RedirectResponse("/login", status_code=303)
    end_session(request, signed_out_principal(request), response)
    return response


def address_page(request: Request, chain: Annotated[str, Query(max_length=16)] = "btc",
                 q: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """Address search: the address document, in words."""
    principal = optional_principal(request)
    if principal is None:
        return _login_redirect(request)
    if not principal.may(Action.CHAIN_READ):
        return refusal(request, principal, PermissionDeniedError("address look-ups are for analysts and "
                                                                 "investigators"), "address")
    state = api_state(request)
    context: dict[str, Any] = {"chains": chain_choices(request), "chain": chain, "query": q, "doc": None,
                               "error": None, "pending": False}
    if q and q.strip():
        try:
            chain = get_chain(chain).name
            context["chain"] = chain
            cached = state.address_cache.get((chain, q.strip()))
            doc = orjson.loads(cached) if cached is not None else None
            if doc is None:
                address = q.strip()
                job = state.jobs.submit("address", principal.user_id,
                                        lambda: _address(state, chain, address))
                if state.jobs.wait(job, max(state.settings.sync_seconds, 10.0)):
                    doc = job.future.result()
                else:
                    context["pending"] = True
            context["doc"] = doc
        except FieldError as error:
            context["error"] = str(error.error)
        except FundTrailError as error:
            context["error"] = str(error)
    return render(request, "address.html", principal, "address", **context)


def _address(state: Any, chain: str, address: str) -> dict[str, Any]:
    generation = state.address_cache.current()  # taken before computing: a write meanwhile is seen next time
    with state.chain.store() as store:
        doc = address_document(store, state.home, chain, address)
    body = json_bytes(doc)
    state.address_cache.put((chain, address), body, generation)
    state.address_cache.put((chain, doc["address"]), body, generation)
    return doc


def trace_page(request: Request, chain: Annotated[str, Query(max_length=16)] = "btc",
               seeds: Annotated[list[str] | None, Query(max_length=100)] = None,
               policy: Annotated[str, Query(max_length=10)] = "haircut",
               max_hops: Annotated[int, Query(ge=0, le=MAX_HOPS_LIMIT)] = DEFAULT_MAX_HOPS) -> Response:
    """The flow graph page: a trace form; traces run from the browser through the API."""
    principal = optional_principal(request)
    if principal is None:
        return _login_redirect(request)
    if not principal.may(Action.TRACE_RUN):
        return refusal(request, principal, PermissionDeniedError("traces are for analysts and investigators"),
                       "trace")
    trace = {"chains": chain_choices(request), "chain": chain, "seeds": seeds or [], "policy": policy,
             "max_hops": max_hops, "max_hops_limit": MAX_HOPS_LIMIT, "case": None, "autorun": bool(seeds)}
    return render(request, "trace.html", principal, "trace", trace=trace)


def account_page(request: Request) -> Response:
    """The signed-in user: role, permissions in words, and their tokens."""
    principal = optional_principal(request)
    if principal is None:
        return _login_redirect(request)
    tokens, _total = api_state(request).auth.list_tokens(principal, limit=100, offset=0)
    return render(request, "account.html", principal, "account", tokens=tokens,
                  permissions=sorted(a.value for a in principal.actions))


def users_page(request: Request) -> Response:
    """Admins: the users of the service."""
    principal = optional_principal(request)
    if principal is None:
        return _login_redirect(request)
    if not principal.may(Action.USERS_ADMIN):
        return refusal(request, principal, PermissionDeniedError("user management is for admins"), "users")
    users, total = api_state(request).cases.users(500, 0)
    return render(request, "users.html", principal, "users", users=users, total=total)


def alerts_page(request: Request) -> Response:
    """The alert inbox: newest first, each with its drafted freeze request and the request's clock."""
    principal = optional_principal(request)
    if principal is None:
        return _login_redirect(request)
    if not principal.may(Action.CASE_READ):
        return refusal(request, principal, PermissionDeniedError("alerts are for case workers"), "alerts")
    access = CaseAccess(
        request,
        principal,
        Action.CASE_READ,
        request.headers.get("x-reason") or "viewed in the dashboard",
        operation_id="page.alerts",
    )
    try:
        alerts = access.read(lambda ctx: [alert_doc(a, ctx.home) for a in list_alerts(ctx)[:500]])
    except FundTrailError as error:
        return refusal(request, principal, error, "alerts")
    return render(request, "alerts.html", principal, "alerts", alerts=alerts)


PAGES: list[tuple[str, str, Any]] = [
    ("GET", "/", home),
    ("GET", "/login", login_page),
    ("POST", "/login", login_submit),
    ("POST", "/logout", logout_submit),
    ("GET", "/address", address_page),
    ("GET", "/trace", trace_page),
    ("GET", "/account", account_page),
    ("GET", "/admin/users", users_page),
    ("GET", "/alerts", alerts_page),
]


def install(app: FastAPI, pages: list[tuple[str, str, Any]]) -> None:
    """Add the dashboard's ``pages`` (:data:`PAGES` and the case pages) and static files to ``app``."""
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for method, path, endpoint in pages:
        app.add_api_route(path, endpoint, methods=[method], include_in_schema=False,
                          response_class=HTMLResponse, name=f"page_{endpoint.__name__}")
