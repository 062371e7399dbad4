"""``fundtrail db``: the case database: run its migrations, show its revision, set the agency."""

from __future__ import annotations

from typing import Annotated

import typer

from fundtrail.cli.case import AsOpt, emit
from fundtrail.cli.common import DEFAULT_HOME, FormatOpt, HomeOpt, OutputFormat, handle_errors
from fundtrail.errors import SourceUnavailableError

app = typer.Typer(
    help="The case database (HOME/cases.sqlite or $FUNDTRAIL_DATABASE_URL).", no_args_is_help=True
)


@app.command("upgrade")
@handle_errors
def upgrade_(
    revision: Annotated[str, typer.Option("--revision", help="Target revision.")] = "head",
    home: HomeOpt = DEFAULT_HOME,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Create or upgrade the case database by running its migrations."""
    from sqlalchemy.exc import OperationalError

    from fundtrail.cases.db import database_url, make_engine, redact, upgrade

    url = database_url(home)
    engine = make_engine(url)
    try:
        before, after = upgrade(engine, revision)
    except OperationalError as error:
        raise SourceUnavailableError(redact(url), f"cannot open the case database: {error.orig}") from None
    finally:
        engine.dispose()
    emit(
        fmt,
        {"database": redact(url), "from": before, "to": after},
        f"case database {redact(url)}: {before or 'empty'} -> {after}",
    )


@app.command("current")
@handle_errors
def current(home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """The revision the case database is at, and the one this version needs."""
    from fundtrail.cases.db import current_revision, database_url, head_revision, make_engine, redact

    url = database_url(home)
    engine = make_engine(url)
    try:
        rev = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    emit(
        fmt,
        {"database": redact(url), "revision": rev, "head": head, "up_to_date": rev == head},
        f"case database {redact(url)}: revision {rev or 'none'} (this version needs {head})",
    )


@app.command("agency")
@handle_errors
def agency_(
    name: Annotated[str | None, typer.Option("--name", help="The agency's name.")] = None,
    jurisdiction: Annotated[str | None, typer.Option("--jurisdiction", help="ISO country code.")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Postal address.")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    phone: Annotated[str | None, typer.Option("--phone")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Show or set the agency (the requesting authority on letters; admins, or anyone on a new database)."""
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.users import agency, agency_doc, set_agency

    changing = any(v is not None for v in (name, jurisdiction, address, email, phone))
    with open_operation(home, as_, user_required=False) as ctx:
        if changing:
            doc = agency_doc(
                set_agency(
                    ctx, name=name, jurisdiction=jurisdiction, address=address, email=email, phone=phone
                )
            )
        else:
            doc = agency_doc(agency(ctx))
    emit(
        fmt,
        doc,
        "agency not set (fundtrail db agency --name ... --jurisdiction ...)"
        if doc is None
        else f"{doc['name']} ({doc['jurisdiction']})" + (f", {doc['address']}" if doc["address"] else ""),
    )


def register(root: typer.Typer) -> None:
    """Add ``db`` to the root application."""
    root.add_typer(app, name="db")
