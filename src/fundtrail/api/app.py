"""The FastAPI application: :func:`create_app` builds one for a FundTrail home.

::

    app = create_app(Path(".fundtrail"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routers, one per noun, live in :mod:`fundtrail.api.routers` (the cooperation and TAXII 2.1 routes among
them); the dashboard's pages in :mod:`fundtrail.api.pages` and :mod:`fundtrail.api.casepages`, their
templates and assets in :mod:`fundtrail.web`. Errors become problem-details answers in
:mod:`fundtrail.api.errors`.
"""

from __future__ import annotations

import functools
import gc
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from fundtrail import __version__
from fundtrail.api import casepages, pages
from fundtrail.api.documents import DocumentCache
from fundtrail.api.errors import install_error_handlers
from fundtrail.api.jobs import JobManager
from fundtrail.api.pages import install as install_dashboard
from fundtrail.api.routers import (
    alerts as alerts_routes,
)
from fundtrail.api.routers import (
    audit as audit_routes,
)
from fundtrail.api.routers import (
    auth as auth_routes,
)
from fundtrail.api.routers import (
    cases as cases_routes,
)
from fundtrail.api.routers import (
    chain as chain_routes,
)
from fundtrail.api.routers import (
    cooperation as cooperation_routes,
)
from fundtrail.api.routers import (
    evidence as evidence_routes,
)
from fundtrail.api.routers import (
    recovery as recovery_routes,
)
from fundtrail.api.routers import (
    requests as requests_routes,
)
from fundtrail.api.routers import (
    subjects as subjects_routes,
)
from fundtrail.api.routers import (
    taxii as taxii_routes,
)
from fundtrail.api.routers import (
    traces as traces_routes,
)
from fundtrail.api.routers import (
    users as users_routes,
)
from fundtrail.api.routers import (
    watches as watches_routes,
)
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
    # Everything comes from the service itself: no outside scripts, styles, fonts or connections, and no
    # inline scripts or event handlers (the dashboard's scripts are files under /static).
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; "
                                 b"style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                                 b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'"),
]

NO_STORE = (b"cache-control", b"no-store")
"""Sent with every answer but static assets: case data must not stay in a browser's or proxy's cache."""

STATIC_PREFIX = "/static/"
"""Where the static assets (scripts, styles, vendored libraries) are served; they may be cached."""


GC_THRESHOLDS = (10_000, 10, 10)
"""The cyclic collector's thresholds while the app serves (Python's own: 700, 10, 10)."""

SWITCH_INTERVAL = 0.0005
"""Seconds a thread runs before Python hands the interpreter lock to another thread waiting for it,
while the app serves (Python's own: 0.005)."""


@functools.cache
def _freeze_start_up_heap() -> None:
    """Once per process: collect, then leave what is left (modules, the app, its routes and engines) out
    of every later collection (``gc.freeze``): it lives as long as the process."""
    gc.collect()
    gc.freeze()


@contextmanager
def serving_process() -> Iterator[None]:
    """The process's settings while the app serves, for short pauses under load; restored when it stops.

    * The start-up heap is frozen (:func:`_freeze_start_up_heap`) and the youngest generation is
      collected every :data:`GC_THRESHOLDS` allocations instead of every 700. A collection of the oldest
      generation pauses every request of the process while it walks all of it (the start-up heap made
      it take 100 ms and more under load), and collecting the youngest generation every 700 allocations
      promoted the objects of the requests in flight fast enough to start one every second or so.
    * The interpreter lock changes hands after :data:`SWITCH_INTERVAL`: the audit writer
      (:mod:`fundtrail.audit.batch`) holds the case database's one write lock while it needs the
      interpreter lock again after each statement, and waited up to 5 ms each time for a busy event loop
      to let go of it, while the readers of every worker waited for its commit.
    """
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    _freeze_start_up_heap()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP answer, and :data:`NO_STORE` (in
    place of any other ``Cache-Control``) to every answer outside :data:`STATIC_PREFIX`."""

    def __init__(self, app: Any) -> None:  # noqa: D107
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(SECURITY_HEADERS)
        cacheable = scope.get("path", "").startswith(STATIC_PREFIX)
        if not cacheable:
            extra.append(NO_STORE)

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if not cacheable:
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                message["headers"] = [*headers, *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


@functools.cache
def _process_queued_case_work() -> Any:
    """:class:`~fundtrail.api.casework.CaseWork` whose case operations on a SQLite file queue across
    the server's worker processes too, not only across its threads (an exclusive ``flock`` on a file
    beside the database, taken after the process's own lock): SQLite's wait for another process's write
    lock sleeps with growing pauses and leaves some writers waiting for seconds under load. Processes
    that do not take the lock (the CLI) still meet SQLite's own wait."""
    import fcntl
    import os
    import threading

    from fundtrail.api.casework import CaseWork

    class ProcessQueuedCaseWork(CaseWork):
        def __init__(self, db: Any) -> None:
            super().__init__(db)
            database = db.engine.url.database if db.engine.dialect.name == "sqlite" else None
            self._queue_path = (f"{database}.writer-lock" if database and database != ":memory:"
                                and not database.startswith("file:") else None)
            self._queue_fd: int | None = None
            self._queue_guard = threading.Lock()

        @contextmanager
        def _writer(self) -> Iterator[None]:
            with super()._writer():
                if self._queue_path is None:
                    yield
                    return
                with self._queue_guard:
                    if self._queue_fd is None:
                        self._queue_fd = os.open(self._queue_path, os.O_RDWR | os.O_CREAT, 0o600)
                    fd = self._queue_fd
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)

        def close(self) -> None:
            super().close()
            with self._queue_guard:
                if self._queue_fd is not None:
                    os.close(self._queue_fd)
                    self._queue_fd = None

    return ProcessQueuedCaseWork


