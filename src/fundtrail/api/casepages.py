"""Dashboard pages on case data: the case list with deadlines, a case, its audit trail, recovery.

Every page read goes through the case layer's services as the signed-in user, in one audited operation
(``page.<name>``), exactly like the API's reads.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from fundtrail.analysis.flowgraph import flow_graph, hop_profile
from fundtrail.analysis.tracing.params import DEFAULT_MAX_HOPS, MAX_HOPS_LIMIT
from fundtrail.api.access import Action, Principal
from fundtrail.api.deps import CaseAccess, optional_principal
from fundtrail.api.pages import _login_redirect, chain_choices, refusal, render
from fundtrail.api.routers.requests import request_document
from fundtrail.cases import cases as case_service
from fundtrail.cases import ledger as ledger_service
from fundtrail.cases import requests as request_service
from fundtrail.cases.models import Case, EvidenceItem
from fundtrail.domain.chains import CHAINS
from fundtrail.domain.custody import sha256_hex
from fundtrail.errors import FundTrailError, PermissionDeniedError

PAGE_REASON = "viewed in the dashboard"

REQUEST_TYPES = [("freeze", "Freeze"), ("preservation", "Preservation (keep the records)"),
                 ("disclosure", "Disclosure (hand over the records)"), ("mla", "Mutual legal assistance")]
STEP_WORDS = {"approve": "Approve", "send": "Mark as sent", "acknowledge": "Mark as acknowledged",
              "answer": "Record the answer", "refuse": "Record a refusal"}


def _principal(request: Request) -> Principal | Response:
    principal = optional_principal(request)
    return principal if principal is not None else _login_redirect(request)


def _access(request: Request, principal: Principal, action: Any, page: str) -> CaseAccess:
    reason = request.headers.get("x-reason") or PAGE_REASON
    return CaseAccess(request, principal, action, reason, operation_id=f"page.{page}")


def step_allowed(principal: Principal, step: str, request_doc: dict[str, Any]) -> bool:
    """Whether the user may take ``step`` on the request (the service checks again)."""
    if step not in request_doc.get("actions", []) or step not in STEP_WORDS:
        return False
    if step == "approve":
        return principal.may(Action.REQUEST_APPROVE) and request_doc.get("author") != principal.username
    return principal.may(Action.REQUEST_HANDLE)


def cases_page(request: Request,
               status: Annotated[str | None, Query(max_length=20, pattern="^(open|active|suspended|closed)$")]
               = None) -> Response:
    """The cases the user may see, with status and next deadline, and the deadlines due this week."""
    principal = _principal(request)
    if isinstance(principal, Response):
        return principal
    if not principal.may(Action.CASE_READ):
        return refusal(request, principal, PermissionDeniedError("case files are for case workers"), "cases")
    access = _access(request, principal, Action.CASE_READ, "cases")

    def work(ctx: Any) -> dict[str, Any]:
        cases = case_service.list_cases(ctx, status=status)
        deadlines = access.cases.next_deadlines(ctx, [c.id for c in cases])
        items = [{**case_service.case_summary(c), **deadlines.get(c.id, {})} for c in cases]
        due = [d.to_dict() for d in request_service.due_requests(ctx, within_days=7)]
        return {"cases": items, "due": due}

    try:
        data = access.read(work)
    except FundTrailError as error:
        return refusal(request, principal, error, "cases")
    return render(request, "cases.html", principal, "cases", status=status, **data)


def preserved_trace(ctx: Any, case: Case) -> dict[str, Any] | None:
    """The case's preserved trace for its graph: the newest trace evidence (its latest version), the trace
    document read from its bag and checked against the hash preserved with it; None when the case has no
    preserved trace. The graph then shows what the case's subjects and recovery entries were taken from."""
    item = ctx.session.execute(
        select(EvidenceItem).where(EvidenceItem.case_id == case.id, EvidenceItem.kind == "trace")
        .order_by(EvidenceItem.item.desc(), EvidenceItem.version.desc()).limit(1)).scalars().first()
    if item is None:
        return None
    found: dict[str, Any] = {"evidence": item.id, "title": item.title}
    path = ctx.home / item.bag_path / "data" / "trace.json"
    raw = path.read_bytes() if path.is_file() else None
    if raw is None or sha256_hex(raw) != json.loads(item.manifest).get("data/trace.json"):
        return {**found, "problem": f"data/trace.json of evidence {item.id} is missing or does not match its "
                                    "preserved hash: verify the evidence; the graph traces afresh meanwhile"}
    doc = json.loads(raw)
    parameters = doc.get("parameters") or {}
    return {**found, "chain": doc.get("chain"), "seeds": list(doc.get("seeds") or []),
            "policy": doc.get("policy") or parameters.get("policy"), "max_hops": parameters.get("max_hops"),
            "profile": hop_profile(doc), "graph": flow_graph(doc).to_dict()}


