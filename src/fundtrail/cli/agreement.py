"""``fundtrail agreement``: sharing agreements with partner agencies (create, list, show, pin, revoke)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer
from rich.table import Table

from fundtrail.cli.case import AsOpt, ReasonOpt, emit, parse_date
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
from fundtrail.domain.sharing import DataCategory, Pap, Tlp
from fundtrail.errors import InputError

app = typer.Typer(
    help="Sharing agreements: partner, legal basis, data categories, marking, retention.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Agreement name (lower case, e.g. ee-sc-2026).")]


def _human(doc: dict[str, Any]) -> str:
    p = doc["partner"]
    lines = [
        f"agreement {doc['name']} with {p['name']} ({p['country']})"
        + ("" if doc["active"] else " [revoked]"),
        f"  partner key   {p['key_id']} ({p['public_key']})",
        f"  fingerprint   {p['fingerprint']}"
        + ("" if p.get("pinned", True) else "  NOT PINNED: fundtrail agreement pin " + doc["name"]),
        f"  endpoint      {p['endpoint'] or '-'}",
        f"  legal basis   {doc['legal_basis']}",
        f"  categories    {', '.join(doc['categories'])}",
        f"  marking       TLP:{doc['marking']['tlp'].upper()}, PAP:{doc['marking']['pap'].upper()}",
        f"  personal data {'pseudonymised (keyed HMAC)' if doc['pseudonymise'] else 'in clear'}",
        f"  retention     {doc['retention_days']} days at the receiver",
        f"  onward        {'allowed' if doc['onward_sharing'] else 'not allowed'}",
    ]
    if doc["valid_until"]:
        lines.append(f"  valid until   {doc['valid_until']}")
    if doc["deadlines"]:
        lines.append(
            "  deadlines     " + ", ".join(f"{k} {v} days" for k, v in sorted(doc["deadlines"].items()))
        )
    return "\n".join(lines)


@app.command("create")
@handle_errors
def create(
    name: NameArg,
    partner: Annotated[str, typer.Option("--partner", help="The partner agency's name.")],
    country: Annotated[str, typer.Option("--country", help="The partner's ISO country code, e.g. SC.")],
    public_key: Annotated[
        str,
        typer.Option(
            "--public-key", help="The partner's Ed25519 public key, base64 (`fundtrail agency key` there)."
        ),
    ],
    legal_basis: Annotated[str, typer.Option("--legal-basis", help="The instrument the exchange rests on.")],
    categories: Annotated[
        list[str],
        typer.Option(
            "--categories",
            "-c",
            help="Data categories allowed (repeat or comma-separate): "
            + ", ".join(c.value for c in DataCategory)
            + ".",
        ),
    ],
    tlp: Annotated[
        str, typer.Option("--tlp", help="TLP 2.0: clear, green, amber, amber+strict, red.")
    ] = "amber",
    pap: Annotated[str, typer.Option("--pap", help="PAP: clear, green, amber, red.")] = "amber",
    key_id: Annotated[
        str | None, typer.Option("--key-id", help="The partner's key id, to check the key.")
    ] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="The partner's FundTrail URL.")] = None,
    pseudonymise: Annotated[
        bool,
        typer.Option("--pseudonymise/--no-pseudonymise", help="Pseudonymise personal fields (keyed HMAC)."),
    ] = True,
    retention_days: Annotated[
        int, typer.Option("--retention-days", min=1, help="How long the receiver may keep what it receives.")
    ] = 365,
    onward: Annotated[
        bool,
        typer.Option(
            "--onward-sharing/--no-onward-sharing", help="May the receiver pass it on to third parties."
        ),
    ] = False,
    valid_until: Annotated[str | None, typer.Option("--valid-until", help="Last day (YYYY-MM-DD).")] = None,
    deadline: Annotated[
        list[str] | None,
        typer.Option("--deadline", help="Answer deadline per request type, e.g. freeze=5 (repeat)."),
    ] = None,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Record an agreement with a partner agency (supervisors and admins)."""
    from fundtrail.audit.trust import trust_file
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.agreements import AgreementSpec, agreement_doc, create_agreement, parse_deadlines

    until: date | None = parse_date(valid_until, "--valid-until")
    spec = AgreementSpec(
        name=name,
        partner_name=partner,
        partner_country=country,
        partner_public_key=public_key,
        legal_basis=legal_basis,
        categories=DataCategory.parse_many(categories),
        tlp=Tlp.parse(tlp),
        pap=Pap.parse(pap),
        pseudonymise=pseudonymise,
        retention_days=retention_days,
        onward_sharing=onward,
        partner_endpoint=endpoint,
        partner_key_id=key_id,
        valid_until=until,
        deadlines=parse_deadlines(deadline or []),
    )
    if not spec.categories:
        raise InputError("--categories: name at least one data category")
    with open_operation(home, as_, user_required=False) as ctx:
        doc = agreement_doc(create_agreement(ctx, spec, reason=reason), ctx.home)
    emit(
        fmt,
        doc,
        _human(doc) + f"\npartner key pinned in {trust_file(home)}: compare its fingerprint "
        f"{doc['partner']['fingerprint']} with the partner over another channel",
    )


