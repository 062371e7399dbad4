"""Alerts across borders: share a watch with a partner agency, and hear back when it alerts.

Under an agreement that allows addresses, :func:`share_watch` sends the watch's addresses, a
pseudonymised case reference (HMAC with the agreement's key: the partner never learns the case number)
and the agreement's marking over the signed cooperation API. The partner keeps it as a watch of source
``partner`` (:func:`receive_watch`); its watcher alerts only when the funds reach a service in its own
jurisdiction, and tells the sender (:func:`notify_partner`, :func:`receive_partner_alert`), whose
instance records the alert and drafts the freeze request to that jurisdiction.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from fundtrail.cases.context import Context
from fundtrail.domain.sharing import pseudonym
from fundtrail.errors import InputError, NotFoundError
from fundtrail.sharing.agreements import agreement_for_partner, get_agreement, pseudonym_key
from fundtrail.sharing.legal_requests import need_addresses
from fundtrail.sharing.partners import ClientFactory, http_client
from fundtrail.sharing.service import audit_as
from fundtrail.watch.engine import Finding
from fundtrail.watch.models import Watch, WatchAlert, WatchPoint
from fundtrail.watch.service import alert_doc, get_watch, parse_target, raise_alerts

MAX_SHARED_POINTS = 10_000


def share_watch(
    ctx: Context,
    watch_id: int,
    agreement: str,
    *,
    clients: ClientFactory | None = None,
    reason: str | None = None,
) -> Watch:
    """Send a watch to the agreement's partner; remember the partner's reference for its alerts."""
    watch = get_watch(ctx, watch_id)
    row = get_agreement(ctx, agreement)
    need_addresses(row, ctx)
    points = [p.address for p in watch.points if p.address] + [
        f"{p.txid}:{p.n}" for p in watch.points if p.txid
    ]
    case_ref = (
        pseudonym(pseudonym_key(ctx.home, row.name, create=True), "case", watch.case.number)
        if watch.case is not None
        else None
    )
    body = {
        "watch": watch.id,
        "chain": watch.chain,
        "points": points,
        "case_ref": case_ref,
        "marking": f"TLP:{row.tlp.upper()}",
    }
    client = (clients or http_client)(row, ctx.key)
    try:
        answer = client.call("POST", "/watches", body)
    finally:
        client.close()
    watch.agreement = row.name
    watch.remote_ref = str((answer or {}).get("watch"))
    ctx.audit(
        "watch.share",
        "watch",
        watch.id,
        case=watch.case.number if watch.case else None,
        reason=reason,
        details={
            "agreement": row.name,
            "partner": row.partner_name,
            "points": len(points),
            "remote_ref": watch.remote_ref,
            "case_ref": case_ref,
        },
    )
    return watch


def receive_watch(ctx: Context, partner_key_id: str, body: Any) -> Watch:
    """A partner's shared watch, kept as a watch of source ``partner``."""
    row = agreement_for_partner(ctx, partner_key_id)
    need_addresses(row, ctx)
    if not isinstance(body, dict) or not isinstance(body.get("points"), list) or not body.get("chain"):
        raise InputError("a shared watch is {watch, chain, points: [...], case_ref, marking}")
    if not 0 < len(body["points"]) <= MAX_SHARED_POINTS:
        raise InputError(f"points: 1 to {MAX_SHARED_POINTS} addresses or outputs")
    chain = str(body["chain"])
    points = list(dict.fromkeys(parse_target(chain, str(p)) for p in body["points"]))
    watch = Watch(
        chain=points[0].chain,
        case_id=None,
        label=f"shared by {row.partner_name}",
        source="partner",
        created_by=f"partner:{partner_key_id}",
        created_at=ctx.now,
        active=True,
        evaluated=False,
        agreement=row.name,
        remote_ref=str(body.get("watch")),
        case_ref=body.get("case_ref"),
        marking=str(body.get("marking") or f"TLP:{row.tlp.upper()}")[:40],
    )
    watch.points = [
        WatchPoint(chain=p.chain, address=p.address, txid=p.txid, n=p.n, origin="target") for p in points
    ]
    ctx.session.add(watch)
    ctx.session.flush()
    audit_as(
        ctx,
        "cooperation.watch.receive",
        "watch",
        str(watch.id),
        actor=f"partner:{partner_key_id}",
        details={
            "agreement": row.name,
            "partner": row.partner_name,
            "points": len(points),
            "case_ref": watch.case_ref,
            "remote_ref": watch.remote_ref,
        },
    )
    return watch