def case_page(request: Request, number: str) -> Response:
    """One case: summary, subjects, evidence, requests with their clocks and actions, ledger, flow graph."""
    principal = _principal(request)
    if isinstance(principal, Response):
        return principal
    access = _access(request, principal, Action.CASE_READ, "case")

    def work(ctx: Any) -> dict[str, Any]:
        case = case_service.show_case(ctx, number, reason=access.header_reason)
        doc = case_service.case_doc(ctx, case)
        requests = [request_document(r) for r in request_service.list_requests(ctx, case=case.number)]
        return {"case": doc, "requests": requests, "preserved": preserved_trace(ctx, case)}

    try:
        data = access.read(work, case=number.strip().upper())
    except FundTrailError as error:
        return refusal(request, principal, error, "cases")
    case = data["case"]
    addresses = [s for s in case["subjects"] if s["kind"] == "address" and s["chain"]]
    # Trace from where the money came in: subjects marked as seeds, else every address not found as an
    # endpoint of an earlier trace.
    seeds = [s for s in addresses if (s["role"] or "") == "seed"] or \
        [s for s in addresses if not (s["role"] or "").startswith("endpoint")]
    addresses = seeds or addresses
    chain = addresses[0]["chain"] if addresses else "btc"
    trace = {"chains": chain_choices(request), "chain": chain,
             "seeds": [s["value"] for s in addresses if s["chain"] == chain][:20], "policy": "haircut",
             "max_hops": DEFAULT_MAX_HOPS, "max_hops_limit": MAX_HOPS_LIMIT, "case": case["number"]}
    preserved = data["preserved"]
    if preserved is not None and "problem" not in preserved:  # the graph starts from the preserved trace
        trace.update({key: preserved[key] for key in ("chain", "seeds", "policy", "max_hops")
                      if preserved.get(key) is not None})
        chain = trace["chain"]
    trace["preserved"] = preserved
    if chain not in [c["name"] for c in trace["chains"]] and chain in CHAINS:
        p = CHAINS[chain]
        trace["chains"].insert(0, {"name": chain, "decimals": p.decimals, "symbol": p.symbol,
                                   "description": p.description})
    for r in data["requests"]:
        r["steps"] = [(s, STEP_WORDS[s]) for s in r["actions"] if step_allowed(principal, s, r)]
    return render(request, "case.html", principal, "cases", case=case, requests=data["requests"], trace=trace,
                  request_types=REQUEST_TYPES,
                  may={"trace": principal.may(Action.TRACE_RUN), "draft": principal.may(Action.REQUEST_DRAFT),
                       "verify": principal.may(Action.EVIDENCE_VERIFY),
                       "audit": principal.may(Action.AUDIT_READ)})


def case_audit_page(request: Request, number: str,
                    offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> Response:
    """The audit trail of a case, for auditors: who read or changed what, when, and why."""
    principal = _principal(request)
    if isinstance(principal, Response):
        return principal
    if not principal.may(Action.AUDIT_READ):
        return refusal(request, principal, PermissionDeniedError("the audit trail is for auditors"), "cases")
    access = _access(request, principal, Action.AUDIT_READ, "case_audit")
    limit = 200

    def work(ctx: Any) -> dict[str, Any]:
        case = ctx.case(number)
        ctx.audit("audit.read", "audit", case=case.number, reason=access.header_reason)
        items, total = access.cases.audit_trail(ctx, case.number, limit=limit, offset=offset)
        return {"number": case.number, "title": case.title, "records": items, "total": total}

    try:
        data = access.read(work, case=number.strip().upper())
    except FundTrailError as error:
        return refusal(request, principal, error, "cases")
    following = offset + len(data["records"])
    return render(request, "case_audit.html", principal, "cases", offset=offset,
                  next_offset=following if following < data["total"] else None, **data)


def recovery_page(request: Request) -> Response:
    """What was frozen, seized, forfeited and returned, per chain and jurisdiction, with charts."""
    principal = _principal(request)
    if isinstance(principal, Response):
        return principal
    if not principal.may(Action.RECOVERY_READ):
        return refusal(request, principal, PermissionDeniedError("the recovery report is for case workers"),
                       "recovery")
    access = _access(request, principal, Action.RECOVERY_READ, "recovery")
    try:
        rows = access.read(lambda ctx: [r.to_dict() for r in ledger_service.recovery_report(ctx)])
    except FundTrailError as error:
        return refusal(request, principal, error, "recovery")
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = f"{r['chain']}:{r['asset']}"
        t = totals.setdefault(key, {"chain": r["chain"], "asset": r["asset"], "kinds": {}})
        t["kinds"][r["kind"]] = t["kinds"].get(r["kind"], 0) + int(r["amount"])
    return render(request, "recovery.html", principal, "recovery", rows=rows, totals=list(totals.values()))


def case_redirect(request: Request) -> Response:
    """``/cases/`` goes to the list."""
    return RedirectResponse("/cases", status_code=303)


PAGES: list[tuple[str, str, Any]] = [
    ("GET", "/cases", cases_page),
    ("GET", "/cases/{number}", case_page),
    ("GET", "/cases/{number}/audit", case_audit_page),
    ("GET", "/recovery", recovery_page),
]