@app.command("list")
@handle_errors
def list_(home: HomeOpt = DEFAULT_HOME, as_: AsOpt = None, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Every agreement."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.agreements import agreement_doc, list_agreements

    with open_operation(home, as_, user_required=False) as ctx:
        docs = [agreement_doc(a, ctx.home) for a in list_agreements(ctx)]
    if fmt is OutputFormat.JSON:
        print_json(docs)
        return
    table = Table(
        "name", "partner", "country", "key id", "categories", "marking", "retention", "onward", "active"
    )
    for d in docs:
        table.add_row(
            d["name"],
            d["partner"]["name"],
            d["partner"]["country"],
            d["partner"]["key_id"],
            ", ".join(d["categories"]),
            f"TLP:{d['marking']['tlp'].upper()}",
            f"{d['retention_days']} d",
            "yes" if d["onward_sharing"] else "no",
            "yes" if d["active"] else "revoked",
        )
    console.print(table)


@app.command("show")
@handle_errors
def show(
    name: NameArg, home: HomeOpt = DEFAULT_HOME, as_: AsOpt = None, fmt: FormatOpt = OutputFormat.HUMAN
) -> None:
    """One agreement, clause by clause."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.agreements import agreement_doc, get_agreement

    with open_operation(home, as_, user_required=False) as ctx:
        doc = agreement_doc(get_agreement(ctx, name), ctx.home)
    emit(fmt, doc, _human(doc))


@app.command("pin")
@handle_errors
def pin(
    name: NameArg,
    fingerprint: Annotated[
        str | None,
        typer.Option(
            "--fingerprint",
            help="The fingerprint the partner confirmed out of band (SHA256:...); asked for when left out.",
        ),
    ] = None,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Pin the partner key of an agreement recorded before keys were pinned (supervisors and admins).

    Prints the key's fingerprint; pin it only once the partner confirmed that fingerprint over another
    channel (telephone, in person). Until then nothing signed by that key is accepted.
    """
    from fundtrail.audit.trust import fingerprint as fingerprint_of
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.agreements import agreement_doc, get_agreement, pin_agreement_key

    with open_operation(home, as_, user_required=False) as ctx:
        row = get_agreement(ctx, name)
        shown = fingerprint_of(row.partner_public_key)
        if fingerprint is None:
            err_console.print(
                f"agreement {row.name}: partner {row.partner_name}, key {row.partner_key_id}, "
                f"fingerprint {shown}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            if not typer.confirm("Has the partner confirmed this fingerprint?", default=False, err=True):
                raise InputError("not pinned: the partner has not confirmed the fingerprint")
        pinned = pin_agreement_key(ctx, name, fingerprint=fingerprint or shown, reason=reason)
        doc = agreement_doc(row, ctx.home)
    emit(
        fmt,
        {
            "agreement": doc["name"],
            "key_id": pinned.key_id,
            "fingerprint": pinned.fingerprint,
            "pinned_for": pinned.owner,
        },
        f"partner key {pinned.key_id} of agreement {doc['name']} pinned ({pinned.fingerprint}, "
        f"{pinned.owner})",
    )


@app.command("revoke")
@handle_errors
def revoke(
    name: NameArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (audited).")],
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """End an agreement: nothing more is sent or accepted under it."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.agreements import agreement_doc, revoke_agreement

    with open_operation(home, as_, user_required=False) as ctx:
        doc = agreement_doc(revoke_agreement(ctx, name, reason=reason))
    emit(fmt, doc, f"agreement {doc['name']} revoked")


def register(root: typer.Typer) -> None:
    """Add ``agreement`` to the root application."""
    root.add_typer(app, name="agreement")
