"""``fundtrail serve``: the API and the dashboard over HTTP (uvicorn)."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Annotated

import typer

from fundtrail.cli.common import DEFAULT_HOME, HomeOpt, err_console, handle_errors
from fundtrail.errors import InputError

log = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def serve(home: HomeOpt = DEFAULT_HOME, host: HostOpt = "127.0.0.1", port: PortOpt = 8000,
          sync_seconds: SyncOpt = 2.0, session_hours: SessionOpt = 8.0, cookie_secure: SecureOpt = False,
          oidc_issuer: IssuerOpt = None, oidc_audience: AudienceOpt = None, oidc_jwks: JwksOpt = None,
          oidc_claim: ClaimOpt = "preferred_username", log_level: LogLevelOpt = "info",
          access_log: AccessLogOpt = True) -> None:
    """Serve the API (OpenAPI at /openapi.json, docs at /docs) and the dashboard for the home."""
    import uvicorn

    from fundtrail.api.app import create_app
    from fundtrail.api.state import ApiSettings, OidcSettings

    oidc = None
    if oidc_issuer:
        if not oidc_audience or not oidc_jwks:
            raise InputError("OpenID Connect needs --oidc-audience and --oidc-jwks besides --oidc-issuer")
        is_url = oidc_jwks.startswith(("http://", "https://"))
        oidc = OidcSettings(issuer=oidc_issuer, audience=oidc_audience, username_claim=oidc_claim,
                            jwks_url=oidc_jwks if is_url else None,
                            jwks_file=None if is_url else Path(oidc_jwks))
    settings = ApiSettings(sync_seconds=sync_seconds, session_hours=session_hours,
                           cookie_secure=cookie_secure, oidc=oidc)
    if not _is_loopback(host) and not cookie_secure:
        err_console.print(f"warning: listening on {host} without --cookie-secure; put FundTrail behind "
                          "a TLS proxy before anyone signs in over a network", markup=False)
    app = create_app(Path(home), settings)
    err_console.print(f"FundTrail for {home}: dashboard and API on http://{host}:{port}/ "
                      f"(API documentation at /docs)", markup=False, highlight=False)
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=access_log,
                proxy_headers=False, server_header=False)


def register(root: typer.Typer) -> None:
    """Add ``serve`` to the root application."""
    root.command("serve")(handle_errors(serve))
