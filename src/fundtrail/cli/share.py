"""``fundtrail share``: exchange case data with partner agencies under sharing agreements.

Packages are signed (Ed25519, the agency key) and marked (TLP 2.0, PAP); imports verify signature,
agreement and schema before storing anything. Transports: files, TAXII 2.1 collections, and direct
signed requests to a partner's FundTrail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fundtrail.cli.case import AsOpt, ReasonOpt, emit
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
from fundtrail.domain.sharing import PackageFormat
from fundtrail.errors import FundTrailError

if TYPE_CHECKING:
    from fundtrail.store import ChainStore

app = typer.Typer(
    help="Share case data with partner agencies (STIX, FtM, TagPacks, BagIt; TAXII; PSI).",
    no_args_is_help=True,
)

CaseArg = Annotated[str, typer.Argument(help="Case number, e.g. EE-2026-0001.")]
AgreementOpt = Annotated[str, typer.Option("--agreement", "-a", help="The sharing agreement to send under.")]


def _store_opener(home: Path) -> Any:
    chain_tables()
    from fundtrail.store import ChainStore

    return lambda: ChainStore.open_home(home)


def _chain_store(home: Path) -> ChainStore | None:
    chain_tables()
    from fundtrail.store import ChainStore

    return ChainStore.open_home(home, read_only=True) if (Path(home) / "chain.duckdb").exists() else None


@app.command("export")
@handle_errors
def export(
    case: CaseArg,
    agreement: AgreementOpt,
    fmt_: Annotated[PackageFormat, typer.Option("--format", help="stix, ftm, tagpack or bagit.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="Where to write the package.")],
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    output: Annotated[OutputFormat, typer.Option("--print", help="human or json.")] = OutputFormat.HUMAN,
) -> None:
    """Export a case as a signed package the agreement allows (refused, naming the clause, otherwise)."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.service import export_case

    store = _chain_store(home)
    try:
        with open_operation(home, as_) as ctx:
            result = export_case(ctx, case, agreement, fmt_, out, store=store, reason=reason)
            doc = result.to_dict()
    finally:
        if store is not None:
            store.close()
    extra = f" (envelope {doc['envelope']})" if doc["envelope"] else ""
    emit(
        output,
        doc,
        f"package {doc['package_id']} for {doc['recipient']['name']} written to {doc['path']}{extra}: "
        f"{doc['format']}, TLP:{doc['marking']['tlp'].upper()}, carries {', '.join(doc['categories'])}",
    )


