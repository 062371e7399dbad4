"""``fundtrail audit``: verify the transparency log (read-only), keep heads, export it, have it witnessed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

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
from fundtrail.errors import InputError

if TYPE_CHECKING:
    from fundtrail.audit.verifier import SignedHead

app = typer.Typer(
    help="The audit log: a signed Merkle transparency log of every read and write.", no_args_is_help=True
)

HeadOpt = Annotated[
    list[Path] | None,
    typer.Option("--head", help="A signed tree head you kept (`audit head --format json`); repeatable."),
]
KeyOpt = Annotated[
    list[str] | None,
    typer.Option("--public-key", help="Also trust this agency public key (base64); repeatable."),
]


def _kept(paths: list[Path] | None) -> list[tuple[str, SignedHead]]:
    from fundtrail.audit import log as audit_log

    return [(str(p), audit_log.load_kept_head(p)) for p in paths or []]


@app.command("verify")
@handle_errors
def verify(
    head: HeadOpt = None,
    public_key: KeyOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Check every record, every signed tree head, their consistency, kept and witnessed heads. Reads only.

    Heads count only when signed by a key pinned in the home (never one listed in the database). Exit 0
    when intact; exit 1 naming the first bad record or the first kept head the log no longer extends.
    """
    from fundtrail.audit import log as audit_log
    from fundtrail.audit import trust
    from fundtrail.cases.db import CaseDB

    kept = _kept(head)
    keys = trust.load(home, public_key or [])
    db = CaseDB.open_read_only(home)
    try:
        with db.reading() as session:
            result = audit_log.verify(session, keys, kept=kept, home=home)
    finally:
        db.close()
    if fmt is OutputFormat.JSON:
        print_json(result.to_dict())
    elif result.intact:
        newest = result.newest
        witnessed = result.newest_witnessed
        console.print(
            f"audit log intact: {result.records} records, {result.heads} signed tree heads verified, "
            f"root {result.root_hash[:16]}..." + (f", newest head {newest.timestamp}" if newest else ""),
            markup=False,
        )
        for name, h, _ in result.kept:
            console.print(f"  extends {name}: head of {h.tree_size} records ({h.timestamp})", markup=False)
        if witnessed is not None:
            console.print(
                f"  newest witnessed head: {witnessed.head.tree_size} records, countersigned by "
                f"{witnessed.witness} at {witnessed.witnessed_at}",
                markup=False,
            )
    if not result.intact:
        first = result.first_bad
        err_console.print(f"error: audit log broken: {first}", markup=False, highlight=False, soft_wrap=True)
        for p in result.problems[1:6]:
            err_console.print(f"  also {p}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command("head")
@handle_errors
def head_(home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """The newest signed tree head, for an auditor to keep (`--format json > head.json`). Reads only."""
    from fundtrail.audit import log as audit_log
    from fundtrail.audit import trust
    from fundtrail.cases.db import CaseDB

    db = CaseDB.open_read_only(home)
    try:
        with db.reading() as session:
            newest = audit_log.newest_head(session)
    finally:
        db.close()
    if newest is None:
        raise InputError("the audit log has no signed tree head yet")
    keys = trust.owned_by(trust.load(home), trust.AGENCY)
    signer = next((k for k in keys if k.key_id == newest.key_id), None)
    if fmt is OutputFormat.JSON:
        print_json(newest.to_dict())
        return
    console.print(
        f"tree size   {newest.tree_size}\nroot hash   {newest.root_hash}\ntimestamp   {newest.timestamp}\n"
        f"key id      {newest.key_id}"
        + (
            f"\nfingerprint {signer.fingerprint}" if signer else "\nfingerprint (key not pinned in this home)"
        ),
        markup=False,
    )


@app.command("export")
@handle_errors
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the export (JSON).")],
    head: HeadOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """The whole log, its signed heads, witness cosignatures and consistency proofs, for an auditor.

    The auditor checks it with the standalone verifier (`python -m fundtrail.audit.verifier`, or the
    file fundtrail/audit/verifier.py alone, with only `cryptography` installed) and the agency's public
    key. The export is itself recorded in the log first (auditors only).
    """
    from fundtrail.audit import log as audit_log
    from fundtrail.audit import trust
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.db import CaseDB

    kept = [h for _, h in _kept(head)]
    if output.is_dir():
        raise InputError(f"{output}: a directory; give a file name")
    with open_operation(home, as_) as ctx:
        ctx.require(Action.READ_AUDIT)
        ctx.audit("audit.export", "audit", details={"output": output.name})
    db = CaseDB.open_read_only(home)
    try:
        with db.reading() as session:
            doc = audit_log.export(session, kept)
    finally:
        db.close()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".part")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    tmp.replace(output)
    own = trust.owned_by(trust.load(home), trust.AGENCY)
    summary = {
        "output": str(output),
        "records": len(doc["records"]),
        "heads": len(doc["heads"]),
        "consistency_proofs": len(doc["consistency"]),
        "cosignatures": len(doc["cosignatures"]),
        "agency_keys": [
            {"key_id": k.key_id, "public_key": k.public_key, "fingerprint": k.fingerprint} for k in own
        ],
    }
    if fmt is OutputFormat.JSON:
        print_json(summary)
        return
    console.print(
        f"wrote {output}: {summary['records']} records, {summary['heads']} signed heads, "
        f"{summary['consistency_proofs']} consistency proofs, {summary['cosignatures']} cosignatures",
        markup=False,
    )
    for k in own:
        console.print(
            f"verify with: python -m fundtrail.audit.verifier {output} --public-key {k.public_key}"
            f"\n  (key {k.key_id}, fingerprint {k.fingerprint})",
            markup=False,
        )


@app.command("witness")
@handle_errors
def witness(
    agreement: Annotated[str, typer.Option("--agreement", help="The partner that countersigns.")],
    home: HomeOpt = DEFAULT_HOME,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Ask a partner to countersign the newest signed tree head (it checks it extends what it saw)."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.witness import request_witness

    with open_operation(home, None, user_required=False) as ctx:
        result = request_witness(ctx, agreement)
    if fmt is OutputFormat.JSON:
        print_json(result)
        return
    console.print(
        f"{agreement} countersigned the head of {result['tree_size']} records "
        f"(root {str(result['root_hash'])[:16]}...) at {result['witnessed_at']}",
        markup=False,
    )


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
    from fundtrail.audit import log as audit_log
    from fundtrail.cases.context import open_operation

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
