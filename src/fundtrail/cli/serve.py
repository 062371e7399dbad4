"""``fundtrail serve``: the API and the dashboard over HTTP.

The app runs on granian (a Rust HTTP server for ASGI apps) with one worker process per core by default,
or on uvicorn in this process (``--server uvicorn``). Every worker builds its own app on the home: its own
case database connections, chain store connection, caches and job pool. What the workers must agree on
lives in the case database (tokens, revocations, the audit log) or in a folder they share (finished
background jobs, see :mod:`fundtrail.api.jobs`; the nonces of partners' signed calls; the open PSI queries
and the TAXII statuses of the cooperation routes, see :mod:`fundtrail.sharing.shared_state`, so that a
partner's follow-up call may reach any worker). Case operations queue across the workers (see
:func:`fundtrail.api.app.create_app`). Still kept per worker: the address and transaction documents
computed (each worker computes its own) and the pause after failed sign-ins (so ``N x login_attempts`` per
pause).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fundtrail.cli.common import DEFAULT_HOME, HomeOpt, err_console, handle_errors
from fundtrail.errors import InputError

if TYPE_CHECKING:
    from fundtrail.api.state import ApiSettings

log = logging.getLogger(__name__)

MAX_WORKERS = 64
LOG_LEVELS = ("debug", "info", "warning", "error")


class ServerKind(StrEnum):
    """The HTTP server that runs the app."""

    granian = "granian"
    uvicorn = "uvicorn"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_workers() -> int:
    """One worker process per core."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on.")]
PortOpt = Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port to listen on.")]
SyncOpt = Annotated[float, typer.Option(
    "--sync-seconds", min=0, help="How long a request waits for an analysis before answering 202.")]
SessionOpt = Annotated[float, typer.Option(
    "--session-hours", min=0.01, help="How long a dashboard sign-in lasts.")]
SecureOpt = Annotated[bool, typer.Option(
    "--cookie-secure", help="Send the session cookie over HTTPS only (behind a TLS proxy).")]
IssuerOpt = Annotated[str | None, typer.Option("--oidc-issuer", envvar="FUNDTRAIL_OIDC_ISSUER",
                                               help="OpenID Connect issuer (enables it).")]
AudienceOpt = Annotated[str | None, typer.Option("--oidc-audience", envvar="FUNDTRAIL_OIDC_AUDIENCE",
                                                 help="Our client id at the issuer.")]
JwksOpt = Annotated[str | None, typer.Option("--oidc-jwks", envvar="FUNDTRAIL_OIDC_JWKS",
                                             help="The issuer's keys: a JWKS URL or file.")]
ClaimOpt = Annotated[str, typer.Option("--oidc-username-claim", help="The ID-token claim naming the user.")]
LogLevelOpt = Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")]
AccessLogOpt = Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")]
ServerOpt = Annotated[ServerKind, typer.Option(
    "--server", help="granian (worker processes) or uvicorn (one process).")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", "-w", min=1, max=MAX_WORKERS,
    help="Worker processes (granian); default one per core. uvicorn runs one.")]
DocumentCacheOpt = Annotated[float, typer.Option(
    "--document-cache-seconds", min=0, max=86400,
    help="How often (at most) a worker looks whether the chain store changed: computed address and "
         "transaction documents are served from memory while it has not, and a write by any process "
         "(ingest, import) is seen within this time.")]
TokenCacheOpt = Annotated[float, typer.Option(
    "--token-cache-seconds", min=0, max=300,
    help="How long a checked token is trusted before the database is asked again: a revocation made "
         "through the API or the CLI on this home takes effect at once on every worker; one made from "
         "another home on a shared case database, within this time.")]


