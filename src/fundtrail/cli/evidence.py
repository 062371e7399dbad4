"""``fundtrail evidence``: show, verify, retrace, export and amend preserved evidence (custody recorded)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fundtrail.cli.case import AsOpt, emit
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

if TYPE_CHECKING:
    from fundtrail.cases.evidence import EvidenceCheck

app = typer.Typer(help="Evidence: signed BagIt packages and their chain of custody.", no_args_is_help=True)

IdArg = Annotated[
    str, typer.Argument(help="Evidence id, e.g. EE-2026-0001-E001-v1 (latest version without -vN).")
]


def _fail(check: EvidenceCheck, fmt: OutputFormat) -> None:
    """Print what differs and exit 1."""
    if fmt is OutputFormat.JSON:
        print_json(check.to_dict())
    err_console.print(f"error: evidence {check.evidence_id} does not verify", markup=False, highlight=False)
    for d in check.files:
        err_console.print(f"  {d}", markup=False, highlight=False, soft_wrap=True)
    for p in check.problems:
        err_console.print(f"  {p}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command("show")
@handle_errors
def show(
    evidence_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why you view it (custody).")] = "review",
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """An evidence item: hashes, signature, parameters and its chain of custody."""
    from fundtrail.cases import evidence as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        doc = service.evidence_doc(service.show_evidence(ctx, evidence_id, reason=reason))
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    console.print(f"[bold]{doc['id']}[/] {doc['title']} (case {doc['case']})", highlight=False)
    console.print(
        f"package {home / doc['path']}; tag manifest sha256 {doc['tagmanifest_sha256']}; trace sha256 "
        f"{doc['trace_sha256']}; signed by key {doc['signature']['key_id']}",
        markup=False,
    )
    table = Table("event", "by", "at", "reason", title="chain of custody")
    for c in doc["custody"]:
        table.add_row(c["event"], c["actor"], str(c["at"]), c["reason"])
    console.print(table)


PublicKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--public-key",
        help="Also trust this Ed25519 public key (base64), after confirming its fingerprint with its "
        "owner; repeatable. The home's own key and pinned partner keys are trusted already.",
    ),
]


@app.command("verify")
@handle_errors
def verify(
    evidence_id: IdArg,
    public_key: PublicKeyOpt = None,
    reason: Annotated[
        str | None, typer.Option("--reason", hidden=True, help="Ignored: verification records nothing.")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Check file hashes, the signature (trusted keys only) and the creation record in the signed audit
    log; exit 1 saying what differs. Reads only: not audited, no custody event.

    Only reads: no custody event, no audit record, no signature, no key is made; the case database is
    opened read-only. This is the one read of case data that is not audited (a check that wrote would
    change what it checks).
    """
    from fundtrail.cases import evidence as service
    from fundtrail.cases.context import open_reading

    del reason
    with open_reading(home, as_) as ctx:
        check = service.verify_evidence(ctx, evidence_id, public_keys=public_key or [])
    if not check.ok:
        _fail(check, fmt)
    signer = check.signer
    emit(
        fmt,
        check.to_dict(),
        f"evidence {check.evidence_id}: intact (file hashes, signature by "
        f"{signer.owner if signer else '?'} key {signer.fingerprint if signer else '?'}, "
        f"creation record in the signed audit log)",
    )


@app.command("retrace")
@handle_errors
def retrace(
    evidence_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (custody).")] = "reproduce the trace",
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Re-run the preserved trace on the chain store; exit 1 unless it reproduces the preserved one."""
    from fundtrail.cases import evidence as service
    from fundtrail.cases.context import open_operation
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home, read_only=True) as store, open_operation(home, as_) as ctx:
        result = service.retrace(ctx, evidence_id, store, reason=reason)
    if fmt is OutputFormat.JSON:
        print_json(result.to_dict())
    elif result.reproduced:
        console.print(
            f"evidence {result.evidence_id}: trace reproduced exactly (sha256 {result.actual_sha256})",
            markup=False,
        )
    if not result.reproduced:
        err_console.print(
            f"error: evidence {result.evidence_id}: the trace does not reproduce: sha256 expected "
            f"{result.expected_sha256}, actual {result.actual_sha256}; differences "
            f"{result.differences}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


@app.command("export")
@handle_errors
def export(
    evidence_id: IdArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to export into.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (custody).")],
    to: Annotated[str | None, typer.Option("--to", help="Recipient: makes it a transfer of custody.")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Copy the package and its signature (OUT/<id>/, OUT/<id>.signature.json); verified first."""
    from fundtrail.cases import evidence as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        path = service.export_evidence(ctx, evidence_id, out, reason=reason, recipient=to)
    emit(
        fmt,
        {
            "evidence": path.name,
            "path": str(path),
            "signature": str(path.parent / f"{path.name}.signature.json"),
        },
        f"exported {path.name} to {path}",
    )


@app.command("verify-package")
@handle_errors
def verify_package(
    folder: Annotated[Path, typer.Argument(help="An exported package folder.")],
    public_key: PublicKeyOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Verify an exported package (BagIt hashes, no unlisted file, the signature file beside it).

    The signature must be by a key this home trusts (its own, a pinned partner's) or one given with
    --public-key; the public key written in the package's signature file is never trusted by itself.
    Reads only; the home's case database is not opened.
    """
    from fundtrail.cases import evidence as service

    check = service.verify_package(folder, keys=service.trusted_keys(home, public_key or []))
    if not check.ok:
        _fail(check, fmt)
    signer = check.signer
    emit(
        fmt,
        check.to_dict(),
        f"package {folder}: intact (BagIt hashes; signature by {signer.owner if signer else '?'} key "
        f"{signer.fingerprint if signer else '?'})",
    )


@app.command("amend")
@handle_errors
def amend(
    evidence_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it changes.")],
    title: Annotated[str | None, typer.Option("--title")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Make a new version with changed title/description; the old version stays untouched."""
    from fundtrail.cases import evidence as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        doc = service.evidence_doc(
            service.new_version(ctx, evidence_id, reason=reason, title=title, description=description)
        )
    emit(fmt, doc, f"new version {doc['id']} supersedes {doc['supersedes']}")


def register(root: typer.Typer) -> None:
    """Add ``evidence`` to the root application."""
    root.add_typer(app, name="evidence")