@app.command("import")
@handle_errors
def import_(
    path: Annotated[
        Path,
        typer.Argument(
            help="The package: a STIX bundle, or a payload with its PATH.envelope.json beside it."
        ),
    ],
    case: Annotated[
        str | None, typer.Option("--case", help="Also add the package's addresses to this case as subjects.")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Verify a package (signature, agreement, schema), then store it; a bad package stores nothing."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.service import import_package, read_package, record_rejection

    received, entered = None, False
    try:
        received = read_package(path)
        with open_operation(home, as_) as ctx:
            entered = True
            result = import_package(ctx, received, store_opener=_store_opener(home), case=case)
            doc = result.to_dict()
    except FundTrailError as error:
        if received is None or entered:  # the package was refused (not the acting user)
            with open_operation(home, as_, user_required=False) as ctx:
                record_rejection(ctx, str(path), error, envelope=received.envelope if received else None)
        raise
    emit(
        fmt,
        doc,
        f"package {doc['package_id']} from {doc['partner']} stored ({doc['objects']} objects, "
        f"{', '.join(doc['categories'])}); kept until {doc['retain_until'][:10]} under {doc['agreement']}",
    )


@app.command("list")
@handle_errors
def list_(
    direction: Annotated[str | None, typer.Option("--direction", help="sent or received.")] = None,
    deleted: Annotated[bool, typer.Option("--deleted", help="Include packages retention deleted.")] = False,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Packages sent and received, with their terms and provenance."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.service import list_packages, package_doc

    with open_operation(home, as_) as ctx:
        docs = [package_doc(p) for p in list_packages(ctx, direction=direction, include_deleted=deleted)]
    if fmt is OutputFormat.JSON:
        print_json(docs)
        return
    table = Table("package", "direction", "partner", "format", "case", "marking", "when", "kept until")
    for d in docs:
        when = d["received_at"] or d["created_at"]
        table.add_row(
            d["package_id"][:8],
            d["direction"],
            d["partner"],
            d["format"],
            d["case"] or "",
            f"TLP:{d['marking']['tlp'].upper()}",
            str(when)[:16],
            str(d["retain_until"])[:10] if d["retain_until"] else "",
        )
    console.print(table)


@app.command("lookup")
@handle_errors
def lookup(
    value: Annotated[str, typer.Argument(help="An address or transaction id.")],
    chain: Annotated[str, typer.Option("--chain", "-c", help="Chain name (btc, eth ...).")],
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """What partners sent about an address or transaction, with its provenance."""
    from fundtrail.cases.context import open_operation
    from fundtrail.domain.addresses import canonical_address
    from fundtrail.errors import InputError
    from fundtrail.sharing.service import find_shared

    try:
        value = canonical_address(chain, value)
    except InputError:
        value = value.strip().lower()
    with open_operation(home, as_) as ctx:
        docs = find_shared(ctx, chain, value)
    if fmt is OutputFormat.JSON:
        print_json(docs)
        return
    if not docs:
        console.print("no partner package mentions it", markup=False)
    for d in docs:
        console.print(
            f"{d['kind']} {d['label'] or ''} from {d['partner']} (package {d['package_id'][:8]}, "
            f"TLP:{d['marking']['tlp'].upper()}, kept until {str(d['retain_until'])[:10]})",
            markup=False,
        )


@app.command("retention")
@handle_errors
def retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Delete received packages whose partner's retention period ended (also run by `retention apply`)."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.retention import apply_retention

    with open_operation(home, as_, user_required=False) as ctx:
        done = apply_retention(ctx, store_opener=_store_opener(home), dry_run=dry_run)
    if fmt is OutputFormat.JSON:
        print_json({"dry_run": dry_run, "packages": done})
        return
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{verb} {len(done)} received packages", markup=False)
    for d in done:
        console.print(
            f"  {d['package_id']} from {d['partner']} (due {str(d['retain_until'])[:10]})", markup=False
        )


TaxiiOpt = Annotated[
    str | None,
    typer.Option(
        "--taxii",
        help="A TAXII 2.1 collection URL (…/collections/<id>/); else this agency's own TAXII outbox.",
    ),
]
TaxiiUserOpt = Annotated[
    str | None,
    typer.Option(
        "--taxii-user",
        envvar="FUNDTRAIL_TAXII_USER",
        help="TAXII user (basic auth); else requests are signed with the agency key.",
    ),
]
TaxiiPasswordOpt = Annotated[
    str | None, typer.Option("--taxii-password", envvar="FUNDTRAIL_TAXII_PASSWORD", help="TAXII password.")
]


def _target(home: Path, url: str, user: str | None, password: str | None) -> Any:
    from fundtrail.audit.keys import load_or_create
    from fundtrail.sharing.taxii import TaxiiTarget

    return TaxiiTarget(url, user, password, None if user else load_or_create(home))


@app.command("publish")
@handle_errors
def publish(
    case: CaseArg,
    agreement: AgreementOpt,
    taxii: TaxiiOpt = None,
    taxii_user: TaxiiUserOpt = None,
    taxii_password: TaxiiPasswordOpt = None,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Publish a case as a signed STIX package: in this agency's TAXII outbox for the partner, and to a TAXII
    collection when --taxii names one (both, or neither: a failed push publishes nothing)."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.service import export_case
    from fundtrail.sharing.taxii import publish as push
    from fundtrail.sharing.taxii_server import OUTBOX_TRANSPORT

    store = _chain_store(home)
    try:
        with open_operation(home, as_) as ctx:
            result = export_case(
                ctx, case, agreement, "stix", None, store=store, reason=reason, transport=OUTBOX_TRANSPORT
            )
            doc = result.to_dict()
            if taxii:
                objects = json.loads(result.path.read_text(encoding="utf-8"))["objects"]
                doc["taxii"] = push(_target(home, taxii, taxii_user, taxii_password), objects).to_dict()
    finally:
        if store is not None:
            store.close()
    where = f" and to {taxii}" if taxii else ""
    emit(
        fmt,
        doc,
        f"package {doc['package_id']} published for {doc['recipient']['name']} in the TAXII outbox{where}",
    )


@app.command("pull")
@handle_errors
def pull(
    taxii: Annotated[str, typer.Option("--taxii", help="The TAXII 2.1 collection URL to pull from.")],
    added_after: Annotated[
        str | None, typer.Option("--added-after", help="Only objects added after this time (ISO 8601, UTC).")
    ] = None,
    taxii_user: TaxiiUserOpt = None,
    taxii_password: TaxiiPasswordOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Pull packages from a TAXII collection; each is verified whole and stored, or rejected (audited)."""
    from fundtrail.sharing.taxii import pull_packages
    from fundtrail.watch.sharing import pull_watches

    result = pull_packages(
        home,
        _target(home, taxii, taxii_user, taxii_password),
        username=as_,
        added_after=added_after,
        store_opener=_store_opener(home),
        also=(pull_watches,),
    )
    doc = result.to_dict()
    emit(
        fmt,
        doc,
        f"{len(doc['imported'])} packages stored, {len(doc['already'])} already here, "
        f"{len(doc['rejected'])} rejected"
        + "".join(f"\n  rejected {r['package_id']}: {r['problem']}" for r in doc["rejected"]),
    )


@app.command("send")
@handle_errors
def send(
    case: CaseArg,
    agreement: AgreementOpt,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Send a case as a signed STIX package straight to the partner's FundTrail (its API)."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.service import send_package

    store = _chain_store(home)
    try:
        with open_operation(home, as_) as ctx:
            doc = send_package(ctx, case, agreement, store=store, reason=reason)
    finally:
        if store is not None:
            store.close()
    emit(
        fmt,
        doc,
        f"package {doc['package_id']} delivered to {doc['recipient']['name']}: stored there with "
        f"{doc['delivered']['objects']} objects",
    )


@app.command("deconflict")
@handle_errors
def deconflict(
    case: CaseArg,
    agreement: AgreementOpt,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Which of the case's addresses does the partner hold in its cases? (private set intersection: only
    the matches are learnt, with whom to call about them)"""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.psi import deconflict as run

    with open_operation(home, as_) as ctx:
        doc = run(ctx, case, agreement)
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    console.print(
        f"{doc['partner']} holds {len(doc['matches'])} of the {doc['asked']} addresses of {doc['case']} "
        f"(it holds {doc['partner_holds']} addresses in its cases)",
        markup=False,
    )
    for m in doc["matches"]:
        for c in m["cases"]:
            contact = c["contact"]
            console.print(
                f"  {m['chain']}:{m['address']}  case {c['case']} ({c['status']}): call "
                f"{contact['name']}, {contact['unit']}, "
                f"{contact.get('email') or contact.get('agency_email')}",
                markup=False,
            )


@app.command("send-request")
@handle_errors
def send_request(
    number: Annotated[str, typer.Argument(help="An approved request, e.g. EE-2026-0001-R01.")],
    agreement: AgreementOpt,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Send an approved legal request to the partner's FundTrail; it is sent only if the partner took it."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.legal_requests import send_request as service

    with open_operation(home, as_) as ctx:
        out = service(ctx, number, agreement, reason=reason)
        doc = {
            "request": number,
            "agreement": out.agreement.name,
            "partner": out.agreement.partner_name,
            "partner_number": out.remote_number,
            "sent_at": out.sent_at,
        }
    emit(fmt, doc, f"request {number} sent to {doc['partner']} (their inbox number {doc['partner_number']})")


@app.command("inbox")
@handle_errors
def inbox(
    state: Annotated[
        str | None, typer.Option("--state", help="received, acknowledged, answered, refused.")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Requests received from partners, earliest deadline first."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.legal_requests import inbox_doc, list_inbox

    with open_operation(home, as_) as ctx:
        docs = [inbox_doc(p) for p in list_inbox(ctx, state=state)]
    if fmt is OutputFormat.JSON:
        print_json(docs)
        return
    table = Table("number", "type", "from", "their number", "state", "due", "subjects")
    for d in docs:
        table.add_row(
            d["number"],
            d["type"],
            d["partner"],
            d["remote_number"],
            d["state"],
            str(d["answer_due"] or ""),
            str(len(d["subjects"])),
        )
    console.print(table)


@app.command("acknowledge")
@handle_errors
def acknowledge(
    number: Annotated[str, typer.Argument(help="Inbox number, e.g. IN-2026-0001.")],
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Acknowledge a partner's request (the partner is told; if it cannot be, nothing changes)."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.legal_requests import acknowledge as service
    from fundtrail.sharing.legal_requests import inbox_doc

    with open_operation(home, as_) as ctx:
        doc = inbox_doc(service(ctx, number, reason=reason))
    emit(fmt, doc, f"{doc['number']} acknowledged; {doc['partner']} was told")


@app.command("answer")
@handle_errors
def answer(
    number: Annotated[str, typer.Argument(help="Inbox number, e.g. IN-2026-0001.")],
    frozen: Annotated[
        list[str] | None,
        typer.Option("--frozen", help="CHAIN:ADDRESS=AMOUNT (base units) frozen, repeat for each."),
    ] = None,
    holder: Annotated[
        str | None,
        typer.Option(
            "--holder", help="The account holder (pseudonymised per the agreement before it leaves)."
        ),
    ] = None,
    account: Annotated[
        str | None, typer.Option("--account", help="The account id (pseudonymised too).")
    ] = None,
    note: Annotated[str, typer.Option("--note", help="What to tell the partner.")] = "",
    refuse: Annotated[bool, typer.Option("--refuse", help="Refuse the request.")] = False,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Answer a partner's request with what was frozen (or refuse it); the partner's case is updated."""
    from fundtrail.cases.context import open_operation
    from fundtrail.errors import InputError
    from fundtrail.sharing.legal_requests import FrozenItem, inbox_doc
    from fundtrail.sharing.legal_requests import answer as service

    items = []
    for text in frozen or []:
        where, sep, amount = text.rpartition("=")
        chain, sep2, address = where.partition(":")
        if not sep or not sep2 or not amount.strip().isdigit():
            raise InputError(f"--frozen {text!r}: expected CHAIN:ADDRESS=AMOUNT (base units)")
        items.append(
            FrozenItem(
                chain=chain.strip(),
                address=address.strip(),
                amount=amount.strip(),
                holder=holder,
                account=account,
            )
        )
    with open_operation(home, as_) as ctx:
        doc = inbox_doc(service(ctx, number, frozen=items, note=note, refuse=refuse, reason=reason))
    emit(fmt, doc, f"{doc['number']} {doc['state']}; {doc['partner']} was told")


@app.command("stix-extensions")
@handle_errors
def stix_extensions() -> None:
    """Print FundTrail's STIX extension definitions (a bundle) for partners' STIX tools."""
    import uuid

    from fundtrail.sharing.stix import extension_definitions

    print_json({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": extension_definitions()})


def register(root: typer.Typer) -> None:
    """Add ``share`` to the root application."""
    root.add_typer(app, name="share")