def serve(home: HomeOpt = DEFAULT_HOME, host: HostOpt = "127.0.0.1", port: PortOpt = 8000,
          sync_seconds: SyncOpt = 2.0, session_hours: SessionOpt = 8.0, cookie_secure: SecureOpt = False,
          oidc_issuer: IssuerOpt = None, oidc_audience: AudienceOpt = None, oidc_jwks: JwksOpt = None,
          oidc_claim: ClaimOpt = "preferred_username", log_level: LogLevelOpt = "info",
          access_log: AccessLogOpt = True, server: ServerOpt = ServerKind.granian,
          workers: WorkersOpt = None, token_cache_seconds: TokenCacheOpt = 5.0,
          document_cache_seconds: DocumentCacheOpt = 0.5) -> None:
    """Serve the API (OpenAPI at /openapi.json, docs at /docs) and the dashboard for the home."""
    from fundtrail.api.state import ApiSettings, OidcSettings

    level = log_level.strip().lower()
    if level not in LOG_LEVELS:
        raise InputError(f"--log-level: {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    if server is ServerKind.uvicorn and workers is not None and workers > 1:
        raise InputError("--workers: uvicorn serves from one process here; use --server granian for several")
    count = 1 if server is ServerKind.uvicorn else (workers or default_workers())
    oidc = None
    if oidc_issuer:
        if not oidc_audience or not oidc_jwks:
            raise InputError("OpenID Connect needs --oidc-audience and --oidc-jwks besides --oidc-issuer")
        is_url = oidc_jwks.startswith(("http://", "https://"))
        oidc = OidcSettings(issuer=oidc_issuer, audience=oidc_audience, username_claim=oidc_claim,
                            jwks_url=oidc_jwks if is_url else None,
                            jwks_file=None if is_url else Path(oidc_jwks))
    settings = ApiSettings(sync_seconds=sync_seconds, session_hours=session_hours,
                           cookie_secure=cookie_secure, oidc=oidc, token_cache_seconds=token_cache_seconds,
                           document_cache_seconds=document_cache_seconds)
    if not _is_loopback(host) and not cookie_secure:
        err_console.print(f"warning: listening on {host} without --cookie-secure; put FundTrail behind "
                          "a TLS proxy before anyone signs in over a network", markup=False)
    home = Path(home)
    if server is ServerKind.uvicorn:
        _run_uvicorn(home, settings, host, port, level, access_log)
        return
    _prepare(home, settings)
    err_console.print(f"FundTrail for {home}: dashboard and API on http://{host}:{port}/ "
                      f"(API documentation at /docs), {count} worker{'s' if count > 1 else ''}",
                      markup=False, highlight=False)
    _run_granian(home, settings, host, port, level, access_log, count)


def _run_uvicorn(home: Path, settings: ApiSettings, host: str, port: int, level: str,
                 access_log: bool) -> None:
    import uvicorn

    from fundtrail.api.app import create_app

    app = create_app(home, settings)
    err_console.print(f"FundTrail for {home}: dashboard and API on http://{host}:{port}/ "
                      f"(API documentation at /docs), uvicorn", markup=False, highlight=False)
    uvicorn.run(app, host=host, port=port, log_level=level, access_log=access_log,
                proxy_headers=False, server_header=False)


def _prepare(home: Path, settings: ApiSettings) -> None:
    """What the workers must not race on, done once before they start: the case database brought up to
    date (migrations, WAL mode), and the OpenID Connect keys checked (a bad JWKS file is an input error
    here, not a worker crash)."""
    from fundtrail.api.casework import CaseWork

    CaseWork.open(home, settings.database_url, wal=settings.sqlite_wal).close()
    if settings.oidc is not None:
        from fundtrail.api.auth import OidcVerifier

        OidcVerifier(settings.oidc)


def worker_app(home: str, settings_json: str) -> Any:
    """The app one granian worker serves (called in the worker process)."""
    from fundtrail.api.app import create_app
    from fundtrail.api.state import ApiSettings

    return create_app(Path(home), ApiSettings.model_validate_json(settings_json))


def _run_granian(home: Path, settings: ApiSettings, host: str, port: int, level: str, access_log: bool,
                 workers: int) -> None:
    import tempfile
    from functools import partial

    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    # What every worker must see (finished jobs, partners' nonces): a client reaches any worker.
    spool = Path(tempfile.mkdtemp(prefix="fundtrail-serve-")) if workers > 1 else None
    settings = settings.model_copy(update={"shared_folder": spool})
    try:
        server = Granian(str(home), address=host, port=port, interface=Interfaces.ASGI, workers=workers,
                         loop=Loops.auto, log_level=LogLevels(level), log_access=access_log, backlog=2048,
                         respawn_failed_workers=True)
        server.serve(target_loader=partial(worker_app, str(home), settings.model_dump_json()),
                     wrap_loader=False)
    finally:
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)


def register(root: typer.Typer) -> None:
    """Add ``serve`` to the root application."""
    root.command("serve")(handle_errors(serve))
