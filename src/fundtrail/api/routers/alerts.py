"""Alerts raised by watches: the inbox, newest first (each read audited, as every read of case data)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from fundtrail.api.access import Action
from fundtrail.api.deps import CaseAccess, Limit, Offset, case_data
from fundtrail.api.errors import about_field
from fundtrail.api.schemas import AlertDocument, Page, page_of
from fundtrail.watch import service

router = APIRouter(tags=["alerts"])


@router.get(
    "/alerts",
    operation_id="list_alerts",
    response_model=Page[AlertDocument],
    summary="Alerts of the watches you may see",
)
def list_alerts(
    access: Annotated[CaseAccess, Depends(case_data(Action.CASE_READ))],
    limit: Limit = 50,
    offset: Offset = 0,
    kind: Annotated[str | None, Query(max_length=20, description="Only of this kind.")] = None,
    case: Annotated[str | None, Query(max_length=32, description="Only of this case.")] = None,
) -> dict[str, Any]:
    """Alerts (moved, at_service, sanctioned, mixer, bridge) of the cases within your reach, newest first."""

    def work(ctx: Any) -> dict[str, Any]:
        with about_field("kind", "query"):
            found = service.list_alerts(ctx, case=case, kind=kind)
        docs = [service.alert_doc(a, ctx.home) for a in found[offset : offset + limit]]
        return page_of(docs, len(found), limit, offset)

    found: dict[str, Any] = access.read(work, case=case.strip().upper() if case else None)
    return found
