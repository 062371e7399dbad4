"""Pydantic schemas at the API's edge: request bodies, response documents, problem details.

Amounts are strings of base units (exact integers), as everywhere in FundTrail. Response documents that
the analysis services build declare their main fields and allow more (``extra="allow"``), so that a
service adding a field does not break the API. Their parts (a trace's flows, an address's sections, a
case's subjects ...) are ``TypedDict``s: the OpenAPI document says what each holds, and the JSON stays
exactly what the service built (a key the service leaves out stays out, instead of becoming ``null``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, Literal, NotRequired, TypeVar

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from fundtrail.analysis.paths import PATH_LIMIT
from fundtrail.analysis.tracing.params import (
    ASSET_LENGTH_LIMIT,
    DEFAULT_HUB_DEGREE,
    DEFAULT_MAX_HOPS,
    DEFAULT_MAX_STEPS,
    DEFAULT_MIN_CONFIDENCE,
    HUB_DEGREE_LIMIT,
    MAX_HOPS_LIMIT,
    MAX_STEPS_LIMIT,
    MIN_VALUE_LIMIT,
    TIME_LIMIT,
    TraceParams,
)
from fundtrail.domain.taint import Direction, TaintPolicy

T = TypeVar("T")

MAX_PAGE = 500
"""The largest ``limit`` any list accepts."""

Amount = str
"""An exact amount: a string of base units (satoshi, wei)."""

When = datetime | date | str
"""A time or date (ISO 8601 in the JSON)."""


OPEN = ConfigDict(extra="allow")
"""Parts of documents keep keys they do not declare (a service may add one)."""

# ------------------------------------------------------------------------------------------ document parts


@with_config(OPEN)
class PathFlow(TypedDict):
    """One movement along a path found between two addresses (a trace flow without the tainted value)."""

    txid: str
    asset: str
    value: Amount
    hop: int
    step: int


@with_config(OPEN)
class PathParameters(TypedDict):
    """The options a path search ran with."""

    max_hops: int
    max_steps: int
    min_value: Amount
    since: int | None
    until: int | None
    hub_degree: int
    limit: int


@with_config(OPEN)
class FoundPath(TypedDict):
    """One path: its owner hops, its transactions and the smallest value along it."""

    hops: int
    steps: int
    value: Amount
    flows: list[PathFlow]


@with_config(OPEN)
class DeconflictionContact(TypedDict):
    """Whom to call about a subject another case holds."""

    name: str
    unit: str
    email: str | None


@with_config(OPEN)
class DeconflictionHit(TypedDict):
    """Another case of the agency that already holds the subject."""

    case: str
    status: str
    unit: str
    contact: DeconflictionContact


RequestTransition = TypedDict("RequestTransition", {
    "from": str | None,
    "to": str,
    "by": str,
    "at": datetime | str,
    "reason": str | None,
})
"""One step of a request's history: from which state to which, by whom, when, why."""


@with_config(OPEN)
class SignedTreeHead(TypedDict):
    """A signed tree head of the audit log (RFC 9162 shape): what an auditor keeps."""

    log: str
    tree_size: int
    root_hash: str
    timestamp: str
    key_id: str
    signature: str


@with_config(OPEN)
class WitnessedTreeHead(TypedDict):
    """The newest head of ours a partner countersigned, and whether the log still extends it."""

    witness: str
    tree_size: int
    root_hash: str
    timestamp: str
    witnessed_at: str
    cosignature_trusted: bool
    extended: bool


@with_config(OPEN)
class TraceParameters(TypedDict):
    """The options a trace ran with (:class:`fundtrail.analysis.tracing.TraceParams`)."""

    direction: str
    policy: str
    max_hops: int
    max_steps: int
    min_value: Amount
    since: int | None
    until: int | None
    asset: str | None
    stop_at_services: bool
    hub_degree: int
    follow_change: bool
    follow_conversions: NotRequired[bool]
    min_confidence: NotRequired[float]


