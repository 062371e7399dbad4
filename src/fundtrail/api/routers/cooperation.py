"""The cooperation endpoints of the API: what partner agencies call, signed with their agency key.

==========================================  =========================================================
``GET  /api/cooperation/agency``            this agency's name, country, key id, public key (public)
``POST /api/cooperation/packages``          a partner sends a STIX package (verified, then stored)
``POST /api/cooperation/psi``               a partner's deconfliction query (private set intersection)
``POST /api/cooperation/psi/contacts``      the contacts for the matches of a query
``POST /api/cooperation/requests``          a partner's legal request, into the inbox
``POST /api/cooperation/requests/{n}/acknowledgement``  the partner acknowledged our request ``n``
``POST /api/cooperation/requests/{n}/answer``           the partner answered (or refused) it
``GET  /api/cooperation/inbox``             the inbox, for the agency's users (bearer token)
==========================================  =========================================================

Partner calls carry the signed-request headers of :mod:`fundtrail.sharing.signing`; the key must be a
partner's with an active agreement and pinned in the home's trust file (never a key that only the case
database lists), the timestamp within the replay window and the nonce new. A call
that is not signed, or signed by anyone else, is answered 401 and touches nothing. The TAXII 2.1
endpoints are in :mod:`fundtrail.api.routers.taxii`; the app includes both routers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from fundtrail.api.access import Action
from fundtrail.api.deps import allowed, api_state
from fundtrail.api.errors import Unauthenticated
from fundtrail.audit import trust
from fundtrail.cases.context import operation
from fundtrail.cases.db import CaseDB
from fundtrail.errors import FundTrailError, InputError, IntegrityError
from fundtrail.limits import check_nesting, input_limits
from fundtrail.sharing.agreements import agency_identity, agreement_for_partner
from fundtrail.sharing.models import SharingAgreement
from fundtrail.sharing.shared_state import MemoryStatuses, SharedStatuses
from fundtrail.sharing.signing import ReplayGuard, verify_request

# The formats (stix2, followthemoney) and PSI (openmined-psi) are the ``sharing`` extra: they are
# imported by the endpoints that use them, so that the API runs without them.

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/cooperation", tags=["cooperation"])

MAX_BODY = 32 * 1024 * 1024
"""The largest body a partner may send (a package or a PSI query)."""


@dataclass
class SharingState:
    """What the cooperation endpoints keep between calls: seen nonces, open PSI queries, TAXII statuses.

    In memory by default (one process); the app of a server with several workers gives stores that keep
    them in a folder the workers share (:mod:`fundtrail.sharing.shared_state`)."""

    guard: ReplayGuard = field(default_factory=ReplayGuard)
    sessions: Any = None
    statuses: MemoryStatuses | SharedStatuses = field(default_factory=MemoryStatuses)

    def psi_sessions(self) -> Any:
        """The open PSI queries."""
        if self.sessions is None:
            from fundtrail.sharing.psi import PsiSessions

            self.sessions = PsiSessions()
        return self.sessions


def sharing_state(request: Request) -> SharingState:
    """The app's cooperation state (made on first use)."""
    extra = api_state(request).extra
    if "sharing" not in extra:
        extra["sharing"] = SharingState()
    state: SharingState = extra["sharing"]
    return state


def case_db(request: Request) -> CaseDB:
    """The app's case database."""
    db: CaseDB = api_state(request).cases.db
    return db


@dataclass
class PartnerCall:
    """A verified partner call: who (key id), the raw body, and its JSON."""

    key_id: str
    body: bytes
    db: CaseDB

    @property
    def actor(self) -> str:
        """The partner as the audit log names it."""
        return f"partner:{self.key_id}"

    def json(self) -> Any:
        """The body as JSON; InputError when it is not."""
        try:
            document = json.loads(self.body) if self.body else {}
        except ValueError:
            raise InputError("the body is not JSON") from None
        except RecursionError:
            raise InputError("the body nests too deeply to be read") from None
        check_nesting(document, "the body", input_limits())
        return document


def _public_key(db: CaseDB, key_id: str) -> str | None:
    """The partner's public key, as pinned in the home's trust file, when an active agreement has it.

    A key that only the case database lists (``sharing_agreements``) is never trusted: None.
    """
    pinned = trust.load(db.home).get(key_id)
    if pinned is None or not pinned.owner.startswith(trust.PARTNER_PREFIX):
        log.info("refused key %s: it is not a partner key pinned in the home's trust file", key_id)
        return None
    with db.session() as session:
        rows = session.execute(
            select(SharingAgreement.partner_public_key).where(
                SharingAgreement.partner_key_id == key_id, SharingAgreement.active.is_(True)
            )
        ).all()
    if not any(r[0].strip() == pinned.public_key for r in rows):
        return None
    return pinned.public_key


