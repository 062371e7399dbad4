"""What a case holds that can be shared: wallets, transactions, traced flows, parties, tags, evidence.

:func:`gather` reads a case (its subjects, its preserved trace evidence with the tags preserved
beside each trace, its recovery ledger) into a :class:`CaseContent` that every exporter renders.
Preserved evidence, not the live chain store, is the source of flows and tags: what is shared is
what the case holds, reproducibly. Subjects that arrived from a partner carry their :class:`Origin`,
so that an export can check the partner's onward-sharing terms.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fundtrail.cases.context import Context
from fundtrail.cases.models import Case, EvidenceItem, LedgerEntry, Subject
from fundtrail.domain.cases import SubjectKind
from fundtrail.domain.custody import sha256_hex
from fundtrail.domain.sharing import DataCategory, Origin, PackageFormat, Tlp
from fundtrail.errors import IntegrityError
from fundtrail.sharing.models import SharedPackage
from fundtrail.sharing.retention import PACKAGE_SOURCE_PREFIX

log = logging.getLogger(__name__)

__all__ = ["PACKAGE_SOURCE_PREFIX", "CaseContent", "Flow", "Party", "Wallet", "gather", "origin_of"]


@dataclass
class Wallet:
    """An address the case holds or its traces touch."""

    chain: str
    address: str
    roles: set[str] = field(default_factory=set)
    entity: str | None = None
    category: str | None = None
    jurisdiction: str | None = None
    asset: str | None = None
    amount: int | None = None
    label: str | None = None
    abuse: str | None = None
    origin: Origin | None = None

    @property
    def is_seed(self) -> bool:
        """True for an address the crime paid into (a trace seed, or a subject with role seed)."""
        return "seed" in self.roles

    @property
    def is_endpoint(self) -> bool:
        """True where a trace stopped (a service, an unspent address ...)."""
        return any(r.startswith("endpoint") for r in self.roles)


@dataclass(frozen=True)
class Flow:
    """One traced movement of value: exact base units, as strings in every export."""

    chain: str
    txid: str
    source: str | None
    target: str | None
    asset: str
    value: int
    tainted_value: int
    hop: int


@dataclass
class Party:
    """A person, company or exchange account of the case (personal data)."""

    kind: SubjectKind
    value: str
    label: str | None
    role: str | None
    details: dict[str, Any]
    chain: str | None = None
    origin: Origin | None = None


@dataclass
class CaseContent:
    """Everything of a case an export may carry, before the agreement filters it."""

    number: str
    title: str
    summary: str | None
    offence: str | None
    jurisdiction: str
    lead_agency: str
    created_at: datetime
    wallets: dict[tuple[str, str], Wallet] = field(default_factory=dict)
    transactions: set[tuple[str, str]] = field(default_factory=set)
    flows: list[Flow] = field(default_factory=list)
    parties: list[Party] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[EvidenceItem] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)

    def wallet(self, chain: str, address: str) -> Wallet:
        """The wallet of ``address`` (added when new)."""
        key = (chain, address)
        if key not in self.wallets:
            self.wallets[key] = Wallet(chain, address)
        return self.wallets[key]

    @property
    def origins(self) -> tuple[Origin, ...]:
        """The partner packages whose data the case holds (each once)."""
        seen: dict[str, Origin] = {}
        for w in self.wallets.values():
            if w.origin is not None:
                seen.setdefault(w.origin.package_id, w.origin)
        for p in self.parties:
            if p.origin is not None:
                seen.setdefault(p.origin.package_id, p.origin)
        return tuple(seen[k] for k in sorted(seen))

    def categories_for(self, fmt: PackageFormat, allowed: frozenset[DataCategory]) -> frozenset[DataCategory]:
        """The categories an export in ``fmt`` would carry, given what the case holds and ``allowed``."""
        have: set[DataCategory] = set()
        if self.wallets or self.transactions:
            have.add(DataCategory.ADDRESSES_AND_TRANSACTIONS)
        if self.flows:
            have.add(DataCategory.TRACES)
        if self.tags or any(w.entity or w.abuse for w in self.wallets.values()):
            have.add(DataCategory.ATTRIBUTION_TAGS)
        if self.parties:
            have.add(DataCategory.PERSONAL_DATA)
        if self.evidence:
            have.add(DataCategory.EVIDENCE)
        return frozenset(have) & allowed


def origin_of(ctx: Context, source: str | None) -> Origin | None:
    """The origin of a subject whose source names a received package."""
    if not source or not source.startswith(PACKAGE_SOURCE_PREFIX):
        return None
    package_id = source[len(PACKAGE_SOURCE_PREFIX) :].split()[0]
    pkg = ctx.session.execute(
        select(SharedPackage).where(
            SharedPackage.package_id == package_id, SharedPackage.direction == "received"
        )
    ).scalar_one_or_none()
    if pkg is None:  # the package was deleted by retention: whatever it left keeps the strictest terms
        return Origin("unknown", "unknown", package_id, Tlp.RED, False)
    return Origin(pkg.agreement.name, pkg.sender_key_id, pkg.package_id, Tlp(pkg.tlp), pkg.onward_sharing)


def _latest_evidence(ctx: Context, case: Case) -> list[EvidenceItem]:
    items = (
        ctx.session.execute(
            select(EvidenceItem)
            .where(EvidenceItem.case_id == case.id)
            .order_by(EvidenceItem.item, EvidenceItem.version)
        )
        .scalars()
        .all()
    )
    latest: dict[int, EvidenceItem] = {}
    for ev in items:
        latest[ev.item] = ev
    return [latest[k] for k in sorted(latest)]


def _read_checked(home: Path, ev: EvidenceItem, name: str) -> bytes | None:
    path = home / ev.bag_path / name
    if not path.is_file():
        return None
    raw = path.read_bytes()
    expected = json.loads(ev.manifest).get(name)
    if expected is not None and sha256_hex(raw) != expected:
        raise IntegrityError(f"evidence {ev.id}: {name} does not match its preserved hash; it is not shared")
    return raw


def _add_trace(content: CaseContent, trace: dict[str, Any]) -> None:
    chain = str(trace.get("chain", ""))
    for seed in trace.get("seeds", []):
        if isinstance(seed, str) and ":" not in seed and len(seed) != 64:
            content.wallet(chain, seed).roles.add("seed")
    for f in trace.get("flows", []):
        flow = Flow(
            chain,
            str(f["txid"]),
            f.get("from"),
            f.get("to"),
            str(f.get("asset") or "native"),
            int(f.get("value") or 0),
            int(f.get("tainted_value") or 0),
            int(f.get("hop") or 0),
        )
        content.flows.append(flow)
        content.transactions.add((chain, flow.txid))
        for address in (flow.source, flow.target):
            if address:
                content.wallet(chain, address).roles.add("traced")
    for e in trace.get("endpoints", []):
        if not e.get("address"):
            continue
        w = content.wallet(chain, e["address"])
        w.roles.add(f"endpoint:{e.get('reason') or 'end'}")
        w.entity = w.entity or e.get("entity")
        w.category = w.category or e.get("category")
        w.jurisdiction = w.jurisdiction or e.get("jurisdiction")
        w.asset = e.get("asset") or w.asset
        if e.get("tainted_value") is not None:
            w.amount = (w.amount or 0) + int(e["tainted_value"])


def gather(ctx: Context, case: Case) -> CaseContent:
    """The shareable content of ``case`` (the caller checked the acting user may read it)."""
    content = CaseContent(
        case.number,
        case.title,
        case.summary,
        case.offence,
        case.jurisdiction,
        case.lead_agency,
        case.created_at,
    )
    for ev in _latest_evidence(ctx, case):
        content.evidence.append(ev)
        raw = _read_checked(ctx.home, ev, "data/trace.json")
        if raw is not None:
            trace = json.loads(raw)
            content.traces.append(trace)
            _add_trace(content, trace)
        tags = _read_checked(ctx.home, ev, "data/tags.jsonl")
        if tags:
            content.tags.extend(json.loads(line) for line in tags.splitlines() if line.strip())
    subjects = (
        ctx.session.execute(select(Subject).where(Subject.case_id == case.id).order_by(Subject.id))
        .scalars()
        .all()
    )
    for s in subjects:
        kind = SubjectKind(s.kind)
        origin = origin_of(ctx, s.source)
        details = json.loads(s.details) if s.details else {}
        if kind is SubjectKind.ADDRESS and s.chain:
            w = content.wallet(s.chain, s.value)
            w.roles.add(s.role or "subject")
            w.label = w.label or s.label
            if s.role and s.role.startswith("endpoint"):
                w.entity = w.entity or s.label
            w.category = w.category or details.get("category")
            w.jurisdiction = w.jurisdiction or details.get("jurisdiction")
            w.abuse = w.abuse or details.get("abuse")
            w.asset = w.asset or s.asset
            if w.amount is None and s.amount is not None:
                w.amount = s.amount
            if origin is not None:
                w.origin = origin
        elif kind is SubjectKind.TRANSACTION and s.chain:
            content.transactions.add((s.chain, s.value))
        elif kind.is_personal:
            content.parties.append(Party(kind, s.value, s.label, s.role, details, s.chain, origin))
    for entry in ctx.session.execute(
        select(LedgerEntry).where(LedgerEntry.case_id == case.id).order_by(LedgerEntry.id)
    ).scalars():
        content.ledger.append(
            {
                "kind": entry.kind,
                "chain": entry.chain,
                "asset": entry.asset,
                "amount": str(entry.amount),
                "jurisdiction": entry.jurisdiction,
                "holder": entry.holder,
            }
        )
    log.debug(
        "case %s: %d wallets, %d flows, %d parties, %d evidence items",
        case.number,
        len(content.wallets),
        len(content.flows),
        len(content.parties),
        len(content.evidence),
    )
    return content