def _subfolder(folder: Path | None, name: str) -> Path | None:
    if folder is None:
        return None
    path = Path(folder) / name
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _shared_replay_guard(folder: Path | None) -> Any:
    """A replay guard for partners' signed calls that remembers nonces for every worker of the server:
    one file per nonce, created exclusively (``O_EXCL``), in ``folder``; files older than the replay
    horizon are reused and pruned. Only calls with a valid partner signature reach the guard."""
    import hashlib
    import os

    from fundtrail.errors import IntegrityError
    from fundtrail.sharing.signing import ReplayGuard

    assert folder is not None
    where: Path = folder

    class SharedReplayGuard(ReplayGuard):
        checks = 0

        def check(self, key_id: str, nonce: str, now: Any) -> None:
            super().check(key_id, nonce, now)
            horizon = (now - 2 * self.window).timestamp()
            path = where / hashlib.sha256(f"{key_id}:{nonce}".encode()).hexdigest()
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                try:
                    seen = path.stat().st_mtime
                except FileNotFoundError:
                    seen = None
                if seen is not None and seen > horizon:
                    raise IntegrityError(
                        f"request nonce {nonce[:8]}... of key {key_id} was already used: replay refused"
                    ) from None
                os.utime(path)
            self.checks += 1
            if self.checks % 256 == 0:
                for old in where.iterdir():
                    try:
                        if old.stat().st_mtime <= horizon:
                            old.unlink()
                    except FileNotFoundError:
                        continue

    return SharedReplayGuard()


def create_app(home: Path, settings: ApiSettings | None = None, *, auth: Any = None,
               cases: Any = None) -> FastAPI:
    """The API and dashboard for the FundTrail home ``home``.

    ``auth`` and ``cases`` replace the authentication and case services (tests); by default they are
    built on the home's case database.
    """
    home = Path(home)
    settings = settings or ApiSettings()
    if auth is None or cases is None:
        from fundtrail.api.auth import REVOCATIONS, AuthService

        work = _process_queued_case_work()
        cases = cases or work.open(home, settings.database_url, wal=settings.sqlite_wal)
        auth = auth or AuthService(cases, settings, revocations=home / REVOCATIONS)
    shared = settings.shared_folder
    jobs = JobManager(workers=settings.job_workers, spool=_subfolder(shared, "jobs"))
    bound = settings.document_cache_seconds
    state = ApiState(home=home, settings=settings, chain=ChainAccess(home), jobs=jobs,
                     address_cache=DocumentCache(settings.address_cache_size, bound),
                     transaction_cache=DocumentCache(16384, bound),
                     auth=auth, cases=cases)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("FundTrail service for %s", home)
        with serving_process():
            yield
        state.close()

    app = FastAPI(title="FundTrail", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  responses=PROBLEM_RESPONSES, docs_url=None, redoc_url=None)
    app.state.fundtrail = state
    if shared is not None:
        from fundtrail.api.routers.cooperation import SharingState
        from fundtrail.sharing.shared_state import SharedPsiSessions, SharedStatuses

        sessions, statuses = _subfolder(shared, "psi-sessions"), _subfolder(shared, "taxii-statuses")
        assert sessions is not None and statuses is not None
        state.extra["sharing"] = SharingState(guard=_shared_replay_guard(_subfolder(shared, "nonces")),
                                              sessions=SharedPsiSessions(sessions),
                                              statuses=SharedStatuses(statuses))
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)
    _include_routers(app)
    return app


def _include_routers(app: FastAPI) -> None:
    for module in ROUTERS:
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(cooperation_routes.router)  # partner agencies' signed calls, under /api/cooperation
    app.include_router(taxii_routes.router)  # TAXII 2.1, under /taxii2
    app.include_router(watches_routes.router)  # partners' shared watches and alerts, under /api/cooperation
    install_dashboard(app, [*pages.PAGES, *casepages.PAGES])
    app.add_api_route("/docs", api_documentation, methods=["GET"], include_in_schema=False)


API_DOCUMENTATION = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>FundTrail API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/vendor/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="/openapi.json"></div>
<script src="/static/vendor/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body>
</html>
"""
"""The interactive API documentation page: Swagger UI started by a script file (no inline script)."""


async def api_documentation() -> HTMLResponse:
    """The interactive API documentation (Swagger UI, served from the package: no outside network)."""
    return HTMLResponse(API_DOCUMENTATION)


API_PREFIX = "/api"
"""Where the API's routes live; the dashboard's pages are at the root."""

ROUTERS: list[ModuleType] = [auth_routes, users_routes, chain_routes, traces_routes, cases_routes,
                             subjects_routes, evidence_routes, requests_routes, recovery_routes, audit_routes,
                             alerts_routes]
"""The routers, one module per noun, in the order of the OpenAPI document."""
