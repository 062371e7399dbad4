"""``fundtrail user``: the agency's users and their roles (the first user is an admin, added without --as)."""

from __future__ import annotations

from typing import Annotated

import typer

from fundtrail.cli.case import AsOpt, emit
from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    Table,
    console,
    handle_errors,
    print_json,
)

app = typer.Typer(help="Users: username, name, role, unit, jurisdiction.", no_args_is_help=True)


@app.command("add")
@handle_errors
def add(
    username: Annotated[str, typer.Argument(help="Login name (a-z, 0-9, . _ -).")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    role: Annotated[
        str, typer.Option("--role", help="analyst, investigator, supervisor, auditor, liaison or admin.")
    ],
    unit: Annotated[str, typer.Option("--unit", help="Unit in the agency.")],
    jurisdiction: Annotated[str, typer.Option("--jurisdiction", help="ISO country code, e.g. EE.")],
    email: Annotated[str | None, typer.Option("--email")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Add a user (admins; the first user of a new database must be an admin and needs no --as)."""
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.users import add_user, user_doc

    with open_operation(home, as_, user_required=False) as ctx:
        doc = user_doc(add_user(ctx, username, name, role, unit, jurisdiction, email))
    emit(
        fmt,
        doc,
        f"user {doc['username']} ({doc['role']}) added; act as them with --as {doc['username']} "
        f"or FUNDTRAIL_USER={doc['username']}",
    )


@app.command("list")
@handle_errors
def list_(home: HomeOpt = DEFAULT_HOME, as_: AsOpt = None, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Every user and their role."""
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.users import list_users, user_doc

    with open_operation(home, as_) as ctx:
        docs = [user_doc(u) for u in list_users(ctx)]
    if fmt is OutputFormat.JSON:
        print_json(docs)
        return
    table = Table("username", "name", "role", "unit", "jurisdiction")
    for d in docs:
        table.add_row(d["username"], d["display_name"], d["role"], d["unit"], d["jurisdiction"])
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``user`` to the root application."""
    root.add_typer(app, name="user")
