"""``fundtrail retention``: delete case records whose retention period ran out (legal holds excepted)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from fundtrail.cli.case import AsOpt, parse_date
from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    Table,
    chain_tables,
    console,
    handle_errors,
    print_json,
)

app = typer.Typer(help="Retention periods and legal holds.", no_args_is_help=True)


@app.command("apply")
@handle_errors
def apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Plan as of this date (with --dry-run).")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Delete what has expired unless on legal hold (admins); each deletion is audited."""
    chain_tables()
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.retention import apply_retention
    from fundtrail.sharing.retention import retention_hook

    day = parse_date(as_of, "--as-of")
    when = datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
    with open_operation(home, as_) as ctx:
        run = apply_retention(ctx, dry_run=dry_run, as_of=when)
        shared, shared_line = retention_hook(ctx, home, dry_run=dry_run, as_of=when)  # partner packages
    if fmt is OutputFormat.JSON:
        print_json({**run.to_dict(), "partner_packages": shared})
        return
    verb = "would delete" if dry_run else "deleted"
    table = Table("record", "id", "case", "expired", title=f"{verb} {len(run.deleted)} records")
    for e in run.deleted:
        table.add_row(e.record_type.value, e.object_id, e.case, e.expired_at.date().isoformat())
    console.print(table)
    if run.held:
        console.print(f"{len(run.held)} expired records kept: their case is on legal hold", markup=False)
    console.print(shared_line, markup=False)


def register(root: typer.Typer) -> None:
    """Add ``retention`` to the root application."""
    root.add_typer(app, name="retention")