def signed_path(request: Request) -> str:
    """The path and query as the client sent them (what the signature covers)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    return (raw + (b"?" + query if query else b"")).decode("latin-1")


async def partner_call(request: Request) -> PartnerCall:
    """The calling partner, when the request is signed by a partner's key; 401 otherwise."""
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise InputError(f"the body is larger than {MAX_BODY} bytes")
    body = await request.body()
    db = case_db(request)
    state = sharing_state(request)
    lookups: dict[str, str | None] = {}

    async def lookup(key_id: str) -> str | None:
        lookups[key_id] = await run_in_threadpool(_public_key, db, key_id)
        return lookups[key_id]

    key_id = request.headers.get("x-fundtrail-key-id") or ""
    if key_id:
        await lookup(key_id)
    try:
        verified = verify_request(
            request.headers,
            request.method,
            signed_path(request),
            body,
            lambda k: lookups.get(k),
            guard=state.guard,
            now=datetime.now(UTC),
        )
    except (InputError, IntegrityError) as error:
        log.info("refused a cooperation call to %s: %s", request.url.path, error)
        raise Unauthenticated(f"signed request refused: {error}") from None
    return PartnerCall(verified, body, db)


Partner = Annotated[PartnerCall, Depends(partner_call)]


@router.get("/agency", operation_id="cooperation_agency", summary="This agency, as partners know it")
def agency(request: Request) -> dict[str, Any]:
    """Name, country, key id and Ed25519 public key (public: partners record them in their agreement)."""
    with operation(case_db(request), None, user_required=False) as ctx:
        return agency_identity(ctx).to_dict()


@router.post("/audit/witness", operation_id="cooperation_witness_head",
             summary="Countersign a partner's signed audit tree head")
def witness_head(call: Partner) -> dict[str, Any]:
    """The partner sends its newest signed tree head and a consistency proof from the last head this
    agency countersigned for it; the head is countersigned only when it extends that one (409 when the
    partner's log was rolled back or forked). The witness learns a size, a root and a time, no case data."""
    from fundtrail.audit import log as audit_log
    from fundtrail.sharing.witness import cosign

    document = call.json()
    with operation(call.db, None, user_required=False) as ctx:
        answer = cosign(ctx, call.key_id, document)
        head = document["head"]
        audit_log.append(ctx.session, call.actor, "audit.witness", "audit_head", str(head.get("tree_size")),
                         details={"root_hash": head.get("root_hash")}, at=ctx.now, key=ctx.key)
        return answer


@router.post(
    "/packages",
    operation_id="cooperation_receive_package",
    status_code=201,
    summary="Receive a signed STIX package",
)
def receive_package(call: Partner) -> dict[str, Any]:
    """A partner sends a STIX bundle holding its signed envelope; it is verified whole, then stored."""
    from fundtrail.sharing.service import import_package, received_from_objects, record_rejection

    received = None
    try:
        document = call.json()
        if not isinstance(document, dict) or document.get("type") != "bundle":
            raise IntegrityError("the body must be a STIX 2.1 bundle")
        received = received_from_objects(list(document.get("objects") or []), "posted package")
        with operation(call.db, None, user_required=False) as ctx:
            result = import_package(ctx, received, transport="api", actor=call.actor)
            return result.to_dict()
    except FundTrailError as error:
        with operation(call.db, None, user_required=False) as ctx:
            record_rejection(
                ctx,
                "api",
                error,
                actor=call.actor,
                transport="api",
                envelope=received.envelope if received else None,
            )
        raise


@router.post("/psi", operation_id="cooperation_psi", summary="Answer a deconfliction query (PSI)")
def psi_query(call: Partner, request: Request) -> dict[str, Any]:
    """Blind the partner's blinded items with a fresh key and send back our blinded set (never in clear)."""
    from fundtrail.sharing import legal_requests, psi
    from fundtrail.sharing.service import audit_as

    body = call.json()
    with operation(call.db, None, user_required=False) as ctx:
        row = agreement_for_partner(ctx, call.key_id)
        legal_requests.need_addresses(row, ctx)
        held = psi.held_addresses(ctx)
        result = psi.answer_query(held.keys(), body.get("request") if isinstance(body, dict) else None)
        result.session = sharing_state(request).psi_sessions().open(call.key_id, result.client_items)
        audit_as(
            ctx,
            "cooperation.psi.answer",
            "deconfliction",
            None,
            actor=call.actor,
            details={
                "agreement": row.name,
                "partner": row.partner_name,
                "client_items": result.client_items,
                "server_items": result.server_items,
            },
        )
        return result.to_dict()


