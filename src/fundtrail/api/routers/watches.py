"""Partners' calls about watches (signed, as the other cooperation routes).

=================================================  ===============================================
``POST /api/cooperation/watches``                   a partner shares a watch with us
``POST /api/cooperation/watches/alerts``            a partner's alert on a watch we shared with it
=================================================  ===============================================
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from fundtrail.api.routers.cooperation import Partner
from fundtrail.cases.context import operation
from fundtrail.watch.sharing import receive_partner_alert
from fundtrail.watch.sharing import receive_watch as receive

router = APIRouter(prefix="/api/cooperation", tags=["cooperation"])


@router.post(
    "/watches",
    operation_id="cooperation_receive_watch",
    status_code=201,
    summary="Receive a partner's shared watch",
)
def receive_watch(call: Partner) -> dict[str, Any]:
    """Addresses to watch for a partner (pseudonymised case reference, marking); alerts go back to it."""
    with operation(call.db, None, user_required=False) as ctx:
        watch = receive(ctx, call.key_id, call.json())
        return {"watch": watch.id, "points": len(watch.points)}


@router.post(
    "/watches/alerts", operation_id="cooperation_watch_alert", summary="A partner's alert on our watch"
)
def watch_alert(call: Partner) -> dict[str, Any]:
    """The partner's watcher saw our watched funds reach a service in its jurisdiction."""
    with operation(call.db, None, user_required=False) as ctx:
        alert = receive_partner_alert(ctx, call.key_id, call.json())
        return {
            "alert": alert.id if alert is not None else None,
            "request": alert.request.number if alert is not None and alert.request is not None else None,
        }
