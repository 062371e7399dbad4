"""Subjects of a case: the addresses, transactions, persons, companies and accounts it is about."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from fundtrail.api.access import Action
from fundtrail.api.deps import CaseAccess, Limit, Offset, case_data
from fundtrail.api.errors import about_field
from fundtrail.api.routers.cases import CaseNumberPath
from fundtrail.api.schemas import CONFLICT, Page, Subject, SubjectAdded, SubjectCreate, page_of
from fundtrail.cases import cases as service
from fundtrail.domain.chains import get_chain

router = APIRouter(tags=["subjects"])


@router.get("/cases/{number}/subjects", operation_id="list_subjects", response_model=Page[Subject],
            summary="Subjects of a case")
def list_subjects(number: CaseNumberPath, access: Annotated[CaseAccess, Depends(case_data(Action.CASE_READ))],
                  limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """The case's subjects in the order they were added."""
    def work(ctx: Any) -> dict[str, Any]:
        subjects = service.show_case(ctx, number, reason=access.header_reason).subjects
        items = [service.subject_doc(s) for s in subjects[offset:offset + limit]]
        return page_of(items, len(subjects), limit, offset)

    return access.read(work, case=number.upper())


@router.post("/cases/{number}/subjects", operation_id="add_subject",
             responses=CONFLICT, response_model=SubjectAdded,
             status_code=201, summary="Add a subject to a case")
def add_subject(number: CaseNumberPath, body: SubjectCreate,
                access: Annotated[CaseAccess, Depends(case_data(Action.CASE_EDIT))]) -> dict[str, Any]:
    """Add an address, transaction, person, company or exchange account. The answer names the other cases
    of the agency that already hold it, and whom to call (deconfliction); it does not block."""
    if body.chain is not None:
        with about_field("chain"):
            get_chain(body.chain)

    def work(ctx: Any, reason: str) -> dict[str, Any]:
        with about_field("value"):
            subject, others = service.add_subject(ctx, number, body.kind, body.value, chain=body.chain,
                                                  label=body.label, role=body.role, asset=body.asset,
                                                  amount=body.amount, source=body.source)
        return {"subject": service.subject_doc(subject), "deconfliction": [d.to_dict() for d in others]}

    return access.write(work, case=number.upper(), body_reason=body.reason)
