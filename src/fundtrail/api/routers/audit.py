"""The audit log, for auditors: verify the hash chain, read a case's audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from fundtrail.api.access import Action
from fundtrail.api.deps import CaseAccess, Limit, Offset, case_data
from fundtrail.api.routers.cases import CaseNumberPath
from fundtrail.api.schemas import AuditRecordDoc, AuditVerification, Page, page_of
from fundtrail.audit import log as audit_log
from fundtrail.audit import trust

router = APIRouter(tags=["audit"])

Auditor = Annotated[CaseAccess, Depends(case_data(Action.AUDIT_READ))]


@router.get("/audit/verify", operation_id="verify_audit", response_model=AuditVerification,
            summary="Verify the audit log")
def verify(access: Auditor) -> dict[str, Any]:
    """Check every record, every signed tree head (with the keys pinned in the home), their consistency,
    the newest head the home kept and the heads partners witnessed. ``intact`` false names the first bad
    record or head."""
    def work(ctx: Any) -> dict[str, Any]:
        return audit_log.verify(ctx.session, trust.load(ctx.home), home=ctx.home).to_dict()

    return access.read(work)


@router.get("/cases/{number}/audit", operation_id="get_case_audit", response_model=Page[AuditRecordDoc],
            summary="The audit trail of a case")
def case_trail(number: CaseNumberPath, access: Auditor, limit: Limit = 100, offset: Offset = 0
               ) -> dict[str, Any]:
    """Every record of the case (who read or changed what, when, why), oldest first."""
    def work(ctx: Any) -> dict[str, Any]:
        case = ctx.case(number)
        ctx.audit("audit.read", "audit", case=case.number, reason=access.header_reason,
                  details={"limit": limit, "offset": offset})
        items, total = access.cases.audit_trail(ctx, case.number, limit=limit, offset=offset)
        return page_of(items, total, limit, offset)

    return access.read(work, case=number.strip().upper())
