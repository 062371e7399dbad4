"""The FastAPI application: :func:`create_app` builds one for a FundTrail home.

::

    app = create_app(Path(".fundtrail"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routers, one per noun, live in :mod:`fundtrail.api.routers`; the dashboard's pages in
:mod:`fundtrail.web`. Errors become problem-details answers in :mod:`fundtrail.api.errors`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from fundtrail import __version__
from fundtrail.api.documents import DocumentCache
from fundtrail.api.errors import install_error_handlers
from fundtrail.api.jobs import JobManager
from fundtrail.api.schemas import Problem
from fundtrail.api.state import ApiSettings, ApiState
from fundtrail.api.stores import ChainAccess

log = logging.getLogger(__name__)

DESCRIPTION = """\
Trace crypto funds, judge risk, and work on cases: subjects, preserved evidence, legal requests with
deadlines, the recovery ledger and the audit trail.

Authenticate with `POST /auth/login` (a session cookie for the dashboard and a token) or send an API token
as `Authorization: Bearer <token>`. Changes to case data need a reason (`reason` field or `X-Reason`
header); every access to case data is kept in the audit log. Errors are problem-details documents
(RFC 9457) naming the field at fault.
"""

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": text, "content": {"application/problem+json": {}}}
    for status, text in ((400, "Malformed request (a body that is not valid JSON, for instance)."),
                         (401, "Not signed in, or the token is not valid."),
                         (403, "The role may not do this."),
                         (404, "Not found (or out of the user's reach)."),
                         (422, "Invalid input; `errors` names the fields."))
}


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    # Everything comes from the service itself: no outside scripts, styles, fonts or connections.
    (b"content-security-policy", b"default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                 b"style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                                 b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'"),
]


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP answer."""

    def __init__(self, app: Any) -> None:  # noqa: D107
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(home: Path, settings: ApiSettings | None = None, *, auth: Any = None,
               cases: Any = None) -> FastAPI:
    """The API and dashboard for the FundTrail home ``home``.

    ``auth`` and ``cases`` replace the authentication and case services (tests); by default they are
    built on the home's case database.
    """
    home = Path(home)
    settings = settings or ApiSettings()
    if auth is None or cases is None:
        from fundtrail.api.auth import AuthService
        from fundtrail.api.casework import CaseWork

        cases = cases or CaseWork.open(home, settings.database_url, wal=settings.sqlite_wal)
        auth = auth or AuthService(cases, settings)
    state = ApiState(home=home, settings=settings, chain=ChainAccess(home),
                     jobs=JobManager(workers=settings.job_workers),
                     address_cache=DocumentCache(settings.address_cache_size), auth=auth, cases=cases)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("FundTrail service for %s", home)
        yield
        state.close()

    app = FastAPI(title="FundTrail", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  responses=PROBLEM_RESPONSES, docs_url=None, redoc_url=None)
    app.state.fundtrail = state
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)
    _include_routers(app)
    return app


def _include_routers(app: FastAPI) -> None:
    import importlib

    for name in ROUTERS:
        try:
            module = importlib.import_module(f"fundtrail.api.routers.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"fundtrail.api.routers.{name}":
                raise
            continue
        app.include_router(module.router, prefix=API_PREFIX)
    importlib.import_module("fundtrail.sharing.api").install(app)  # cooperation and TAXII 2.1 endpoints
    from fundtrail.web.pages import install as install_dashboard

    install_dashboard(app)
    app.add_api_route("/docs", api_documentation, methods=["GET"], include_in_schema=False)


async def api_documentation() -> HTMLResponse:
    """The interactive API documentation (Swagger UI, served from the package: no outside network)."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="FundTrail API",
                               swagger_js_url="/static/vendor/swagger-ui-bundle.js",
                               swagger_css_url="/static/vendor/swagger-ui.css",
                               swagger_favicon_url="data:,")


API_PREFIX = "/api"
"""Where the API's routes live; the dashboard's pages are at the root."""

ROUTERS = ["auth", "users", "chain", "traces", "cases", "subjects", "evidence", "requests", "recovery",
           "audit"]
"""The routers, one module per noun, in the order of the OpenAPI document."""