@with_config(OPEN)
class TraceEndpoint(TypedDict):
    """Where traced value rests or where the trace stopped, with who is behind it (``chain`` when the
    trace crossed conversions; ``sanctioned``, ``sanctions_lists`` and ``sanctions`` (address, list,
    listed_on) when a list in force on the day of the transactions that reached it names the address)."""

    chain: NotRequired[str]
    address: str | None
    txid: str | None
    asset: str
    cluster: str | None
    entity: str | None
    category: str | None
    jurisdiction: str | None
    tainted_value: Amount
    hops: int
    reason: str
    sanctioned: NotRequired[bool]
    sanctions_lists: NotRequired[list[str]]
    sanctions: NotRequired[list[dict[str, str]]]


@with_config(OPEN)
class FlowInput(TypedDict):
    """One input of a multi-input transaction a flow leaves (``value`` and ``address`` are null when the
    store lacks the output it spends); ``tainted_value`` is the traced value it brought."""

    input: int
    address: str | None
    value: Amount | None
    tainted_value: Amount


TraceFlow = TypedDict("TraceFlow", {
    "chain": NotRequired[str],
    "txid": str,
    "from": str | None,
    "to": str | None,
    "asset": str,
    "value": Amount,
    "tainted_value": Amount,
    "hop": int,
    "step": int,
    "same_owner": NotRequired[str],
    "output": NotRequired[int],
    "input": NotRequired[int],
    "index": NotRequired[int],
    "kind": NotRequired[str],
    "inputs": NotRequired[list[FlowInput]],
    "sanctioned": NotRequired[bool],
    "sanctions_lists": NotRequired[list[str]],
    "sanctions": NotRequired[list[dict[str, str]]],
    "evidence": list[str],
})
"""One movement of traced value: ``hop`` counts owner hand-overs, ``step`` transactions (or transfers);
``same_owner`` names the rule (change, peel_chain, cluster) that kept a step inside one owner; ``output``
(UTXO forward), ``input`` (UTXO backward) or ``index`` and ``kind`` (account transfers) place it;
``inputs`` (UTXO forward, a transaction with several inputs) lists every input, ``from`` being the one
that brought the most traced value."""
TraceFlow.__pydantic_config__ = OPEN  # type: ignore[attr-defined]  # with_config, functional form


@with_config(OPEN)
class TraceStop(TypedDict):
    """An endpoint where the trace was cut short (a service, a hub, a CoinJoin, a limit)."""

    address: NotRequired[str | None]
    txid: NotRequired[str]
    reason: str
    asset: str
    tainted_value: Amount
    hops: int
    degree: NotRequired[int]
    entity: NotRequired[str | None]
    category: NotRequired[str | None]


@with_config(OPEN)
class AssetTotals(TypedDict):
    """Per asset: value seeded, at endpoints (and by reason), paid as fees, counted twice (overlap)."""

    seeded: Amount
    endpoints: Amount
    fees: Amount
    overlap: Amount
    by_reason: dict[str, Amount]


@with_config(OPEN)
class TraceTotals(TypedDict):
    """Counts, and totals per asset."""

    flows: int
    endpoints: int
    stopped: int
    assets: dict[str, AssetTotals]


@with_config(OPEN)
class ClusterSection(TypedDict):
    """The cluster of an address: its id, naming address, size and why."""

    cluster_id: int
    address: str | None
    size: int
    reason: str | None


@with_config(OPEN)
class TagDoc(TypedDict, total=False):
    """An attribution tag: what it says, how sure, where from, and whether it applies through the cluster."""

    chain: str
    address: str
    label: str | None
    category: str | None
    abuse: str | None
    actor: str | None
    entity: str | None
    jurisdiction: str | None
    confidence: str | None
    confidence_level: int | None
    source: str | None
    tagpack: str | None
    tagpack_title: str | None
    lastmod: When | None
    via_cluster: bool
    cluster_addresses: int | None
    how: str


@with_config(OPEN)
class SanctionMatch(TypedDict, total=False):
    """A sanctions-list entry that names the address."""

    chain: str
    address: str
    address_as_listed: str
    list_name: str
    asset_code: str | None
    source: str | None
    first_listed_on: When | None
    last_listed_on: When | None
    latest_snapshot: When | None
    is_listed: bool
    is_valid: bool
    problem: str | None
    same_chain: bool


