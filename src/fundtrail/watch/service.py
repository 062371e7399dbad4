"""Watch lists and alerts in the case database: add, list, remove watches; raise and list alerts.

Every call takes the case layer's :class:`~fundtrail.cases.context.Context` (one transaction, the acting
user, the audit log): each read and write is audited in the transaction that does it. An alert is
raised once: its key (:class:`~fundtrail.watch.engine.Finding`) is unique in ``watch_alerts``, and a
finding whose key is already there is skipped. An alert of watched funds at an exchange comes with a
freeze request drafted on the watch's case, to the exchange's jurisdiction, under the instrument the
deadline rules give for it (a foreign exchange: the mutual-legal-assistance route, or the agreement's
own rules when the agency has an agreement with that country), left in draft for a supervisor.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fundtrail.cases.context import Context
from fundtrail.cases.models import LegalRequest, User
from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.cases import Action, CaseNumber, Role, can_reach_case, normalise_jurisdiction
from fundtrail.domain.chains import get_chain
from fundtrail.domain.requests import RequestType
from fundtrail.errors import FundTrailError, InputError, NotFoundError
from fundtrail.watch.engine import Finding, Point
from fundtrail.watch.models import Watch, WatchAlert, WatchPoint

log = logging.getLogger(__name__)

_OUTPUT = re.compile(r"^(?P<txid>(0x)?[0-9a-fA-F]{64}):(?P<n>\d{1,6})$")
FREEZE_CATEGORIES = frozenset({"exchange", "otc_broker", "wallet_service", "payment_processor"})
"""Services that hold customers' funds and can freeze them: an alert there comes with a drafted freeze."""


# ------------------------------------------------------------------------------------------ targets


def parse_target(chain: str, text: str) -> Point:
    """An address or an output ``txid:n`` of ``chain``; InputError naming the target otherwise."""
    value = text.strip()
    match = _OUTPUT.match(value)
    if match:
        if not get_chain(chain).is_utxo:
            raise InputError(f"target {text!r}: outputs (txid:n) exist only on UTXO chains, not on {chain}")
        return Point(chain, txid=match["txid"].lower().removeprefix("0x"), n=int(match["n"]))
    try:
        return Point(chain, address=canonical_address(chain, value))
    except FundTrailError:
        raise InputError(f"target {text!r} is neither a {chain} address nor an output (txid:n)") from None


def trace_points(doc: dict[str, Any], chain: str, source: str) -> list[Point]:
    """The unspent endpoints of a trace document (where the traced funds rest)."""
    from fundtrail.cases.evidence import check_trace

    check_trace(doc, source)
    if str(doc.get("chain")) != chain:
        raise InputError(f"{source}: the trace is on {doc.get('chain')}, not on {chain}")
    points = [
        parse_target(chain, str(e["address"]))
        for e in doc.get("endpoints", [])
        if isinstance(e, dict) and e.get("reason") == "unspent" and e.get("address")
    ]
    if not points:
        raise InputError(f"{source}: the trace has no unspent endpoint to watch")
    return points


def _evidence_points(ctx: Context, evidence_id: str, chain: str) -> tuple[list[Point], int]:
    from fundtrail.cases.evidence import get_evidence

    item = get_evidence(ctx, evidence_id)
    path = ctx.home / item.bag_path / "data" / "trace.json"
    if not path.is_file():
        raise InputError(f"evidence {evidence_id} holds no trace to watch")
    doc = json.loads(path.read_text(encoding="utf-8"))
    return trace_points(doc, chain, f"evidence {evidence_id}"), item.case_id