@router.post("/psi/contacts", operation_id="cooperation_psi_contacts", summary="Contacts for PSI matches")
def psi_contacts(call: Partner, request: Request) -> dict[str, Any]:
    """The cases and contacts behind the matches the partner found (only for what we really hold)."""
    from fundtrail.sharing import psi
    from fundtrail.sharing.service import audit_as

    body = call.json()
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise InputError("items: a list of {chain, address} is required")
    keys = []
    for item in body["items"]:
        if not isinstance(item, dict):
            raise InputError("items: each item is {chain, address}")
        keys.append(psi.item_key(str(item.get("chain")), str(item.get("address"))))
    sharing_state(request).psi_sessions().close(str(body.get("session") or ""), call.key_id, len(keys))
    with operation(call.db, None, user_required=False) as ctx:
        row = agreement_for_partner(ctx, call.key_id)
        found = psi.contacts(ctx, keys)
        audit_as(
            ctx,
            "cooperation.psi.contacts",
            "deconfliction",
            None,
            actor=call.actor,
            details={
                "agreement": row.name,
                "partner": row.partner_name,
                "asked": len(keys),
                "revealed": [
                    {"chain": f["chain"], "address": f["address"], "cases": [c["case"] for c in f["cases"]]}
                    for f in found
                ],
            },
        )
        return {"matches": found}


@router.post(
    "/requests",
    operation_id="cooperation_receive_request",
    status_code=201,
    summary="Receive a partner's legal request",
)
def receive_request(call: Partner) -> dict[str, Any]:
    """A partner's request (freeze, preservation, disclosure ...) goes into the inbox with its deadline."""
    from fundtrail.sharing import legal_requests

    with operation(call.db, None, user_required=False) as ctx:
        inbox = legal_requests.receive_request(ctx, call.key_id, call.json())
        return {
            "number": inbox.number,
            "answer_due": inbox.answer_due.isoformat() if inbox.answer_due else None,
        }


RequestNumber = Annotated[str, Path(min_length=1, max_length=40, description="Our request number.")]


def _as_author(call: PartnerCall, number: str) -> str:
    from fundtrail.sharing import legal_requests

    with operation(call.db, None, user_required=False) as ctx:
        return legal_requests.request_author(ctx, number, call.key_id)


@router.post(
    "/requests/{number}/acknowledgement",
    operation_id="cooperation_acknowledged",
    summary="The partner acknowledged our request",
)
def acknowledged(number: RequestNumber, call: Partner) -> dict[str, Any]:
    """Our request moves to acknowledged (recorded as the partner's message)."""
    from fundtrail.sharing import legal_requests

    author = _as_author(call, number)
    with operation(call.db, author) as ctx:
        req = legal_requests.on_acknowledged(ctx, number, call.key_id)
        return {"number": req.number, "state": req.state}


@router.post(
    "/requests/{number}/answer",
    operation_id="cooperation_answered",
    summary="The partner answered our request",
)
def answered(number: RequestNumber, call: Partner) -> dict[str, Any]:
    """Our request is answered or refused; frozen amounts go into the recovery ledger."""
    from fundtrail.sharing import legal_requests

    message = legal_requests.parse_message(legal_requests.AnswerMessage, call.json())
    author = _as_author(call, number)
    with operation(call.db, author) as ctx:
        req = legal_requests.on_answered(ctx, number, call.key_id, message)
        return {"number": req.number, "state": req.state}


@router.get("/inbox", operation_id="cooperation_inbox", summary="Requests received from partners")
def inbox(
    request: Request,
    principal: Annotated[Any, Depends(allowed(Action.REQUEST_HANDLE))],
    state: Annotated[
        str | None, Query(max_length=20, description="received, acknowledged, answered, refused")
    ] = None,
) -> list[dict[str, Any]]:
    """The inbox, earliest deadline first."""
    from fundtrail.sharing import legal_requests

    with operation(case_db(request), principal.username) as ctx:
        return [legal_requests.inbox_doc(p) for p in legal_requests.list_inbox(ctx, state=state)]
