"""Cases: list, open, read, change. Every call is recorded in the case's audit trail with its reason."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from fundtrail.api.access import Action
from fundtrail.api.deps import CaseAccess, Limit, Offset, ReasonHeader, User, case_data, clean_reason
from fundtrail.api.schemas import (
    CONFLICT,
    CaseCreate,
    CaseDocument,
    CaseSummary,
    CaseUpdate,
    Page,
    page_of,
)
from fundtrail.cases import cases as service
from fundtrail.errors import ConflictError, InputError

router = APIRouter(tags=["cases"])

CaseNumberPath = Annotated[str, Path(min_length=1, max_length=32,
                                     description="The case number (EE-2026-0001).",
                                     examples=["EE-2026-0001"])]
StatusQuery = Annotated[str | None, Query(max_length=20, pattern="^(open|active|suspended|closed)$",
                                          description="Only cases with this status.")]


@router.get("/cases", operation_id="list_cases", response_model=Page[CaseSummary],
            summary="Cases you may see")
def list_cases(access: Annotated[CaseAccess, Depends(case_data(Action.CASE_READ))], limit: Limit = 50,
               offset: Offset = 0, status: StatusQuery = None) -> dict[str, Any]:
    """The cases of your unit (auditors and liaison officers: of your jurisdiction), newest first, each
    with the earliest due date of its open requests."""
    def work(ctx: Any) -> dict[str, Any]:
        cases = service.list_cases(ctx, status=status)
        page = cases[offset:offset + limit]
        deadlines = access.cases.next_deadlines(ctx, [c.id for c in page])
        items = [{**service.case_summary(c), **deadlines.get(c.id, {})} for c in page]
        return page_of(items, len(cases), limit, offset)

    return access.read(work)


@router.post("/cases", operation_id="create_case",
             responses=CONFLICT, response_model=CaseDocument, status_code=201,
             summary="Open a case")
def create_case(body: CaseCreate, access: Annotated[CaseAccess, Depends(case_data(Action.CASE_CREATE))]
                ) -> dict[str, Any]:
    """Open a case numbered JURISDICTION-YEAR-NNNN in your own unit and jurisdiction (naming another
    answers 403); you become its lead."""
    def work(ctx: Any, reason: str) -> dict[str, Any]:
        case = service.open_case(ctx, body.title, severity=body.severity, jurisdiction=body.jurisdiction,
                                 unit=body.unit, lead_agency=body.lead_agency, offence=body.offence,
                                 summary=body.summary)
        return service.case_doc(ctx, case)

    return access.write(work, body_reason=body.reason)


@router.get("/cases/{number}", operation_id="get_case", response_model=CaseDocument, summary="A case")
async def get_case(request: Request, number: CaseNumberPath, principal: User,
                   x_reason: ReasonHeader = None) -> Response:
    """The case with its people, tasks, subjects, evidence, requests and recovery entries. A case out of
    your reach answers 404, as one that does not exist."""
    # The busiest read: what case_data(Action.CASE_READ) gives, built here with one dependency (the
    # signed-in user) instead of three, as each costs the framework's work on every request.
    access = CaseAccess(request, principal, Action.CASE_READ, clean_reason(x_reason))
    # the document as the response model encodes it, kept while the case data does not change
    return Response(await access.read_case(number), media_type="application/json")


@router.patch("/cases/{number}", operation_id="update_case",
             responses=CONFLICT, response_model=CaseDocument,
              summary="Change a case")
def update_case(number: CaseNumberPath, body: CaseUpdate,
                access: Annotated[CaseAccess, Depends(case_data(Action.CASE_EDIT))]) -> dict[str, Any]:
    """Change title, severity, offence, summary or status. With ``expected_version``, a case someone else
    changed meanwhile answers 409 instead of being overwritten."""
    def work(ctx: Any, reason: str) -> dict[str, Any]:
        fields = {k: v for k, v in (("title", body.title), ("severity", body.severity),
                                    ("offence", body.offence), ("summary", body.summary)) if v is not None}
        if not fields and body.status is None:
            raise InputError("nothing to change: give title, severity, offence, summary or status")
        case = ctx.case(number, Action.CASE_EDIT)
        if body.expected_version is not None and case.version != body.expected_version:
            raise ConflictError(f"case {case.number} is at version {case.version}, "
                                f"not {body.expected_version}: "
                                "someone else changed it; reload it and try again")
        if fields:
            case = service.update_case(ctx, number, reason=reason, title=body.title, severity=body.severity,
                                       offence=body.offence, summary=body.summary)
        if body.status is not None:
            case = service.set_status(ctx, number, body.status, reason=reason)
        return service.case_doc(ctx, case)

    return access.write(work, case=number.upper(), body_reason=body.reason)
