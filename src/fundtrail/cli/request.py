"""``fundtrail request``: legal requests (preservation, freeze, disclosure, MLA): draft, approve, send,
record answers, render letters, and list what is due."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fundtrail.cli.case import AsOpt, CaseArg, ReasonOpt, emit
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
from fundtrail.domain.requests import RequestAction

app = typer.Typer(help="Legal requests with deadlines, approvals and letters.", no_args_is_help=True)

NumberArg = Annotated[str, typer.Argument(help="Request number, e.g. EE-2026-0001-R01.")]


@app.command("draft")
@handle_errors
def draft(
    number: CaseArg,
    type_: Annotated[str, typer.Option("--type", help="preservation, freeze, disclosure or mla.")],
    to: Annotated[str, typer.Option("--to", help="Recipient (authority or service provider).")],
    to_jurisdiction: Annotated[str | None, typer.Option("--to-jurisdiction", help="Its country.")] = None,
    contact: Annotated[str | None, typer.Option("--contact", help="Recipient's address or e-mail.")] = None,
    instrument: Annotated[
        str | None,
        typer.Option(
            "--instrument", help="Governing instrument (default per type; see `request instruments`)."
        ),
    ] = None,
    agreement: Annotated[
        str | None, typer.Option("--agreement", help="Agreement overriding deadlines.")
    ] = None,
    language: Annotated[str, typer.Option("--language", help="Letter language (en, fr, es ...).")] = "en",
    subject_matter: Annotated[str | None, typer.Option("--subject-matter")] = None,
    facts: Annotated[
        str | None, typer.Option("--facts", help="Summary of facts (default the case's).")
    ] = None,
    measures: Annotated[
        str | None, typer.Option("--measures", help="Specifics of the measures asked.")
    ] = None,
    evidence: Annotated[
        str | None, typer.Option("--evidence", help="Evidence id behind the request.")
    ] = None,
    subjects: Annotated[
        list[int] | None, typer.Option("--subject", help="Subject id the request is about; repeatable.")
    ] = None,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Draft a request on a case (it then needs a supervisor's approval)."""
    from fundtrail.cases import requests as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        req = service.draft_request(
            ctx,
            number,
            type_,
            to,
            recipient_jurisdiction=to_jurisdiction,
            recipient_contact=contact,
            instrument=instrument,
            agreement=agreement,
            language=language,
            subject_matter=subject_matter,
            facts=facts,
            measures=measures,
            evidence_id=evidence,
            subject_ids=subjects,
            reason=reason,
        )
        doc = service.request_doc(req)
    emit(fmt, doc, f"drafted {doc['number']}: {doc['type']} to {doc['recipient']} ({doc['instrument']})")


def _transition(action: RequestAction):  # type: ignore[no-untyped-def]
    @handle_errors
    def command(
        number: NumberArg,
        reason: ReasonOpt = None,
        outcome: Annotated[str | None, typer.Option("--outcome", help="What the answer said.")] = None,
        home: HomeOpt = DEFAULT_HOME,
        as_: AsOpt = None,
        fmt: FormatOpt = OutputFormat.HUMAN,
    ) -> None:
        from fundtrail.cases import requests as service
        from fundtrail.cases.context import open_operation

        with open_operation(home, as_) as ctx:
            doc = service.request_doc(service.transition(ctx, number, action, reason=reason, outcome=outcome))
        due = f"; answer due {doc['answer_due']}" if doc["answer_due"] else ""
        hold = f"; holds until {doc['hold_until']}" if doc["hold_until"] else ""
        emit(fmt, doc, f"request {doc['number']} is {doc['state']}{due}{hold}")

    command.__doc__ = {
        RequestAction.APPROVE: "Approve a drafted request (a supervisor who is not its author).",
        RequestAction.SEND: "Record that the approved request was sent; its deadlines start.",
        RequestAction.ACKNOWLEDGE: "Record the recipient's acknowledgement (the measure's hold starts).",
        RequestAction.ANSWER: "Record the answer.",
        RequestAction.REFUSE: "Record a refusal.",
        RequestAction.EXPIRE: "Record that the request lapsed without an answer.",
    }[action]
    return command


