"""The recovery ledger of a case, and the public aggregate recovery report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from fundtrail.api.access import Action
from fundtrail.api.deps import CaseAccess, Limit, Offset, case_data
from fundtrail.api.errors import about_field
from fundtrail.api.routers.cases import CaseNumberPath
from fundtrail.api.schemas import CONFLICT, LedgerEntry, LedgerEntryCreate, Page, ReportRow, page_of
from fundtrail.cases import ledger as service

router = APIRouter(tags=["recovery"])


@router.get("/cases/{number}/ledger", operation_id="list_ledger", response_model=Page[LedgerEntry],
            summary="The recovery ledger of a case")
def list_ledger(number: CaseNumberPath,
                access: Annotated[CaseAccess, Depends(case_data(Action.RECOVERY_READ))],
                limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Amounts frozen, seized, forfeited and returned on the case, oldest first."""
    def work(ctx: Any) -> dict[str, Any]:
        entries = service.list_entries(ctx, number)
        return page_of([service.entry_doc(e) for e in entries[offset:offset + limit]], len(entries), limit,
                       offset)

    return access.read(work, case=number.strip().upper())


@router.post("/cases/{number}/ledger", operation_id="record_ledger_entry",
             responses=CONFLICT, response_model=LedgerEntry,
             status_code=201, summary="Record a recovery")
def record_entry(number: CaseNumberPath, body: LedgerEntryCreate,
                 access: Annotated[CaseAccess, Depends(case_data(Action.RECOVERY_WRITE))]) -> dict[str, Any]:
    """Record an amount frozen, seized, forfeited or returned, with the request or court order behind it."""
    def work(ctx: Any, reason: str) -> dict[str, Any]:
        with about_field("request" if body.request else "chain"):
            entry = service.record_entry(ctx, number, body.kind, body.chain, body.amount, asset=body.asset,
                                         jurisdiction=body.jurisdiction, holder=body.holder,
                                         request=body.request, court_order=body.court_order, note=body.note)
        return service.entry_doc(entry)

    return access.write(work, case=number.strip().upper(), body_reason=body.reason)


@router.get("/reports/recovery", operation_id="get_recovery_report", response_model=Page[ReportRow],
            summary="The public recovery report")
def recovery_report(access: Annotated[CaseAccess, Depends(case_data(Action.RECOVERY_READ))],
                    limit: Limit = 500, offset: Offset = 0) -> dict[str, Any]:
    """Totals per kind (frozen, seized, forfeited, returned), chain, asset and jurisdiction over every
    case; no personal data, no addresses."""
    def work(ctx: Any) -> dict[str, Any]:
        rows = [r.to_dict() for r in service.recovery_report(ctx)]
        return page_of(rows[offset:offset + limit], len(rows), limit, offset)

    return access.read(work)