def cluster_points(home: Path, chain: str, address: str, *, limit: int = 100_000) -> list[Point]:
    """Every address of the co-spend cluster of ``address`` (as ``fundtrail cluster`` stored it)."""
    from fundtrail.intel.tagstore import cluster_of
    from fundtrail.store.chainstore import ChainStore

    if not get_chain(chain).is_utxo:
        raise InputError(f"--cluster: {chain} has no co-spend clusters (UTXO chains only)")
    seed = parse_target(chain, address)
    if not seed.address:
        raise InputError(f"--cluster takes an address, not an output ({address})")
    try:
        store = ChainStore.open_home(home, read_only=True)
    except Exception as error:  # noqa: BLE001  (a missing or locked store: one line for the user)
        raise InputError(f"--cluster: the chain store cannot be read ({error})") from None
    try:
        found = cluster_of(store, chain, seed.address)
        if found is None:
            raise InputError(
                f"--cluster: {seed.address} is in no stored cluster of {chain}; run `fundtrail cluster "
                f"--chain {chain}` first"
            )
        cluster_id, size = found
        if size > limit:
            raise InputError(
                f"--cluster: the cluster of {seed.address} has {size} addresses (at most {limit})"
            )
        rows = store.con.execute(
            "SELECT a.address FROM clusters c JOIN addresses a ON a.chain = c.chain AND a.id = c.address_id "
            "WHERE c.chain = ? AND c.cluster_id = ? ORDER BY a.address",
            [chain, cluster_id],
        ).fetchall()
    finally:
        store.close()
    members = [Point(chain, address=str(r[0])) for r in rows]
    return [seed] + [p for p in members if p != seed]


# ------------------------------------------------------------------------------------------ watches


def add_watch(
    ctx: Context,
    chain: str,
    targets: Sequence[str] = (),
    *,
    case: str | None = None,
    label: str | None = None,
    trace: dict[str, Any] | None = None,
    trace_source: str = "trace",
    evidence: str | None = None,
    cluster: str | None = None,
    reason: str | None = None,
) -> Watch:
    """Watch addresses and outputs (and the unspent endpoints of a trace or an evidence item, or every
    address of an address's co-spend cluster)."""
    chain = get_chain(chain).name
    case_row = ctx.case(case, Action.EDIT_CASE) if case else None
    if case_row is None:
        ctx.require(Action.EDIT_CASE)
    points = [parse_target(chain, t) for t in targets]
    source = "addresses"
    if trace is not None:
        points += trace_points(trace, chain, trace_source)
        source = "trace"
    if evidence:
        found, case_id = _evidence_points(ctx, evidence, chain)
        if case_row is not None and case_row.id != case_id:
            raise InputError(f"evidence {evidence} is not evidence of case {case_row.number}")
        if case_row is None:
            from fundtrail.cases.models import Case

            case_row = ctx.session.get(Case, case_id)
        points += found
        source = "evidence"
    if cluster:
        points += cluster_points(ctx.home, chain, cluster)
        source = "cluster"
        label = label or f"cluster of {cluster.strip()}"
    unique = list(dict.fromkeys(points))
    if not unique:
        raise InputError(
            "nothing to watch: give addresses or outputs, --trace-file, --evidence or --cluster"
        )
    watch = Watch(
        chain=chain,
        case_id=case_row.id if case_row else None,
        label=label,
        source=source,
        created_by=ctx.actor,
        created_at=ctx.now,
        active=True,
        evaluated=False,
    )
    watch.points = [
        WatchPoint(chain=chain, address=p.address, txid=p.txid, n=p.n, origin="target") for p in unique
    ]
    ctx.session.add(watch)
    ctx.session.flush()
    ctx.audit(
        "watch.add",
        "watch",
        watch.id,
        case=case_row.number if case_row else None,
        reason=reason,
        details={"chain": chain, "source": source, "targets": [p.seed for p in unique]},
    )
    return watch


def _reachable(ctx: Context, watch: Watch) -> bool:
    if watch.case is None:
        return True
    user = ctx.acting_user
    assigned = any(a.user_id == user.id for a in watch.case.assignments)
    return can_reach_case(
        Role(user.role), user.unit, user.jurisdiction, watch.case.unit, watch.case.jurisdiction, assigned
    )


def get_watch(ctx: Context, watch_id: int, action: Action = Action.READ_CASE) -> Watch:
    """A watch within the user's reach; NotFoundError otherwise (as for a watch that does not exist)."""
    ctx.require(action)
    watch = ctx.session.get(Watch, int(watch_id))
    if watch is None or not _reachable(ctx, watch):
        raise NotFoundError("watch", str(watch_id))
    return watch


