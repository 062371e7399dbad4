"""Alerts across borders: share a watch with a partner agency, and hear back when it alerts.

Under an agreement that allows addresses, :func:`share_watch` sends the watch's addresses, a
pseudonymised case reference (HMAC with the agreement's key: the partner never learns the case number)
and the agreement's marking over the signed cooperation API. The partner keeps it as a watch of source
``partner`` (:func:`receive_watch`); its watcher alerts only when the funds reach a service in its own
jurisdiction, and tells the sender (:func:`notify_partner`, :func:`receive_partner_alert`), whose
instance records the alert and drafts the freeze request to that jurisdiction.

The watch can travel over TAXII 2.1 instead (``transport="taxii"``): it is published to the agreement's
TAXII collection as a signed ``fundtrail-watch`` STIX object (:func:`fundtrail.sharing.stix.watch_object`,
marked with the agreement's TLP), and the partner's ``fundtrail share pull`` turns it into the same
received watch (:func:`receive_watch_object`: signature checked with the agreement's pinned partner key,
kept once per watch). The partner's alerts go back over the signed API either way (:func:`notify_partner`:
the sender learns at once, without pulling).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from fundtrail.cases.context import Context
from fundtrail.domain.sharing import Tlp, pseudonym
from fundtrail.errors import InputError, IntegrityError, NotFoundError
from fundtrail.sharing import stix
from fundtrail.sharing.agreements import agreement_for_partner, get_agreement, pseudonym_key
from fundtrail.sharing.legal_requests import need_addresses
from fundtrail.sharing.partners import ClientFactory, http_client
from fundtrail.sharing.service import audit_as
from fundtrail.sharing.signing import sign_document, verify_document
from fundtrail.sharing.taxii import TaxiiTarget, publish
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
    transport: str = "api",
    taxii: TaxiiTarget | None = None,
) -> Watch:
    """Send a watch to the agreement's partner; remember the partner's reference for its alerts.

    ``transport="api"``: over the signed cooperation API (the partner's watch id comes back);
    ``"taxii"``: published to the agreement's TAXII collection ``taxii`` (the STIX object id is kept).
    """
    if transport not in ("api", "taxii"):
        raise InputError(f"transport {transport!r}: api or taxii")
    if transport == "taxii" and taxii is None:
        raise InputError("sharing a watch over TAXII needs the agreement's TAXII collection URL")
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
    if taxii is not None and transport == "taxii":
        tlp = Tlp(row.tlp)
        obj = stix.watch_object(
            body,
            tlp=tlp,
            agreement=row.name,
            key_id=ctx.key.key_id,
            now=ctx.now,
            sign=lambda doc: sign_document(ctx.key, doc),
        )
        publish(taxii, stix.watch_objects(obj, tlp))
        watch.remote_ref = obj["id"]
    else:
        client = (clients or http_client)(row, ctx.key)
        try:
            answer = client.call("POST", "/watches", body)
        finally:
            client.close()
        watch.remote_ref = str((answer or {}).get("watch"))
    watch.agreement = row.name
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
            "transport": transport,
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


def receive_watch_object(ctx: Context, obj: dict[str, Any], source: str) -> Watch | None:
    """A ``fundtrail-watch`` STIX object pulled from TAXII, kept as :func:`receive_watch` keeps one shared
    over the API; None when that watch was received before. IntegrityError when it is not signed by the
    partner of an agreement (its pinned key) or its marking is not the agreement's."""
    read = stix.read_watch_object(obj, source)
    row = agreement_for_partner(ctx, read.key_id, read.agreement)
    if not verify_document(row.partner_public_key, read.unsigned, read.signature):
        raise IntegrityError(f"{source}: {read.id} is not signed by {row.partner_name}'s key")
    if str(read.body.get("marking")) != f"TLP:{row.tlp.upper()}":
        raise IntegrityError(f"{source}: {read.id} is marked {read.body.get('marking')}, not as agreed")
    known = ctx.session.execute(
        select(Watch.id).where(
            Watch.source == "partner",
            Watch.agreement == row.name,
            Watch.remote_ref == str(read.body.get("watch")),
        )
    ).first()
    if known is not None:
        return None
    return receive_watch(ctx, read.key_id, read.body)


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


def pull_watches(
    db: Any, target: Any, pulled: list[dict[str, Any]], username: str | None, result: Any
) -> None:
    """Keep the partners' shared watches among the objects of a TAXII pull (each once, in its own
    transaction): the hook ``fundtrail share pull`` gives :func:`fundtrail.sharing.taxii.pull_packages`."""
    from fundtrail.cases.context import operation
    from fundtrail.errors import FundTrailError
    from fundtrail.sharing.service import record_rejection
    from fundtrail.sharing.stix import latest_watches

    source = f"TAXII {target.url}"
    for obj in latest_watches(pulled):
        try:
            with operation(db, username, user_required=False) as ctx:
                watch = receive_watch_object(ctx, obj, source)
                if watch is None:
                    result.already.append(str(obj["id"]))
                    continue
                result.watches.append({"id": obj["id"], "watch": watch.id, "points": len(watch.points)})
        except FundTrailError as error:
            with operation(db, username, user_required=False) as ctx:
                record_rejection(ctx, source, error, transport="taxii")
            result.rejected.append({"package_id": str(obj["id"]), "problem": str(error)})
