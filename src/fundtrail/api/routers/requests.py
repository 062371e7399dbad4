"""Legal requests: draft on a case, then approve, send, acknowledge, answer or refuse; what is due.

Approval needs a supervisor of the case's unit who is not the request's author. Every step is kept in
the request's history and the audit log, with its reason.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from fundtrail.api.access import Action
from fundtrail.api.deps import CaseAccess, Limit, Offset, case_data
from fundtrail.api.errors import about_field
from fundtrail.api.routers.cases import CaseNumberPath
from fundtrail.api.schemas import (
    CONFLICT,
    DueItem,
    Page,
    RequestDocument,
    RequestDraft,
    RequestStep,
    RequestSummary,
    page_of,
)
from fundtrail.cases import requests as service
from fundtrail.domain.requests import RequestState, allowed_actions

router = APIRouter(tags=["requests"])

RequestNumberPath = Annotated[str, Path(min_length=1, max_length=40, description="EE-2026-0001-R01",
                                        examples=["EE-2026-0001-R01"])]


def _case_of(request_number: str) -> str:
    """The case number a request number starts with (for the audit record)."""
    return request_number.strip().upper().rsplit("-R", 1)[0]


def request_document(req: Any) -> dict[str, Any]:
    """A request with what can happen to it next."""
    doc = service.request_doc(req)
    doc["actions"] = [a.value for a in allowed_actions(RequestState(req.state))]
    return doc


def summary(req: Any) -> dict[str, Any]:
    """A request as listed."""
    return {"number": req.number, "case": req.case.number, "type": req.type, "state": req.state,
            "recipient": req.recipient, "answer_due": req.answer_due, "hold_until": req.hold_until,
            "author": req.author.username}


@router.get("/requests", operation_id="list_requests", response_model=Page[RequestSummary],
            summary="Legal requests you may see")
def list_requests(access: Annotated[CaseAccess, Depends(case_data(Action.CASE_READ))], limit: Limit = 50,
                  offset: Offset = 0,
                  state: Annotated[str | None, Query(max_length=20,
                                                     description="Only in this state.")] = None,
                  case: Annotated[str | None, Query(max_length=32, description="Only of this case.")] = None
                  ) -> dict[str, Any]:
    """Requests of the cases within your reach, oldest first."""
    def work(ctx: Any) -> dict[str, Any]:
        with about_field("state", "query"):
            found = service.list_requests(ctx, case=case, state=state)
        return page_of([summary(r) for r in found[offset:offset + limit]], len(found), limit, offset)

    return access.read(work, case=case.strip().upper() if case else None)


@router.get("/requests/due", operation_id="list_due_requests", response_model=Page[DueItem],
            summary="Deadlines overdue or due soon")
def list_due(access: Annotated[CaseAccess, Depends(case_data(Action.CASE_READ))], limit: Limit = 50,
             offset: Offset = 0,
             within_days: Annotated[int, Query(ge=0, le=366, description="Due within this many days.")] = 7
             ) -> dict[str, Any]:
    """Answers owed and holds running out: overdue first, then by date."""
    def work(ctx: Any) -> dict[str, Any]:
        items = [i.to_dict() for i in service.due_requests(ctx, within_days=within_days)]
        return page_of(items[offset:offset + limit], len(items), limit, offset)

    return access.read(work)


@router.post("/cases/{number}/requests", operation_id="draft_request",
             responses=CONFLICT, response_model=RequestDocument,
             status_code=201, summary="Draft a legal request on a case")
def draft_request(number: CaseNumberPath, body: RequestDraft,
                  access: Annotated[CaseAccess, Depends(case_data(Action.REQUEST_DRAFT))]) -> dict[str, Any]:
    """A draft request (preservation, freeze, disclosure, MLA); its deadlines follow its instrument."""
    def work(ctx: Any, reason: str) -> dict[str, Any]:
        with about_field("instrument"):
            req = service.draft_request(
                ctx, number, body.type, body.recipient, recipient_jurisdiction=body.recipient_jurisdiction,
                recipient_contact=body.recipient_contact, instrument=body.instrument,
                agreement=body.agreement,
                language=body.language, subject_matter=body.subject_matter, facts=body.facts,
                measures=body.measures, evidence_id=body.evidence, subject_ids=body.subjects, reason=reason)
        return request_document(req)

    return access.write(work, case=number.strip().upper(), body_reason=body.reason)


@router.get("/requests/{request_number}", operation_id="get_request", response_model=RequestDocument,
            summary="A legal request with its history")
def get_request(request_number: RequestNumberPath,
                access: Annotated[CaseAccess, Depends(case_data(Action.CASE_READ))]) -> dict[str, Any]:
    """The request, its subjects, due dates and every step taken (who, when, why)."""
    def work(ctx: Any) -> dict[str, Any]:
        return request_document(service.show_request(ctx, request_number))

    return access.read(work, case=_case_of(request_number))


def _step(action: str, permission: Any, doc: str) -> Any:
    # The dependency is a default value: annotations are strings here and cannot name ``permission``.
    def route(request_number: RequestNumberPath, body: RequestStep,
              access: CaseAccess = Depends(case_data(permission))) -> dict[str, Any]:
        def work(ctx: Any, reason: str) -> dict[str, Any]:
            req = service.transition(ctx, request_number, action, reason=reason, outcome=body.outcome)
            return request_document(req)

        return access.write(work, case=_case_of(request_number), body_reason=body.reason)

    route.__name__ = f"{action}_request"
    route.__doc__ = doc
    return route


STEPS = [
    ("approve", Action.REQUEST_APPROVE,
     "Approve a draft (supervisors of the case's unit; never its author)."),
    ("send", Action.REQUEST_HANDLE, "Record that an approved request was sent; its answer clock starts."),
    ("acknowledge", Action.REQUEST_HANDLE,
     "Record that the recipient acknowledged it; a hold clock may start."),
    ("answer", Action.REQUEST_HANDLE, "Record the recipient's answer (give the outcome)."),
    ("refuse", Action.REQUEST_HANDLE, "Record that the recipient refused (give the outcome)."),
]

for _action, _permission, _doc in STEPS:
    router.add_api_route(f"/requests/{{request_number}}/{_action}", _step(_action, _permission, _doc),
                         methods=["POST"], operation_id=f"{_action}_request", response_model=RequestDocument,
                         responses=CONFLICT,
                         summary=f"{_action.capitalize()} a request")