def list_watches(ctx: Context, *, case: str | None = None, include_removed: bool = False) -> list[Watch]:
    """The watches within the user's reach."""
    ctx.require(Action.READ_CASE)
    query = select(Watch).order_by(Watch.id)
    if case:
        query = query.where(Watch.case_id == ctx.case(case).id)
    if not include_removed:
        query = query.where(Watch.active.is_(True))
    found = [w for w in ctx.session.execute(query).scalars() if _reachable(ctx, w)]
    ctx.audit(
        "watch.list",
        "watch",
        None,
        case=CaseNumber.parse(case).__str__() if case else None,
        details={"count": len(found)},
    )
    return found


def remove_watch(ctx: Context, watch_id: int, *, reason: str | None = None) -> Watch:
    """Stop a watch (it stays listed with its alerts)."""
    watch = get_watch(ctx, watch_id, Action.EDIT_CASE)
    if watch.case is not None:
        ctx.case(watch.case.number, Action.EDIT_CASE)
    watch.active = False
    ctx.audit(
        "watch.remove", "watch", watch.id, case=watch.case.number if watch.case else None, reason=reason
    )
    return watch


def watch_doc(watch: Watch) -> dict[str, Any]:
    """A watch as JSON values."""
    return {
        "id": watch.id,
        "chain": watch.chain,
        "case": watch.case.number if watch.case else None,
        "label": watch.label,
        "source": watch.source,
        "active": watch.active,
        "created_by": watch.created_by,
        "created_at": watch.created_at,
        "targets": [
            Point(p.chain, p.address, p.txid, p.n).seed for p in watch.points if p.origin == "target"
        ],
        "reached": sorted(p.address for p in watch.points if p.origin == "reached"),
        "agreement": watch.agreement,
        "remote_ref": watch.remote_ref,
        "case_ref": watch.case_ref,
        "marking": watch.marking,
    }


# ------------------------------------------------------------------------------------------- alerts


def freeze_clock(alert: WatchAlert, home: Path | None = None) -> tuple[datetime | None, date | None]:
    """When the freeze clock of an alert at a service started, and the freeze request's due date.

    The clock starts when the funds arrived at the service (the time of the block that brought them;
    the alert's time when the block's is unknown), not when the request is sent. The due date is the
    sent request's answer date; before it is sent, the answer (else hold) days of the drafted request's
    instrument (under its agreement, with the agency's ``deadlines.yaml``) counted from the clock's start.
    """
    if alert.kind != "at_service":
        return None, None
    details = json.loads(alert.details) if alert.details else {}
    started = alert.at
    if details.get("arrived_at"):
        try:
            started = datetime.fromisoformat(str(details["arrived_at"]))
        except ValueError:
            started = alert.at
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    req = alert.request
    if req is None:
        return started, None
    if req.answer_due is not None:
        return started, req.answer_due
    from fundtrail.cases.requests import deadline_book
    from fundtrail.domain.deadlines import deadlines

    try:
        book = deadline_book(home)
        rule = book.rule_for(RequestType.FREEZE, req.instrument, req.agreement)
    except FundTrailError as error:
        log.warning("alert %d: no freeze deadline: %s", alert.id, error)
        return started, None
    due = deadlines(rule, started.date(), holidays=book.holidays)
    return started, due.answer_due or due.hold_until


