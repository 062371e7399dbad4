"""``fundtrail case``: open, list, show, edit, assign, subjects, tasks, preserve evidence, hold, close.

Every command runs as a user of the case database (``--as USER`` or ``$FUNDTRAIL_USER``) in one
transaction: it is written whole, with its audit record, or not at all.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    Table,
    amount_text,
    console,
    handle_errors,
    print_json,
)
from fundtrail.cli.trace import (
    DEFAULT_HUB_DEGREE,
    DEFAULT_MAX_HOPS,
    DEFAULT_MAX_STEPS,
    AssetOpt,
    ChangeOpt,
    DirectionOpt,
    HubOpt,
    MaxHopsOpt,
    MaxStepsOpt,
    MinValueOpt,
    PolicyOpt,
    ServicesOpt,
    SinceOpt,
    UntilOpt,
    parse_time,
)
from fundtrail.domain.taint import Direction, TaintPolicy
from fundtrail.errors import InputError

app = typer.Typer(help="Cases: subjects, tasks, evidence, legal hold.", no_args_is_help=True)

AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        envvar="FUNDTRAIL_USER",
        show_default=False,
        help="Act as this user (default $FUNDTRAIL_USER).",
    ),
]
CaseArg = Annotated[str, typer.Argument(help="Case number, e.g. EE-2026-0001.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (recorded in the audit log).")]


def emit(fmt: OutputFormat, document: Any, human: str | None = None) -> None:
    """Print ``document`` as JSON, or the human line(s)."""
    if fmt is OutputFormat.JSON:
        print_json(document)
    elif human is not None:
        console.print(human, markup=False, highlight=False, soft_wrap=True)


def parse_date(text: str | None, option: str) -> date | None:
    """An ISO date from an option; InputError naming the option otherwise."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not a date (YYYY-MM-DD)") from None