@with_config(OPEN)
class SanctionsSection(TypedDict):
    """Whether the address is on a sanctions list now, and every entry that ever named it."""

    sanctioned: bool
    matches: list[SanctionMatch]


@with_config(OPEN)
class CategoryExposure(TypedDict):
    """Value to or from one category of counterparty, its share, how many counterparties."""

    value: Amount
    share: float
    counterparties: int


@with_config(OPEN)
class SideExposure(TypedDict):
    """Received or sent: the total and its part per category."""

    total: Amount
    by_category: dict[str, CategoryExposure]


@with_config(OPEN)
class AssetExposure(TypedDict):
    """Exposure of one asset, received and sent."""

    received: SideExposure
    sent: SideExposure


@with_config(OPEN)
class IndirectExposure(TypedDict, total=False):
    """Exposure found by tracing each way (whether it ran, and how); the other keys are assets
    (an :class:`AssetExposure` each)."""

    available: bool
    reason: str
    policy: str
    max_hops: int
    min_hops: int


@with_config(OPEN)
class ExposureSection(TypedDict):
    """Direct exposure per asset, and indirect exposure (by tracing)."""

    direct: dict[str, AssetExposure]
    indirect: IndirectExposure


@with_config(OPEN)
class RiskEvidence(TypedDict, total=False):
    """One fact behind an indicator (empty fields are left out)."""

    kind: str
    description: str
    txid: str
    height: int
    address: str
    counterparty: str
    value: Amount
    asset: str
    category: str
    label: str
    source: str
    confidence: int | float
    share: float


@with_config(OPEN)
class FiredIndicator(TypedDict):
    """A risk indicator that fired, with its evidence."""

    id: str
    title: str
    description: str
    source: str
    section: str
    weight: int | float
    floor: str
    summary: str
    occurrences: int
    parameters: dict[str, Any]
    evidence: list[RiskEvidence]


@with_config(OPEN)
class RiskSection(TypedDict):
    """The risk of an address: level, score, the indicators that fired, why, and notes."""

    level: str
    score: int | float
    indicators: list[FiredIndicator]
    explanation: list[str]
    notes: NotRequired[list[str]]


@with_config(OPEN)
class SubjectDoc(TypedDict, total=False):
    """A subject of a case, as the case shows it."""

    id: int
    kind: str
    chain: str | None
    value: str
    label: str | None
    role: str | None
    asset: str | None
    amount: Amount | None
    details: Any
    evidence: str | None
    source: str | None
    added_at: When | None


@with_config(OPEN)
class EvidenceRef(TypedDict, total=False):
    """An evidence item of a case, as the case lists it."""

    id: str
    title: str
    version: int
    supersedes: str | None
    tagmanifest_sha256: str
    created_at: When | None


@with_config(OPEN)
class RequestRef(TypedDict, total=False):
    """A legal request of a case, as the case lists it."""

    number: str
    type: str
    state: str
    recipient: str
    answer_due: When | None
    hold_until: When | None


@with_config(OPEN)
class LedgerRef(TypedDict, total=False):
    """A recovery-ledger entry of a case, as the case lists it."""

    id: int
    kind: str
    chain: str
    asset: str
    amount: Amount
    jurisdiction: str | None


@with_config(OPEN)
class EvidenceSignature(TypedDict, total=False):
    """The agency's Ed25519 signature of the package's tag manifest."""

    algorithm: str
    key_id: str
    public_key: str
    value: str
    signed_file: str


@with_config(OPEN)
class CustodyDoc(TypedDict, total=False):
    """A chain-of-custody event: what happened to the evidence, who, when and why."""

    event: str
    actor: str
    at: When | None
    reason: str | None
    details: Any


@with_config(OPEN)
class FileProblem(TypedDict, total=False):
    """A file of an evidence package that does not match its manifest."""

    path: str
    problem: str
    expected: str | None
    found: str | None