def alert_doc(alert: WatchAlert, home: Path | None = None) -> dict[str, Any]:
    """The alert document of DESIGN.md (plus its id, jurisdiction, request, freeze clock and delivery).

    ``home`` gives the agency's deadline rules for the freeze clock (the shipped rules without it).
    """
    req = alert.request
    clock_started, freeze_due = freeze_clock(alert, home)
    return {
        "id": alert.id,
        "kind": alert.kind,
        "chain": alert.chain,
        "txid": alert.txid,
        "address": alert.address,
        "entity": alert.entity,
        "category": alert.category,
        "jurisdiction": alert.jurisdiction,
        "value": str(alert.value) if alert.value is not None else None,
        "height": alert.height,
        "watch": alert.watch_id,
        "case": alert.watch.case.number if alert.watch.case else None,
        "case_ref": alert.watch.case_ref,
        "at": alert.at.isoformat(),
        "key": alert.key,
        "request": req.number if req is not None else None,
        "request_state": req.state if req is not None else None,
        "clock_started_at": clock_started.isoformat() if clock_started else None,
        "freeze_due": freeze_due.isoformat() if freeze_due else None,
        "origin": "partner" if alert.watch.source == "partner" or alert.key.startswith("p:") else "local",
        "delivered": {"webhook": alert.webhook_at, "email": alert.email_at, "partner": alert.partner_at},
        "details": json.loads(alert.details) if alert.details else {},
    }


def list_alerts(
    ctx: Context, *, case: str | None = None, kind: str | None = None, since_id: int = 0
) -> list[WatchAlert]:
    """The alerts within the user's reach, newest first."""
    ctx.require(Action.READ_CASE)
    query = select(WatchAlert).where(WatchAlert.id > since_id).order_by(WatchAlert.id.desc())
    if kind:
        if kind not in ("moved", "at_service", "sanctioned", "mixer", "bridge"):
            raise InputError(
                f"unknown alert kind {kind!r}; kinds: moved, at_service, sanctioned, mixer, bridge"
            )
        query = query.where(WatchAlert.kind == kind)
    if case:
        query = query.join(Watch).where(Watch.case_id == ctx.case(case).id)
    found = [a for a in ctx.session.execute(query).scalars() if _reachable(ctx, a.watch)]
    ctx.audit(
        "alert.list",
        "watch_alert",
        None,
        case=str(CaseNumber.parse(case)) if case else None,
        details={"count": len(found), "kind": kind},
    )
    return found


def existing_keys(ctx: Context, keys: Iterable[str]) -> set[str]:
    """The keys among ``keys`` already raised."""
    wanted = list(set(keys))
    out: set[str] = set()
    for i in range(0, len(wanted), 500):
        out |= set(
            ctx.session.execute(
                select(WatchAlert.key).where(WatchAlert.key.in_(wanted[i : i + 500]))
            ).scalars()
        )
    return out


def raise_alerts(ctx: Context, findings: Sequence[Finding]) -> list[WatchAlert]:
    """Record the findings not raised before (each audited); draft freeze requests at exchanges."""
    seen = existing_keys(ctx, [f.key for f in findings])
    raised: list[WatchAlert] = []
    for f in findings:
        if f.key in seen:
            continue
        seen.add(f.key)
        watch = ctx.session.get(Watch, f.watch_id)
        if watch is None:
            continue
        if watch.source == "partner" and not _partner_relevant(ctx, f):
            continue
        alert = WatchAlert(
            key=f.key,
            watch_id=f.watch_id,
            kind=f.kind,
            chain=f.chain,
            txid=f.txid,
            address=f.address,
            entity=f.entity,
            category=f.category,
            jurisdiction=f.jurisdiction,
            value=f.value,
            height=f.height,
            at=ctx.now,
            details=json.dumps(f.details, sort_keys=True, default=str) if f.details else None,
        )
        ctx.session.add(alert)
        ctx.session.flush()
        case = watch.case.number if watch.case else None
        ctx.audit(
            "alert.raise",
            "watch_alert",
            alert.id,
            case=case,
            details={
                "kind": f.kind,
                "watch": f.watch_id,
                "chain": f.chain,
                "txid": f.txid,
                "address": f.address,
                "entity": f.entity,
                "value": str(f.value),
            },
        )
        request = draft_freeze(ctx, alert, watch)
        if request is not None:
            alert.request_id = request.id
        raised.append(alert)
    return raised


