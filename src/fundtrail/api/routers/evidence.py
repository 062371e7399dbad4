"""Evidence of a case: preserved traces as signed BagIt packages, their chain of custody, verification.

Viewing an item and verifying it are custody events, recorded with who, when and why.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from fundtrail.analysis.tracing import trace_funds
from fundtrail.api.access import Action
from fundtrail.api.deps import CaseAccess, Limit, Offset, api_state, case_data
from fundtrail.api.errors import about_field
from fundtrail.api.routers.cases import CaseNumberPath
from fundtrail.api.schemas import (
    CONFLICT,
    EvidenceCheckDocument,
    EvidenceDocument,
    EvidenceSummary,
    Page,
    PreserveRequest,
    ReasonBody,
    page_of,
)
from fundtrail.cases import cases as case_service
from fundtrail.cases import evidence as service
from fundtrail.domain.chains import get_chain

router = APIRouter(tags=["evidence"])

EvidenceIdPath = Annotated[str, Path(min_length=1, max_length=64, description="EE-2026-0001-E001-v1",
                                     examples=["EE-2026-0001-E001-v1"])]


def _case_of(evidence_id: str) -> str:
    """The case number an evidence id starts with (for the audit record)."""
    return evidence_id.strip().upper().rsplit("-E", 1)[0]


@router.get("/cases/{number}/evidence", operation_id="list_evidence", response_model=Page[EvidenceSummary],
            summary="Evidence of a case")
def list_evidence(number: CaseNumberPath, access: Annotated[CaseAccess, Depends(case_data(Action.CASE_READ))],
                  limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Every evidence item of the case, every version, in order."""
    def work(ctx: Any) -> dict[str, Any]:
        case = case_service.show_case(ctx, number, reason=access.header_reason)
        items = access.cases.case_document(ctx, case)["evidence"]
        return page_of(items[offset:offset + limit], len(items), limit, offset)

    return access.read(work, case=number.strip().upper())


@router.post("/cases/{number}/evidence", operation_id="preserve_evidence",
             responses=CONFLICT, response_model=EvidenceDocument,
             status_code=201, summary="Trace and preserve the trace as evidence")
def preserve(request: Request, number: CaseNumberPath, body: PreserveRequest,
             access: Annotated[CaseAccess, Depends(case_data(Action.EVIDENCE_PRESERVE))]) -> dict[str, Any]:
    """Run the trace and freeze it, with the raw chain records and tags behind it, into a signed,
    immutable BagIt package (investigators and supervisors)."""
    with about_field("chain"):
        chain = get_chain(body.chain).name
    state = api_state(request)
    with state.chain.store() as store:
        # The trace runs before the case's transaction opens, so that it holds no lock meanwhile.
        with about_field("seeds"):
            trace = trace_funds(store, chain, list(body.seeds), body.trace_params()).to_dict()

        def work(ctx: Any, reason: str) -> dict[str, Any]:
            preserved = service.preserve_trace(ctx, number, trace, store, title=body.title,
                                               description=body.description, reason=reason,
                                               add_subjects=body.add_subjects)
            return service.evidence_doc(preserved.item)

        return access.write(work, case=number.strip().upper(), body_reason=body.reason)


@router.get("/evidence/{evidence_id}", operation_id="get_evidence", response_model=EvidenceDocument,
            summary="An evidence item and its chain of custody")
def get_evidence(evidence_id: EvidenceIdPath,
                 access: Annotated[CaseAccess, Depends(case_data(Action.CASE_READ))]) -> dict[str, Any]:
    """Hashes, signature, parameters and custody events; viewing it is a custody event too."""
    def work(ctx: Any) -> dict[str, Any]:
        item = service.show_evidence(ctx, evidence_id, reason=access.header_reason or "review")
        return service.evidence_doc(item)

    return access.read(work, case=_case_of(evidence_id), writes=True)  # a view is a custody event


@router.post("/evidence/{evidence_id}/verify", operation_id="verify_evidence", responses=CONFLICT,
             response_model=EvidenceCheckDocument, summary="Verify an evidence item")
def verify(evidence_id: EvidenceIdPath, body: ReasonBody,
           access: Annotated[CaseAccess, Depends(case_data(Action.EVIDENCE_VERIFY))]) -> dict[str, Any]:
    """Check every file's hash, the signature and the record of its creation; the answer says what
    differs (``ok`` false) rather than failing."""
    def work(ctx: Any, reason: str) -> dict[str, Any]:
        return service.verify_evidence(ctx, evidence_id, reason=reason).to_dict()

    return access.write(work, case=_case_of(evidence_id), body_reason=body.reason)