@app.command("open")
@handle_errors
def open_(
    title: Annotated[str, typer.Option("--title", help="What the case is about.")],
    severity: Annotated[str, typer.Option("--severity", help="low, medium, high or critical.")] = "medium",
    offence: Annotated[str | None, typer.Option("--offence", help="The offence investigated.")] = None,
    summary: Annotated[str | None, typer.Option("--summary", help="Summary of the facts.")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="Unit in charge (default yours).")] = None,
    jurisdiction: Annotated[
        str | None, typer.Option("--jurisdiction", help="ISO country code (default yours).")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Open a case (numbered JURISDICTION-YEAR-NNNN); you become its lead."""
    from fundtrail.cases import cases as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        case = service.open_case(
            ctx,
            title,
            severity=severity,
            offence=offence,
            summary=summary,
            unit=unit,
            jurisdiction=jurisdiction,
        )
        doc = service.case_summary(case)
    emit(fmt, doc, f"opened case {doc['number']}: {doc['title']}")


@app.command("list")
@handle_errors
def list_(
    status: Annotated[str | None, typer.Option("--status", help="Only cases in this status.")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """The cases within your reach, newest first."""
    from fundtrail.cases import cases as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        docs = [service.case_summary(c) for c in service.list_cases(ctx, status=status)]
    if fmt is OutputFormat.JSON:
        print_json(docs)
        return
    table = Table("number", "title", "status", "severity", "unit", "hold", whole=("number",))
    for d in docs:
        table.add_row(
            d["number"], d["title"], d["status"], d["severity"], d["unit"], "yes" if d["legal_hold"] else ""
        )
    console.print(table)


@app.command("show")
@handle_errors
def show(
    number: CaseArg,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """A case with its people, subjects, tasks, evidence, requests and ledger."""
    from fundtrail.cases import cases as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        doc = service.case_doc(ctx, service.show_case(ctx, number, reason=reason))
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    console.print(
        f"[bold]{doc['number']}[/] {doc['title']}  ({doc['status']}, {doc['severity']}, "
        f"version {doc['version']})",
        highlight=False,
    )
    console.print(f"{doc['lead_agency']} / {doc['unit']} / {doc['jurisdiction']}", markup=False)
    if doc["hold"]:
        console.print(f"legal hold: {doc['hold']['reason']}", markup=False)
    console.print(
        "assignees: " + ", ".join(f"{a['display_name']} ({a['role']})" for a in doc["assignees"]),
        markup=False,
    )
    if doc["subjects"]:
        table = Table("id", "kind", "chain", "value", "label", "role", "evidence", title="subjects",
                      whole=("evidence",))
        for s in doc["subjects"]:
            table.add_row(
                str(s["id"]),
                s["kind"],
                s["chain"] or "",
                s["value"],
                s["label"] or "",
                s["role"] or "",
                s["evidence"] or "",
            )
        console.print(table)
    for t in doc["tasks"]:
        console.print(f"task {t['id']}: {t['title']} (due {t['due'] or '-'}, {t['status']})", markup=False)
    for e in doc["evidence"]:
        console.print(f"evidence {e['id']}: {e['title']}", markup=False)
    for r in doc["requests"]:
        console.print(f"request {r['number']}: {r['type']} to {r['recipient']} ({r['state']})", markup=False)
    for e in doc["ledger"]:
        console.print(
            f"ledger {e['id']}: {e['kind']} {amount_text(e['amount'], e['chain'], e['asset'])} "
            f"on {e['chain']}"
            f"{'' if e['asset'] == 'native' else ' token ' + e['asset']} ({e['jurisdiction']})",
            markup=False,
        )


@app.command("edit")
@handle_errors
def edit(
    number: CaseArg,
    version: Annotated[
        int | None,
        typer.Option("--version", help="Fail unless the case is at this version (someone else's edit)."),
    ] = None,
    title: Annotated[str | None, typer.Option("--title")] = None,
    severity: Annotated[str | None, typer.Option("--severity")] = None,
    offence: Annotated[str | None, typer.Option("--offence")] = None,
    summary: Annotated[str | None, typer.Option("--summary")] = None,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Edit a case's title, severity, offence or summary."""
    from fundtrail.cases import cases as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        case = service.update_case(
            ctx,
            number,
            expected_version=version,
            title=title,
            severity=severity,
            offence=offence,
            summary=summary,
            reason=reason,
        )
        doc = service.case_summary(case)
    emit(fmt, doc, f"case {doc['number']} is now at version {doc['version']}")


@app.command("assign")
@handle_errors
def assign(
    number: CaseArg,
    username: Annotated[str, typer.Argument(help="The user to assign.")],
    role: Annotated[str, typer.Option("--role", help="lead or member.")] = "member",
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Assign a user to a case (supervisors)."""
    from fundtrail.cases import cases as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        a = service.assign(ctx, number, username, role=role, reason=reason)
        doc = {"case": a.case.number, "user": a.user.username, "role": a.role}
    emit(fmt, doc, f"{doc['user']} assigned to {doc['case']} as {doc['role']}")


@app.command("add-subject")
@handle_errors
def add_subject(
    number: CaseArg,
    value: Annotated[str, typer.Argument(help="Address, txid, name or account id.")],
    kind: Annotated[
        str, typer.Option("--kind", help="address, transaction, person, company or exchange_account.")
    ] = "address",
    chain: Annotated[
        str | None, typer.Option("--chain", "-c", help="Chain of an address or transaction.")
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="Who it is (e.g. the exchange).")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Its role (victim, suspect ...).")] = None,
    amount: Annotated[str | None, typer.Option("--amount", help="Amount in base units.")] = None,
    asset: Annotated[str | None, typer.Option("--asset", help="native or a token contract.")] = None,
    evidence: Annotated[str | None, typer.Option("--evidence", help="Evidence that found it.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="How it was found.")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Add a subject; says which other cases already hold it (deconfliction), without blocking."""
    from fundtrail.cases import cases as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        subject, others = service.add_subject(
            ctx,
            number,
            kind,
            value,
            chain=chain,
            label=label,
            role=role,
            amount=amount,
            asset=asset,
            evidence_id=evidence,
            source=source,
        )
        doc: dict[str, Any] = {
            "case": subject.case.number,
            "subject": service.subject_doc(subject),
            "deconfliction": [d.to_dict() for d in others],
        }
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    console.print(f"subject {doc['subject']['id']} added to {doc['case']}", markup=False)
    for d in others:
        console.print(f"deconfliction: {d}", style="yellow", markup=False, highlight=False)


@app.command("add-task")
@handle_errors
def add_task(
    number: CaseArg,
    title: Annotated[str, typer.Argument(help="What to do.")],
    due: Annotated[str | None, typer.Option("--due", help="Due date, YYYY-MM-DD.")] = None,
    assignee: Annotated[str | None, typer.Option("--assignee", help="Who does it.")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Add a task to a case, with a due date."""
    from fundtrail.cases import cases as service
    from fundtrail.cases.context import open_operation

    due_date = parse_date(due, "--due")
    with open_operation(home, as_) as ctx:
        task = service.add_task(ctx, number, title, due=due_date, assignee=assignee)
        doc = {
            "case": task.case.number,
            "id": task.id,
            "title": task.title,
            "due": task.due_date,
            "assignee": assignee,
        }
    emit(fmt, doc, f"task {doc['id']} added to {doc['case']}")


@app.command("preserve")
@handle_errors
def preserve(
    number: CaseArg,
    seeds: Annotated[
        list[str] | None,
        typer.Option("--trace-seed", help="Trace from this seed (address, txid or txid:n); repeatable."),
    ] = None,
    trace_file: Annotated[
        Path | None, typer.Option("--trace-file", help="A trace document (fundtrail trace --format json).")
    ] = None,
    chain: Annotated[str, typer.Option("--chain", "-c", help="Chain of the seeds.")] = "btc",
    policy: PolicyOpt = TaintPolicy.HAIRCUT,
    direction: DirectionOpt = Direction.FORWARD,
    max_hops: MaxHopsOpt = DEFAULT_MAX_HOPS,
    max_steps: MaxStepsOpt = DEFAULT_MAX_STEPS,
    min_value: MinValueOpt = 0,
    since: SinceOpt = None,
    until: UntilOpt = None,
    asset: AssetOpt = None,
    stop_at_services: ServicesOpt = True,
    hub_degree: HubOpt = DEFAULT_HUB_DEGREE,
    follow_change: ChangeOpt = True,
    title: Annotated[str | None, typer.Option("--title", help="Title of the evidence item.")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    add_subjects: Annotated[
        bool,
        typer.Option(
            "--add-subjects/--no-add-subjects", help="Add the seeds and endpoints as subjects linked to it."
        ),
    ] = True,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Freeze a trace (flows, raw chain records, tags, parameters) into signed, immutable evidence."""
    from fundtrail.analysis.tracing.params import TraceParams
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.evidence import evidence_doc, load_trace_file, preserve_trace, run_trace
    from fundtrail.store import ChainStore

    params = TraceParams(direction=direction, policy=policy, max_hops=max_hops, max_steps=max_steps,
                         min_value=min_value, since=parse_time(since, "--since"),
                         until=parse_time(until, "--until"), asset=asset, stop_at_services=stop_at_services,
                         hub_degree=hub_degree, follow_change=follow_change)
    if bool(seeds) == (trace_file is not None):
        raise InputError("give either --trace-seed (one or more) or --trace-file")
    with ChainStore.open_home(home, read_only=True) as store:
        if trace_file is not None:
            trace = load_trace_file(trace_file)
        else:
            trace = run_trace(store, chain, list(seeds or []), params)
        with open_operation(home, as_) as ctx:
            result = preserve_trace(
                ctx,
                number,
                trace,
                store,
                title=title,
                description=description,
                reason=reason or "preserve the trace as evidence",
                add_subjects=add_subjects,
            )
            doc = evidence_doc(result.item)
            doc["subjects_added"] = result.subjects
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    console.print(
        f"preserved {doc['id']} ({len(doc['files'])} files) under {home / doc['path']}", markup=False
    )
    console.print(
        f"tag manifest sha256 {doc['tagmanifest_sha256']}, signed by key {doc['signature']['key_id']}",
        markup=False,
    )
    for s in result.subjects:
        console.print(f"subject {s['subject']}: {s['address']} ({s['role']})", markup=False)
        for d in s["deconfliction"]:
            console.print(
                f"  deconfliction: case {d['case']} holds it: contact {d['contact']['name']} "
                f"({d['contact']['unit']})",
                style="yellow",
                markup=False,
                highlight=False,
            )


@app.command("hold")
@handle_errors
def hold(
    number: CaseArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. pending appeal).")],
    release: Annotated[bool, typer.Option("--release", help="Release the hold instead.")] = False,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Put a case on legal hold (retention deletes nothing of it), or --release it."""
    from fundtrail.cases import cases as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        case = service.set_hold(ctx, number, reason=reason, hold=not release)
        doc = service.case_summary(case)
    emit(fmt, doc, f"case {doc['number']}: legal hold {'on' if doc['legal_hold'] else 'released'}")


@app.command("status")
@handle_errors
def status(
    number: CaseArg,
    to: Annotated[str, typer.Argument(help="open, active, suspended or closed.")],
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Move a case to another status."""
    from fundtrail.cases import cases as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        doc = service.case_summary(service.set_status(ctx, number, to, reason=reason))
    emit(fmt, doc, f"case {doc['number']} is {doc['status']}")


@app.command("close")
@handle_errors
def close(
    number: CaseArg,
    reason: Annotated[str, typer.Option("--reason", help="Why the case is closed.")],
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Close a case (supervisors); its retention periods start now."""
    from fundtrail.cases import cases as service
    from fundtrail.cases.context import open_operation

    with open_operation(home, as_) as ctx:
        doc = service.case_summary(service.set_status(ctx, number, "closed", reason=reason))
    emit(fmt, doc, f"case {doc['number']} closed")


def register(root: typer.Typer) -> None:
    """Add ``case`` to the root application."""
    root.add_typer(app, name="case")
