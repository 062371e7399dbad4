"""``fundtrail audit``: verify the hash-chained audit log (exit 1 naming the first bad record), read it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from fundtrail.audit import log as audit_log
from fundtrail.cases.context import open_operation
from fundtrail.cli.case import AsOpt
from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    console,
    err_console,
    handle_errors,
    print_json,
)
from fundtrail.domain.cases import Action

app = typer.Typer(help="The append-only, hash-chained, signed audit log.", no_args_is_help=True)


@app.command("verify")
@handle_errors
def verify(home: HomeOpt = DEFAULT_HOME, as_: AsOpt = None, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Check every record, the chain head and the signed checkpoints; sign the head when intact.

    Exit 0 when intact; exit 1 naming the first bad record when anything was edited, removed, inserted
    or reordered.
    """
    with open_operation(home, as_, user_required=False) as ctx:
        result = audit_log.verify(ctx.session, ctx.key)
        signed = audit_log.checkpoint(ctx.session, ctx.key) if result.intact and result.records else None
    doc = result.to_dict()
    doc["signed_checkpoint"] = None if signed is None else {"seq": signed.seq, "key_id": signed.key_id}
    if fmt is OutputFormat.JSON:
        print_json(doc)
    elif result.intact:
        note = f"; head signed (checkpoint at record {signed.seq})" if signed else ""
        console.print(
            f"audit log intact: {result.records} records, head {result.head_hash[:16]}... at record "
            f"{result.head_seq}, {result.checkpoints} signed checkpoints verified{note}",
            markup=False,
        )
    if not result.intact:
        first = result.first_bad
        err_console.print(
            f"error: audit log broken at record {first.seq if first else '?'}: "
            f"{first.problem if first else ''}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        for p in result.problems[1:6]:
            err_console.print(f"  also {p}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command("log")
@handle_errors
def log_(
    case: Annotated[str | None, typer.Option("--case", help="Only records of this case.")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only records of this user.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="The last N records.")] = 50,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """The last records of the audit log (auditors)."""
    with open_operation(home, as_) as ctx:
        ctx.require(Action.READ_AUDIT)
        rows = audit_log.records(ctx.session, case_number=case, actor=actor, limit=limit)
        ctx.audit("audit.read", "audit", details={"case": case, "actor": actor, "limit": limit})
    if fmt is OutputFormat.JSON:
        print_json([r.to_dict() for r in rows])
        return
    table = Table("seq", "at", "actor", "action", "object", "case", "reason")
    for r in rows:
        table.add_row(
            str(r.seq),
            r.at,
            r.actor,
            r.action,
            f"{r.object_type} {r.object_id or ''}".strip(),
            r.case_number or "",
            r.reason or "",
        )
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``audit`` to the root application."""
    root.add_typer(app, name="audit")