def notify_partner(ctx: Context, alert_id: int, *, clients: ClientFactory | None = None) -> None:
    """Tell the partner that shared the watch about an alert of it."""
    alert = ctx.session.get(WatchAlert, alert_id)
    if alert is None or alert.watch.source != "partner" or not alert.watch.agreement:
        raise NotFoundError("partner alert", str(alert_id))
    row = get_agreement(ctx, alert.watch.agreement)
    doc = alert_doc(alert)
    body = {
        "watch": alert.watch.remote_ref,
        "case_ref": alert.watch.case_ref,
        "alert": {
            k: doc[k]
            for k in (
                "id",
                "key",
                "kind",
                "chain",
                "txid",
                "address",
                "entity",
                "category",
                "jurisdiction",
                "value",
                "height",
                "at",
            )
        },
    }
    client = (clients or http_client)(row, ctx.key)
    try:
        client.call("POST", "/watches/alerts", body)
    finally:
        client.close()
    ctx.audit(
        "cooperation.watch.notify",
        "watch_alert",
        alert.id,
        details={"agreement": row.name, "partner": row.partner_name, "remote_watch": alert.watch.remote_ref},
    )


def receive_partner_alert(ctx: Context, partner_key_id: str, body: Any) -> WatchAlert | None:
    """A partner's alert on a watch we shared with it: recorded as our alert (once), freeze drafted."""
    row = agreement_for_partner(ctx, partner_key_id)
    if not isinstance(body, dict) or not isinstance(body.get("alert"), dict):
        raise InputError("a partner alert is {watch, case_ref, alert: {...}}")
    try:
        watch_id = int(str(body.get("watch")))
    except ValueError:
        raise InputError("watch: our watch id is required") from None
    watch = ctx.session.execute(
        select(Watch).where(Watch.id == watch_id, Watch.agreement == row.name)
    ).scalar_one_or_none()
    if watch is None:
        raise NotFoundError("shared watch", str(watch_id))
    a = body["alert"]
    kind = str(a.get("kind"))
    if kind not in ("moved", "at_service", "sanctioned", "mixer", "bridge"):
        raise InputError(f"alert.kind {kind!r} is not an alert kind")
    try:
        value = int(a["value"]) if a.get("value") is not None else None
    except (TypeError, ValueError):
        raise InputError("alert.value must be a whole number of base units") from None
    finding = Finding(
        f"p:{partner_key_id}:{str(a.get('key') or a.get('id'))[:200]}",
        watch.id,
        kind,
        watch.chain,
        _text(a.get("txid"), 80),
        _text(a.get("address"), 120),
        value,
        a.get("height") if isinstance(a.get("height"), int) else None,
        _text(a.get("entity"), 200),
        _text(a.get("category"), 60),
        (_text(a.get("jurisdiction"), 2) or None),
        {"partner": row.partner_name, "agreement": row.name, "partner_alert": a.get("id")},
    )
    raised = raise_alerts(ctx, [finding])
    audit_as(
        ctx,
        "cooperation.watch.alert",
        "watch",
        str(watch.id),
        actor=f"partner:{partner_key_id}",
        case=watch.case.number if watch.case else None,
        details={
            "agreement": row.name,
            "alert": json.loads(json.dumps(a, default=str)),
            "recorded": [r.id for r in raised],
        },
    )
    return raised[0] if raised else None


def _text(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None
