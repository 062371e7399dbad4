"""``fundtrail token``: API tokens and passwords of the service's users, for the operator of the home.

A token is shown once, when it is made; FundTrail keeps only its SHA-256 hash. Passwords are kept as
argon2 hashes.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    Table,
    console,
    err_console,
    handle_errors,
    print_json,
)
from fundtrail.errors import InputError

if TYPE_CHECKING:
    from fundtrail.api.auth import Credentials

app = typer.Typer(help="API tokens and passwords of the service's users.", no_args_is_help=True)


def _credentials(home: Path) -> Credentials:
    """The home's token and password service (argon2 is imported here: the ``api`` extra)."""
    from fundtrail.api.auth import Credentials

    return Credentials(home)


@app.command("create")
@handle_errors
def create(username: Annotated[str, typer.Argument(help="The user the token is for.")],
           name: Annotated[str, typer.Option("--name", "-n", help="What the token is for.")] = "api",
           days: Annotated[int, typer.Option("--days", min=1, max=366, help="Days until it expires.")] = 90,
           home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Make an API token for a user; it is printed once, keep it safe."""
    with _credentials(home) as credentials:
        token, info = credentials.issue(username, name=name, lifetime=timedelta(days=days))
    if fmt is OutputFormat.JSON:
        print_json({"token": token, **info})
        return
    console.print(f"token {info['id']} for {username} ({name}), expires {info['expires_at']}:")
    sys.stdout.write(token + "\n")
    err_console.print("It is shown only now: FundTrail keeps only its hash. Send it as "
                      "'Authorization: Bearer <token>'.", markup=False)


@app.command("list")
@handle_errors
def list_(user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's tokens.")] = None,
          home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Tokens and sessions (never their secrets)."""
    with _credentials(home) as credentials:
        items, total = credentials.list_tokens(user)
    if fmt is OutputFormat.JSON:
        print_json({"tokens": items, "total": total})
        return
    table = Table("id", "user", "kind", "name", "starts with", "expires", "last used", "active")
    for t in items:
        table.add_row(t["id"], t["username"], t["kind"], t["name"], t["prefix"] + "…", t["expires_at"] or "-",
                      t["last_used_at"] or "-", "yes" if t["active"] else "no")
    console.print(table)


@app.command("revoke")
@handle_errors
def revoke(token_id: Annotated[str, typer.Argument(help="The token's id (see `fundtrail token list`).")],
           home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Revoke a token: it stops working at once, also in a server running on this home."""
    with _credentials(home) as credentials:
        info = credentials.revoke(token_id)
    if fmt is OutputFormat.JSON:
        print_json(info)
        return
    console.print(f"token {info['id']} of {info['username']} revoked")


@app.command("password")
@handle_errors
def password(username: Annotated[str, typer.Argument(help="The user whose password to set.")],
             stdin: Annotated[bool, typer.Option("--password-stdin",
                                                 help="Read the password from standard input.")] = False,
             home: HomeOpt = DEFAULT_HOME) -> None:
    """Set a user's password for signing in to the dashboard (at least 12 characters)."""
    if stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    if not secret:
        raise InputError("the password is empty")
    with _credentials(home) as credentials:
        credentials.set_password(username, secret)
    console.print(f"password of {username} set")


def register(root: typer.Typer) -> None:
    """Add ``token`` to the root application."""
    root.add_typer(app, name="token")