class Open(BaseModel):
    """A response document that may carry more fields than it declares."""

    model_config = ConfigDict(extra="allow")


class Strict(BaseModel):
    """A request body: unknown fields are refused, naming them."""

    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------ problems


class FieldProblem(BaseModel):
    """One bad field of a request."""

    field: str = Field(description="The field, dotted for nested ones (``seeds.0``).")
    location: str = Field(description="Where the field is: body, query, path or header.")
    message: str


class Problem(BaseModel):
    """An error answer (RFC 9457 problem details)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None


CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "content": {"application/problem+json": {}},
          "description": "Not possible in the current state, or someone else changed it meanwhile."}}
"""The documented 409 answer of routes that change state."""

# ------------------------------------------------------------------------------------------ pages


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items``, the ``total`` count and how to get the next page."""

    items: list[T]
    total: int = Field(description="How many items the whole list holds.")
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last page.")


def page_of(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """A page document for ``items`` (already cut to ``limit`` from ``offset``)."""
    following = offset + len(items)
    return {"items": items, "total": total, "limit": limit, "offset": offset,
            "next_offset": following if following < total else None}


# ------------------------------------------------------------------------------------------ auth


class LoginRequest(Strict):
    """A user name and password."""

    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class TokenIssued(BaseModel):
    """A new token; ``token`` is shown this once and stored only as a hash."""

    token: str
    token_type: Literal["bearer"] = "bearer"
    id: str
    name: str
    kind: str
    expires_at: str | None


class TokenInfo(BaseModel):
    """A token as listed (never its secret)."""

    id: str
    name: str
    kind: str
    username: str
    prefix: str = Field(description="The first characters of the token, to recognise it.")
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    active: bool


class TokenCreate(Strict):
    """A request for a new API token."""

    name: str = Field(min_length=1, max_length=100, description="What the token is for.")
    expires_in_days: int = Field(default=90, ge=1, le=366)
    username: str | None = Field(default=None, max_length=200,
                                 description="Admins only: the user the token is for (default: yourself).")


class Me(BaseModel):
    """The signed-in user."""

    username: str
    role: str
    unit: str | None
    jurisdiction: str | None
    display_name: str | None = None
    permissions: list[str]


class OidcLogin(Strict):
    """An OpenID Connect ID token from the configured issuer."""

    id_token: str = Field(min_length=10, max_length=20000)


class UserInfo(BaseModel):
    """A user as the admin sees it."""

    model_config = ConfigDict(extra="allow")
    username: str
    role: str
    unit: str | None
    jurisdiction: str | None
    active: bool
    has_password: bool


class PasswordSet(Strict):
    """A new password (at least 12 characters)."""

    password: str = Field(min_length=12, max_length=1000)


# ------------------------------------------------------------------------------------------ chain


class ChainSummary(Open):
    """What the chain store holds for one chain."""

    chain: str
    blocks: int
    min_height: int | None
    max_height: int | None
    txs: int
    addresses: int


class AssetActivity(BaseModel):
    """Received, sent and balance of one asset."""

    asset: str
    received: Amount
    sent: Amount
    balance: Amount


class AddressDocument(Open):
    """An address: activity per asset, and (when computed) its cluster, tags, sanctions, exposure, risk."""

    chain: str
    address: str
    balance: Amount
    received: Amount
    sent: Amount
    tx_count: int
    first_seen: int | None
    last_seen: int | None
    assets: list[AssetActivity]
    cluster: ClusterSection | None = None
    tags: list[TagDoc] | None = None
    sanctions: SanctionsSection | None = None
    exposure: ExposureSection | None = None
    risk: RiskSection | None = None


class RiskDocument(Open):
    """The risk of an address: level, score, the indicators that fired with their evidence, notes."""

    chain: str
    address: str
    level: str
    score: float | int
    indicators: list[FiredIndicator]
    notes: list[str]


class TagsDocument(BaseModel):
    """Tags that apply to an address (directly or through its cluster)."""

    chain: str
    address: str
    tags: list[TagDoc]


class TagPackInfo(Open):
    """An imported TagPack."""

    uri: str
    kind: str | None = None
    title: str | None = None
    creator: str | None = None
    tags: int | None = None


class ClusterMember(BaseModel):
    """One address of a cluster and why it is in it."""

    address: str
    address_id: int
    reason: str | None


class ClusterDocument(Open):
    """The cluster of an address, with one page of its members."""

    chain: str
    address: str
    cluster_id: int
    cluster_address: str | None
    size: int
    reasons: dict[str, int]
    limit: int
    offset: int
    next_offset: int | None
    members: list[ClusterMember]


class TransactionDocument(Open):
    """A transaction with its inputs and outputs (UTXO chains) or transfers (account chains)."""

    chain: str
    txid: str
    height: int | None
    block_hash: str | None
    time: int | None
    fee: Amount | None


# ------------------------------------------------------------------------------------------ traces


HOPS_DESCRIPTION = ("Owner hops: hand-overs between owners. A spend to the sender's own change (a detected "
                    "change output, the next step of a peel chain, the sender's co-spend cluster) uses none.")
STEPS_DESCRIPTION = "Transactions (UTXO) or transfers (accounts) to follow at most, whoever owns them."


class TraceOptions(Strict):
    """What to trace and how; values in base units, times in Unix seconds. The limits are those of
    :class:`fundtrail.analysis.tracing.TraceParams`, which the options become."""

    chain: str = Field(min_length=1, max_length=16, examples=["btc"])
    seeds: list[str] = Field(min_length=1, max_length=100,
                             description="Addresses, txids or txid:n outputs to trace from.")
    direction: Literal["forward", "backward"] = "forward"
    policy: Literal["haircut", "poison", "fifo"] = "haircut"
    max_hops: int = Field(default=DEFAULT_MAX_HOPS, ge=0, le=MAX_HOPS_LIMIT, description=HOPS_DESCRIPTION)
    max_steps: int = Field(default=DEFAULT_MAX_STEPS, ge=1, le=MAX_STEPS_LIMIT, description=STEPS_DESCRIPTION)
    min_value: int = Field(default=0, ge=0, le=MIN_VALUE_LIMIT)
    since: int | None = Field(default=None, ge=0, le=TIME_LIMIT)
    until: int | None = Field(default=None, ge=0, le=TIME_LIMIT)
    asset: str | None = Field(default=None, max_length=ASSET_LENGTH_LIMIT)
    stop_at_services: bool = True
    hub_degree: int = Field(default=DEFAULT_HUB_DEGREE, ge=1, le=HUB_DEGREE_LIMIT)
    follow_change: bool = True
    follow_conversions: bool = Field(default=True, description=(
        "Follow detected conversions (swaps, bridges, pools) onto their out asset and chain (forward)."))
    min_confidence: float = Field(default=DEFAULT_MIN_CONFIDENCE, ge=0, le=1,
                                  description="Follow only conversions at least this confident.")

    def trace_params(self) -> TraceParams:
        """The options as the one validated value tracing takes."""
        return TraceParams(direction=Direction(self.direction), policy=TaintPolicy(self.policy),
                           max_hops=self.max_hops, max_steps=self.max_steps, min_value=self.min_value,
                           since=self.since, until=self.until, asset=self.asset,
                           stop_at_services=self.stop_at_services, hub_degree=self.hub_degree,
                           follow_change=self.follow_change, follow_conversions=self.follow_conversions,
                           min_confidence=self.min_confidence)


class TraceRequest(TraceOptions):
    """A trace to run now (or in the background), possibly for a case."""

    case: str | None = Field(default=None, max_length=100,
                             description="The case the trace is for (recorded in its audit trail).")
    background: bool = Field(default=False, description="Answer 202 with a job at once instead of waiting.")


class TraceDocument(Open):
    """A finished trace: endpoints, flows, where it stopped, totals (the ``fundtrail trace`` document).

    A trace that crossed conversions also carries ``conversions``: each with its ``kind``, ``rule``,
    ``confidence``, ``candidates``, ``in`` and ``out`` sides (chain, txid, address, asset, value),
    ``tainted_in``, ``tainted_out`` and whether it was ``followed``; its flows and endpoints then name
    their ``chain``, and totals of other chains are keyed ``chain:asset``."""

    chain: str
    policy: str
    direction: str
    seeds: list[str]
    parameters: TraceParameters
    endpoints: list[TraceEndpoint]
    flows: list[TraceFlow]
    stopped: list[TraceStop]
    totals: TraceTotals


class PathRequest(Strict):
    """Find value-carrying paths between two addresses."""

    chain: str = Field(min_length=1, max_length=16, examples=["btc"])
    source: str = Field(min_length=1, max_length=200)
    target: str = Field(min_length=1, max_length=200)
    max_hops: int = Field(default=DEFAULT_MAX_HOPS, ge=0, le=MAX_HOPS_LIMIT, description=HOPS_DESCRIPTION)
    max_steps: int = Field(default=DEFAULT_MAX_STEPS, ge=1, le=MAX_STEPS_LIMIT, description=STEPS_DESCRIPTION)
    min_value: int = Field(default=0, ge=0, le=MIN_VALUE_LIMIT)
    since: int | None = Field(default=None, ge=0, le=TIME_LIMIT)
    until: int | None = Field(default=None, ge=0, le=TIME_LIMIT)
    hub_degree: int = Field(default=DEFAULT_HUB_DEGREE, ge=1, le=HUB_DEGREE_LIMIT)
    limit: int = Field(default=10, ge=1, le=PATH_LIMIT)
    background: bool = False

    def trace_params(self) -> TraceParams:
        """The search options as the one validated value path search takes."""
        return TraceParams(max_hops=self.max_hops, max_steps=self.max_steps, min_value=self.min_value,
                           since=self.since, until=self.until, hub_degree=self.hub_degree)


class PathsDocument(Open):
    """The paths found from ``source`` to ``target``."""

    chain: str
    source: str
    target: str
    parameters: PathParameters
    found: int
    paths: list[FoundPath]


class JobAccepted(BaseModel):
    """Work that continues in the background; poll ``location``."""

    job_id: str
    kind: str
    status: str
    location: str


class JobDocument(BaseModel):
    """A background job: its status and, when done, its result (or the problem that stopped it)."""

    job_id: str
    kind: str
    status: Literal["running", "done", "failed"]
    created_at: str
    finished_at: str | None
    result: TraceDocument | PathsDocument | AddressDocument | None = None
    problem: Problem | None = None


# ------------------------------------------------------------------------------------------ cases

Severity = Literal["low", "medium", "high", "critical"]
CaseStatusName = Literal["open", "active", "suspended", "closed"]
Reason = Field(default=None, min_length=1, max_length=1000,
               description="Why you make this change; kept in the audit log (or send the X-Reason header).")


class CaseSummary(Open):
    """A case as listed, with its next deadline."""

    number: str
    title: str
    status: str
    severity: str
    jurisdiction: str
    unit: str
    lead_agency: str | None = None
    legal_hold: bool = False
    created_at: Any = None
    version: int
    next_deadline: str | None = Field(default=None, description="The earliest due date of its open requests.")
    overdue: bool = False


class CaseDocument(Open):
    """A case with its people, tasks, subjects, evidence, requests and recovery entries."""

    number: str
    title: str
    status: str
    severity: str
    jurisdiction: str
    unit: str
    version: int
    subjects: list[SubjectDoc]
    evidence: list[EvidenceRef]
    requests: list[RequestRef]
    ledger: list[LedgerRef]


class CaseCreate(Strict):
    """A new case; the opener becomes its lead."""

    title: str = Field(min_length=1, max_length=300)
    severity: Severity = "medium"
    jurisdiction: str | None = Field(default=None, min_length=2, max_length=2,
                                     description="ISO 3166-1 alpha-2 (default: yours). Cases are opened in "
                                                 "your own jurisdiction: another answers 403.")
    unit: str | None = Field(default=None, min_length=1, max_length=200,
                             description="Default: yours. Cases are opened in your own unit: another "
                                         "answers 403.")
    lead_agency: str | None = Field(default=None, max_length=200)
    offence: str | None = Field(default=None, max_length=300)
    summary: str | None = Field(default=None, max_length=20000)
    reason: str | None = Reason


class CaseUpdate(Strict):
    """Changes to a case; ``expected_version`` refuses the change if someone else changed it meanwhile."""

    expected_version: int | None = Field(default=None, ge=1, le=2**31)
    title: str | None = Field(default=None, min_length=1, max_length=300)
    severity: Severity | None = None
    offence: str | None = Field(default=None, max_length=300)
    summary: str | None = Field(default=None, max_length=20000)
    status: CaseStatusName | None = None
    reason: str | None = Reason


class Subject(Open):
    """A subject of a case: an address, transaction, person, company or exchange account."""

    id: int
    kind: str
    chain: str | None
    value: str
    label: str | None = None
    role: str | None = None
    asset: str | None = None
    amount: Amount | None = None


class SubjectCreate(Strict):
    """A new subject; the answer says which other cases already hold it (deconfliction)."""

    kind: Literal["address", "transaction", "person", "company", "exchange_account"]
    value: str = Field(min_length=1, max_length=300)
    chain: str | None = Field(default=None, min_length=1, max_length=16)
    label: str | None = Field(default=None, max_length=300)
    role: str | None = Field(default=None, max_length=40, description="e.g. victim, suspect, cash-out")
    asset: str | None = Field(default=None, max_length=100)
    amount: str | None = Field(default=None, pattern=r"^[0-9]{1,78}$", description="Base units, digits only.")
    source: str | None = Field(default=None, max_length=300)
    reason: str | None = Reason


class SubjectAdded(BaseModel):
    """The subject added, and the other cases of the agency that hold it too."""

    subject: Subject
    deconfliction: list[DeconflictionHit]


# ------------------------------------------------------------------------------------------ requests


class RequestSummary(Open):
    """A legal request as listed."""

    number: str
    case: str
    type: str
    state: str
    recipient: str
    answer_due: Any = None
    hold_until: Any = None


class RequestDocument(Open):
    """A legal request with its subjects and history (every transition: from, to, by, when, why)."""

    number: str
    case: str
    type: str
    state: str
    instrument: str
    recipient: str
    author: str
    approved_by: str | None
    answer_due: Any = None
    hold_until: Any = None
    version: int
    history: list[RequestTransition]
    actions: list[str] = Field(default_factory=list, description="What can happen to it next.")


class RequestDraft(Strict):
    """A new request on a case: preservation, freeze, disclosure or mutual legal assistance."""

    type: Literal["preservation", "freeze", "disclosure", "mla"]
    recipient: str = Field(min_length=1, max_length=300,
                           description="Who receives it (an exchange, an agency).")
    recipient_jurisdiction: str | None = Field(default=None, min_length=2, max_length=2)
    recipient_contact: str | None = Field(default=None, max_length=2000)
    instrument: str | None = Field(default=None, max_length=64,
                                   description="The governing instrument (default: the type's).")
    agreement: str | None = Field(default=None, max_length=100)
    language: str = Field(default="en", min_length=2, max_length=10)
    subject_matter: str | None = Field(default=None, max_length=2000)
    facts: str | None = Field(default=None, max_length=20000)
    measures: str | None = Field(default=None, max_length=5000)
    evidence: str | None = Field(default=None, max_length=64, description="An evidence item to attach.")
    subjects: list[int] | None = Field(default=None, max_length=200,
                                       description="Subject ids (default: the case's on-chain subjects).")
    reason: str | None = Reason


class ReasonBody(Strict):
    """Why you do this; kept in the audit log (or send the X-Reason header)."""

    reason: str | None = Reason


class RequestStep(Strict):
    """Why you take this step (kept in the request's history and the audit log), and the outcome."""

    reason: str | None = Reason
    outcome: str | None = Field(default=None, max_length=5000,
                                description="For answer and refuse: what the recipient said or did.")


class DueItem(Open):
    """A deadline that is overdue or due soon."""

    request: str
    case: str
    type: str
    state: str
    recipient: str
    deadline: str
    due: str
    status: str
    days_left: int


# ------------------------------------------------------------------------------------------ evidence


class EvidenceSummary(Open):
    """An evidence item as listed."""

    id: str
    title: str
    version: int


class EvidenceDocument(Open):
    """An evidence item: its files' hashes, signature, parameters and chain of custody."""

    id: str
    case: str
    kind: str
    title: str
    version: int
    tagmanifest_sha256: str
    signature: EvidenceSignature
    custody: list[CustodyDoc]


class EvidenceCheckDocument(Open):
    """What verifying an evidence item found."""

    evidence: str
    ok: bool
    signature_ok: bool
    files: list[FileProblem]
    problems: list[str]


class PreserveRequest(TraceOptions):
    """Trace and preserve the trace as evidence of the case (a signed BagIt package)."""

    title: str | None = Field(default=None, max_length=300)
    description: str | None = Field(default=None, max_length=5000)
    add_subjects: bool = Field(default=False, description="Add the trace's endpoints as subjects.")
    reason: str | None = Reason


# ------------------------------------------------------------------------------------------ recovery


class LedgerEntry(Open):
    """An amount frozen, seized, forfeited or returned, with its legal basis."""

    id: int
    case: str
    kind: str
    chain: str
    asset: str
    amount: Amount
    jurisdiction: str


class LedgerEntryCreate(Strict):
    """A new ledger entry; it needs its legal basis: a request of the case or a court order."""

    kind: Literal["frozen", "seized", "forfeited", "returned"]
    chain: str = Field(min_length=1, max_length=16)
    amount: str = Field(pattern=r"^[0-9]{1,78}$", description="Base units (satoshi, wei), digits only.")
    asset: str = Field(default="native", min_length=1, max_length=100)
    jurisdiction: str | None = Field(default=None, min_length=2, max_length=2)
    holder: str | None = Field(default=None, max_length=300, description="Who holds the assets now.")
    request: str | None = Field(default=None, max_length=40, description="The request behind it.")
    court_order: str | None = Field(default=None, max_length=300, description="Or the court order behind it.")
    note: str | None = Field(default=None, max_length=5000)
    reason: str | None = Reason


class ReportRow(Open):
    """A total of the public recovery report, per kind, chain, asset and jurisdiction."""

    kind: str
    chain: str
    asset: str
    jurisdiction: str
    amount: Amount
    amount_display: str
    cases: int
    entries: int


# ------------------------------------------------------------------------------------------ audit


class AuditRecordDoc(Open):
    """One record of the audit log."""

    seq: int
    at: str
    actor: str
    action: str
    object_type: str
    object_id: str | None
    case_number: str | None
    reason: str | None


class AuditVerification(Open):
    """Whether the audit log is intact, and the first bad record or head when it is not."""

    intact: bool
    records: int
    root_hash: str
    signed_heads: int
    newest_head: SignedTreeHead | None
    newest_witnessed_head: WitnessedTreeHead | None
    first_bad_record: int | None
    problem: str | None


class AlertDocument(Open):
    """An alert raised by a watch (the ``fundtrail alerts list --format json`` document), with its drafted
    freeze request and the request's answer clock."""

    id: int
    kind: str = Field(description="moved, at_service, sanctioned, mixer or bridge.")
    chain: str
    txid: str | None
    address: str | None
    entity: str | None
    jurisdiction: str | None
    value: str | None = Field(description="Base units (exact, as a string).")
    watch: int
    case: str | None
    at: str
    request: str | None
    clock_started_at: str | None = Field(
        None,
        description="at_service: when the funds arrived at the service (the block's time); the freeze clock "
        "starts here, before the request is sent.",
    )
    freeze_due: str | None = Field(
        description="at_service with a drafted request: its answer date once sent, before that the due date "
        "its instrument's deadline rule gives from clock_started_at."
    )