def _partner_relevant(ctx: Context, f: Finding) -> bool:
    """A watch shared by a partner alerts here only when the funds reach a service in our jurisdiction."""
    from fundtrail.cases.users import agency

    home = getattr(agency(ctx), "jurisdiction", None)
    return f.kind == "at_service" and bool(
        home and f.jurisdiction and normalise_jurisdiction(f.jurisdiction) == normalise_jurisdiction(home)
    )


def _author(ctx: Context, watch: Watch) -> User | None:
    user = ctx.session.execute(select(User).where(User.username == watch.created_by)).scalar_one_or_none()
    if user is not None and user.active:
        return user
    return ctx.user


def _subject_for(ctx: Context, alert: WatchAlert, case_number: str) -> int:
    from fundtrail.cases.cases import add_subject
    from fundtrail.cases.models import Subject

    case = ctx.case(case_number)
    for s in case.subjects:
        if s.kind == "address" and s.value == alert.address and s.chain == alert.chain:
            return s.id
    subject, _ = add_subject(
        ctx,
        case_number,
        "address",
        str(alert.address),
        chain=alert.chain,
        label=alert.entity,
        role="deposit address",
        amount=alert.value,
        source=f"watch alert {alert.id}",
    )
    assert isinstance(subject, Subject)
    return subject.id


def draft_freeze(ctx: Context, alert: WatchAlert, watch: Watch) -> LegalRequest | None:
    """Draft the freeze request of an alert at an exchange (on the watch's case), or None.

    The request goes to the exchange, in its jurisdiction; the deadline rules choose the instrument (a
    foreign exchange: the mutual-legal-assistance route; the agreement with that country's own rules when
    there is one). It is drafted by the watch's author and waits in draft for a supervisor's approval.
    """
    from fundtrail.cases.requests import deadline_book, draft_request
    from fundtrail.cases.users import agency
    from fundtrail.sharing.models import SharingAgreement

    if alert.kind != "at_service" or watch.case is None or not alert.entity or not alert.address:
        return None
    if (alert.category or "").lower() not in FREEZE_CATEGORIES:
        return None
    home = getattr(agency(ctx), "jurisdiction", None)
    where = alert.jurisdiction
    agreement: str | None = None
    if where and home and normalise_jurisdiction(where) != normalise_jurisdiction(home):
        row = (
            ctx.session.execute(
                select(SharingAgreement)
                .where(
                    SharingAgreement.partner_country == normalise_jurisdiction(where),
                    SharingAgreement.active.is_(True),
                )
                .order_by(SharingAgreement.id)
            )
            .scalars()
            .first()
        )
        if row is not None and row.name in deadline_book(ctx.home).agreements:
            agreement = row.name
    acting = ctx.user
    ctx.user = _author(ctx, watch)
    try:
        # checked before anything is written: the audit log cannot take a partial rollback (no savepoints)
        try:
            ctx.case(watch.case.number, Action.EDIT_CASE)
            ctx.case(watch.case.number, Action.DRAFT_REQUEST)
            abroad = bool(where and home and normalise_jurisdiction(where) != normalise_jurisdiction(home))
            deadline_book(ctx.home).rule_for(RequestType.FREEZE, None, agreement, abroad=abroad)
        except FundTrailError as error:
            log.warning("alert %d: freeze request not drafted: %s", alert.id, error)
            return None
        subject = _subject_for(ctx, alert, watch.case.number)
        ctx.session.expire(watch.case, ["subjects"])
        return draft_request(
            ctx,
            watch.case.number,
            "freeze",
            alert.entity,
            recipient_jurisdiction=where,
            agreement=agreement,
            subject_matter=f"Freeze of funds traced to {alert.entity}",
            facts=(
                f"Funds watched for case {watch.case.number} reached {alert.entity} "
                f"({alert.category}{', ' + where if where else ''}) at address {alert.address} "
                f"in transaction {alert.txid} on {alert.chain}."
            ),
            measures=f"Freeze the assets credited from {alert.address} and preserve the account records.",
            subject_ids=[subject],
            reason=f"drafted for watch alert {alert.id}",
        )
    finally:
        ctx.user = acting
