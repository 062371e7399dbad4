"""Deconfliction without disclosure: which of my case addresses does a partner also hold in a case?

Private set intersection (ECDH-PSI, OpenMined's ``openmined-psi``) between the asking agency (the client)
and the holder (the server), then contacts for the matches only::

    asker                                              holder
    items = chain:address of its case subjects
    request = client.CreateRequest(items)   --POST /cooperation/psi-->  (fresh server key per query)
                                                       setup = CreateSetupMessage(0, |request|, held)
                                            <--------  response = ProcessRequest(request), session id
    matches = client.GetIntersection(setup, response)
    --POST /cooperation/psi/contacts {session, matches}-->  contacts of the holder's cases, for the
                                            <--------  matches it really holds (nothing else)

Every item is hashed to the curve and blinded with a secret exponent before it leaves either side, so
the asker learns which of its own items the holder holds (and how many items the holder holds), and the
holder learns how many items the asker asked about; neither learns the other's other items. The
holder's items are only its own case subjects (never what partners sent it). Revealing contacts is a
second, deliberate step: the asker names the matches, which the holder then learns (and audits).
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from fundtrail.cases.context import Context
from fundtrail.cases.models import Assignment, Case, Subject, User
from fundtrail.cases.users import agency
from fundtrail.domain.addresses import canonical_address
from fundtrail.errors import InputError, IntegrityError
from fundtrail.sharing.content import PACKAGE_SOURCE_PREFIX

log = logging.getLogger(__name__)

MAX_CLIENT_ITEMS = 10_000
"""The most items one query may ask about (bounds what one query can probe, and the work it costs)."""

SESSION_SECONDS = 600
"""How long the holder remembers a query for the contacts step."""


def _psi() -> Any:
    try:
        import private_set_intersection.python as psi
    except ImportError as error:  # pragma: no cover - an extra of the sharing layer
        raise InputError(
            "deconfliction needs the openmined-psi package: pip install 'fundtrail[sharing]'"
        ) from error
    return psi


def item_key(chain: str, address: str) -> str:
    """The text both sides put in their sets for an address: ``chain:canonical address``."""
    return f"{chain}:{canonical_address(chain, address)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise InputError(f"{what} must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise InputError(f"{what} is not base64") from None


@dataclass
class PsiQuery:
    """The asking side of one query: its secret client key and its items (in the order sent)."""

    items: list[tuple[str, str]]
    client: Any = field(repr=False)
    request: str

    def matches(self, setup_b64: str, response_b64: str) -> list[tuple[str, str]]:
        """The asker's items that the holder also holds."""
        psi = _psi()
        setup, response = psi.ServerSetup(), psi.Response()
        try:
            setup.ParseFromString(_unb64(setup_b64, "setup"))
            response.ParseFromString(_unb64(response_b64, "response"))
            indices = self.client.GetIntersection(setup, response)
        except Exception as error:  # the library raises plain RuntimeErrors on malformed messages
            raise IntegrityError(f"the partner's PSI answer cannot be used: {error}") from None
        return [self.items[i] for i in sorted(set(indices)) if 0 <= i < len(self.items)]


def start_query(items: Iterable[tuple[str, str]]) -> PsiQuery:
    """A query over ``(chain, address)`` items (canonical, each once)."""
    psi = _psi()
    keyed = sorted({(chain, canonical_address(chain, address)) for chain, address in items})
    if not keyed:
        raise InputError("nothing to deconflict: the case holds no addresses")
    if len(keyed) > MAX_CLIENT_ITEMS:
        raise InputError(f"{len(keyed)} addresses: a query may hold at most {MAX_CLIENT_ITEMS}")
    client = psi.client.CreateWithNewKey(True)
    request = client.CreateRequest([f"{c}:{a}" for c, a in keyed]).SerializeToString()
    return PsiQuery(keyed, client, _b64(request))


@dataclass
class PsiAnswer:
    """The holder's answer to one query."""

    session: str
    setup: str
    response: str
    server_items: int
    client_items: int

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "session": self.session,
            "setup": self.setup,
            "response": self.response,
            "server_items": self.server_items,
            "client_items": self.client_items,
        }


def answer_query(held: Iterable[str], request_b64: object) -> PsiAnswer:
    """Answer a query against the ``held`` item keys, with a fresh server key (the session is set later)."""
    psi = _psi()
    request = psi.Request()
    try:
        request.ParseFromString(_unb64(request_b64, "request"))
    except Exception:  # protobuf's DecodeError
        raise InputError("the PSI request is not a valid message") from None
    n = len(request.encrypted_elements)
    if not 0 < n <= MAX_CLIENT_ITEMS:
        raise InputError(f"a PSI request must hold 1 to {MAX_CLIENT_ITEMS} items, this one holds {n}")
    server = psi.server.CreateWithNewKey(True)
    items = sorted(set(held))
    setup = server.CreateSetupMessage(0.0, n, items, psi.DataStructure.RAW)
    try:
        response = server.ProcessRequest(request)
    except Exception as error:
        raise InputError(f"the PSI request cannot be processed: {error}") from None
    return PsiAnswer("", _b64(setup.SerializeToString()), _b64(response.SerializeToString()), len(items), n)