for _action in RequestAction:
    app.command(_action.value)(_transition(_action))


@app.command("show")
@handle_errors
def show(
    number: NumberArg, home: HomeOpt = DEFAULT_HOME, as_: AsOpt = None, fmt: FormatOpt = OutputFormat.HUMAN
) -> None:
    """A request with its history."""
    from fundtrail.cases import requests as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        doc = service.request_doc(service.show_request(ctx, number))
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    console.print(
        f"[bold]{doc['number']}[/] {doc['type']} to {doc['recipient']}: {doc['state']} ({doc['instrument']})",
        highlight=False,
    )
    for h in doc["history"]:
        console.print(
            f"  {h['at']}: {h['from'] or '-'} -> {h['to']} by {h['by']}"
            + (f" ({h['reason']})" if h["reason"] else ""),
            markup=False,
        )


@app.command("list")
@handle_errors
def list_(
    case: Annotated[str | None, typer.Option("--case", help="Only this case's requests.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="Only requests in this state.")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Requests within your reach."""
    from fundtrail.cases import requests as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        docs = [service.request_doc(r) for r in service.list_requests(ctx, case=case, state=state)]
    if fmt is OutputFormat.JSON:
        print_json(docs)
        return
    table = Table("number", "type", "recipient", "state", "answer due", "holds until",
                  whole=("number", "answer due", "holds until"))
    for d in docs:
        table.add_row(
            d["number"],
            d["type"],
            d["recipient"],
            d["state"],
            str(d["answer_due"] or ""),
            str(d["hold_until"] or ""),
        )
    console.print(table)


@app.command("due")
@handle_errors
def due(
    within: Annotated[int, typer.Option("--within", help="Days ahead that count as due soon.")] = 7,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Overdue and due-soon deadlines: answers owed, holds of preservations and freezes running out."""
    from fundtrail.cases import requests as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        items = [i.to_dict() for i in service.due_requests(ctx, within_days=within)]
    if fmt is OutputFormat.JSON:
        print_json(items)
        return
    if not items:
        console.print(f"nothing overdue or due within {within} days")
        return
    table = Table("due", "status", "request", "deadline", "type", "recipient", "state",
                  whole=("due", "request"))
    for i in items:
        style = "red" if i["status"] == "overdue" else "yellow"
        table.add_row(
            i["due"],
            f"[{style}]{i['status']}[/]",
            i["request"],
            i["deadline"],
            i["type"],
            i["recipient"],
            i["state"],
        )
    console.print(table)


@app.command("render")
@handle_errors
def render(
    number: NumberArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the letters.")],
    language: Annotated[
        str | None, typer.Option("--language", help="Override the request's language.")
    ] = None,
    formats: Annotated[
        list[str] | None, typer.Option("--letter-format", help="docx and/or pdf (default both).")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Render the request's letter: DOCX to edit, PDF to send."""
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.letters import FORMATS, render_letter

    with open_operation(home, as_) as ctx:
        paths = render_letter(ctx, number, out, formats=tuple(formats or FORMATS), language=language)
    emit(fmt, {"request": number, "files": [str(p) for p in paths]}, "\n".join(f"wrote {p}" for p in paths))


@app.command("instruments")
@handle_errors
def instruments(home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """The governing instruments and their time limits (shipped, with HOME/deadlines.yaml over them)."""
    from fundtrail.cases import requests as service
    from fundtrail.cases.letters import languages

    book = service.deadline_book(home)
    docs = [r.to_dict() for r in book.rules.values()]
    if fmt is OutputFormat.JSON:
        print_json(
            {
                "instruments": docs,
                "defaults": {k.value: v for k, v in book.defaults.items()},
                "languages": languages(home),
            }
        )
        return
    table = Table("instrument", "types", "answer", "hold", "renewable")
    for d in docs:
        answer = (
            ""
            if d["answer_days"] is None
            else f"{d['answer_days']} {'business ' if d['business_days'] else ''}days"
        )
        hold = "" if d["hold_days"] is None else f"{d['hold_days']} days"
        table.add_row(d["key"], ", ".join(d["request_types"]), answer, hold, "yes" if d["renewable"] else "")
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``request`` to the root application."""
    root.add_typer(app, name="request")