def held_addresses(ctx: Context) -> dict[str, list[Subject]]:
    """The agency's own case addresses by item key (subjects that came from partners are left out)."""
    out: dict[str, list[Subject]] = {}
    rows = ctx.session.execute(select(Subject).where(Subject.kind == "address")).scalars()
    for s in rows:
        if not s.chain or (s.source or "").startswith(PACKAGE_SOURCE_PREFIX):
            continue
        try:
            out.setdefault(item_key(s.chain, s.value), []).append(s)
        except InputError:
            continue
    return out


def _lead(ctx: Context, case: Case) -> User:
    lead = (
        ctx.session.execute(
            select(User)
            .join(Assignment, Assignment.user_id == User.id)
            .where(Assignment.case_id == case.id, Assignment.role == "lead")
        )
        .scalars()
        .first()
    )
    return lead or case.created_by


def contacts(ctx: Context, keys: Iterable[str]) -> list[dict[str, Any]]:
    """For each key the agency holds: the cases holding it and whom to call (the case lead, the agency)."""
    held = held_addresses(ctx)
    settings = agency(ctx)
    out = []
    for key in sorted(set(keys)):
        subjects = held.get(key)
        if not subjects:
            continue
        chain, _, address = key.partition(":")
        cases = []
        for s in sorted(subjects, key=lambda x: x.case_id):
            case = s.case
            lead = _lead(ctx, case)
            cases.append(
                {
                    "case": case.number,
                    "status": case.status,
                    "unit": case.unit,
                    "contact": {
                        "name": lead.display_name,
                        "unit": lead.unit,
                        "email": lead.email,
                        "agency": settings.name if settings else case.lead_agency,
                        "agency_email": settings.email if settings else None,
                        "agency_phone": settings.phone if settings else None,
                    },
                }
            )
        out.append({"chain": chain, "address": address, "cases": cases})
    return out


class PsiSessions:
    """Queries the holder answered recently, so that a contacts request can refer to one (once)."""

    def __init__(self, ttl: float = SESSION_SECONDS) -> None:
        self.ttl = ttl
        self._open: dict[str, tuple[str, int, float]] = {}
        self._lock = threading.Lock()

    def open(self, partner_key_id: str, client_items: int) -> str:
        """A new session for a partner's query of ``client_items`` items."""
        session = secrets.token_urlsafe(18)
        now = time.monotonic()
        with self._lock:
            self._open = {k: v for k, v in self._open.items() if now - v[2] < self.ttl}
            self._open[session] = (partner_key_id, client_items, now)
        return session

    def close(self, session: str, partner_key_id: str, asked: int) -> None:
        """Use a session up; IntegrityError when unknown, expired, another partner's, or asking for more."""
        with self._lock:
            found = self._open.pop(session, None)
        if found is None or time.monotonic() - found[2] >= self.ttl or found[0] != partner_key_id:
            raise IntegrityError("no open deconfliction query with this session (unknown, used or expired)")
        if asked > found[1]:
            raise IntegrityError(f"{asked} contacts asked for a query of {found[1]} items")


def deconflict(ctx: Context, number: str, agreement_name: str, clients: Any = None) -> dict[str, Any]:
    """Ask the agreement's partner which addresses of case ``number`` it holds in its cases, and whom to
    call about them (see the module docstring)."""
    from fundtrail.domain.cases import Action
    from fundtrail.domain.sharing import DataCategory
    from fundtrail.sharing.agreements import get_agreement, require_category
    from fundtrail.sharing.partners import http_client
    from fundtrail.sharing.service import audit_as

    case = ctx.case(number, Action.READ_CASE)
    row = get_agreement(ctx, agreement_name)
    require_category(row, DataCategory.ADDRESSES_AND_TRANSACTIONS, ctx.now.date(), "deconfliction compares")
    items = [(s.chain, s.value) for s in case.subjects if s.kind == "address" and s.chain]
    query = start_query(items)
    client = (clients or http_client)(row, ctx.key)
    try:
        answer = client.call("POST", "/psi", {"request": query.request})
        matches = query.matches(str(answer.get("setup")), str(answer.get("response")))
        found: list[dict[str, Any]] = []
        if matches:
            reply = client.call(
                "POST",
                "/psi/contacts",
                {"session": answer.get("session"), "items": [{"chain": c, "address": a} for c, a in matches]},
            )
            found = list(reply.get("matches") or [])
    finally:
        client.close()
    asked = {f"{c}:{a}" for c, a in query.items}
    found = [f for f in found if f"{f.get('chain')}:{f.get('address')}" in asked]  # only what we asked about
    audit_as(
        ctx,
        "cooperation.psi.query",
        "case",
        case.number,
        case=case.number,
        details={
            "agreement": row.name,
            "partner": row.partner_name,
            "asked": len(query.items),
            "partner_holds": answer.get("server_items"),
            "matches": len(matches),
            "addresses": [f"{c}:{a}" for c, a in matches],
        },
    )
    return {
        "case": case.number,
        "partner": row.partner_name,
        "agreement": row.name,
        "asked": len(query.items),
        "partner_holds": answer.get("server_items"),
        "matches": found,
    }
