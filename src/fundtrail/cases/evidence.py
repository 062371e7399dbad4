"""Evidence and chain of custody: a trace frozen into a signed BagIt package that holds up in court.

Preserving a trace writes, under ``HOME/evidence/<id>/``, a BagIt package (RFC 8493, SHA-256
manifests) whose payload is:

* ``data/trace.json``: the trace document (flows, endpoints, seeds, parameters), canonical JSON;
* ``data/chain/<table>.jsonl``: the raw chain-store rows behind every transaction of the flows
  (``txs``, ``outputs`` (with the outputs their inputs spend), ``inputs``, ``transfers``, ``blocks``);
* ``data/tags.jsonl``: the attribution tags of the addresses the trace touches (directly, or through
  the clusters of its endpoints);
* ``data/parameters.json``: chain, seeds, trace parameters, software version, chain-store tips.

The database keeps the SHA-256 of every file of the package (payload and tag files) and an Ed25519
signature, by the agency key, over the bytes of the bag's ``tagmanifest-sha256.txt``, with the key id.
The audit record of its creation (``evidence.create``) holds the same digests, among them the SHA-256
of the tag manifest, so the signed audit log covers the bag. Every custody event (created, viewed,
exported, transferred, retraced, superseded) is recorded with who, when and why, and audited.
Evidence is immutable: a change makes a new version (``...-E001-v2``) that names the one it supersedes.

Verification (:func:`verify_evidence`, :func:`verify_package`) only reads. It accepts a signature only
by a key the home trusts (:mod:`fundtrail.audit.trust`: its own key, a partner key pinned for an
agreement, or a key the user names), never by a key because the case database or the package lists
it; every file in the bag must be in its manifests; and the creation record must be included under
the newest trusted signed tree head of the audit log, so that a bag, its row and its creation record
rewritten together are caught. It is the one read of case data that is not audited.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bagit
from sqlalchemy import func, select

from fundtrail import __version__
from fundtrail.audit import trust
from fundtrail.audit.keys import register, verify_signature
from fundtrail.audit.models import AuditRecord, SigningKey
from fundtrail.audit.trust import TrustedKey
from fundtrail.cases.cases import add_subject, touch
from fundtrail.cases.context import Context, case_logger
from fundtrail.cases.models import Case, CustodyEvent, EvidenceItem, Subject
from fundtrail.cases.users import agency
from fundtrail.domain.cases import Action
from fundtrail.domain.custody import (
    CustodyEventType,
    EvidenceId,
    FileDifference,
    canonical_json,
    compare_manifests,
    document_hash,
    sha256_hex,
)
from fundtrail.errors import InputError, IntegrityError, NotFoundError
from fundtrail.store.chainstore import ChainStore

if TYPE_CHECKING:
    from fundtrail.analysis.tracing import TraceParams

log = logging.getLogger(__name__)

TAGMANIFEST = "tagmanifest-sha256.txt"
CHAIN_TABLES = ("blocks", "txs", "outputs", "inputs", "transfers")
_ORDER = {
    "blocks": "chain, height",
    "txs": "chain, height, tx_index, txid",
    "outputs": "chain, txid, n",
    "inputs": "chain, txid, n",
    "transfers": "chain, height, transfer_index, txid",
}
TRACE_KEYS = ("chain", "seeds", "flows", "endpoints")


# ------------------------------------------------------------------------------------- the trace


def load_trace_file(path: Path) -> dict[str, Any]:
    """A trace document (``fundtrail trace --format json``) from a file; InputError naming what is wrong."""
    try:
        doc: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))  # checked below
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    check_trace(doc, str(path))
    return doc


def check_trace(doc: Any, source: str = "trace") -> None:
    """Raise InputError unless ``doc`` looks like a trace document."""
    if not isinstance(doc, dict):
        raise InputError(f"{source}: a trace document is a JSON object")
    missing = [k for k in TRACE_KEYS if k not in doc]
    if missing:
        raise InputError(f"{source}: not a trace document (missing {', '.join(missing)})")
    for i, flow in enumerate(doc["flows"]):
        if not isinstance(flow, dict) or not flow.get("txid"):
            raise InputError(f"{source}: flow {i} has no txid")


def trace_sha256(doc: Mapping[str, Any]) -> str:
    """The canonical JSON hash of a trace document (what retracing must reproduce)."""
    return document_hash(doc)


def run_trace(
    store: ChainStore, chain: str, seeds: list[str], parameters: TraceParams | Mapping[str, Any]
) -> dict[str, Any]:
    """Run a trace with the given options (or the ``parameters`` of a trace document); its JSON document."""
    from fundtrail.analysis.tracing import TraceParams, trace_funds

    params = parameters if isinstance(parameters, TraceParams) else TraceParams.from_dict(parameters)
    return trace_funds(store, chain, list(seeds), params).to_dict()


# ------------------------------------------------------------------------- raw records and tags


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else str(value)
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _rows(store: ChainStore, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = store.con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [{n: _jsonable(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def _has_table(store: ChainStore, name: str) -> bool:
    row = store.con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def trace_txids(doc: Mapping[str, Any]) -> list[str]:
    """Every transaction id of a trace's flows (and of endpoints that name one), sorted."""
    txids = {f["txid"] for f in doc["flows"] if f.get("txid")}
    txids |= {e["txid"] for e in doc.get("endpoints", []) if e.get("txid")}
    return sorted(txids)


def trace_addresses(doc: Mapping[str, Any]) -> list[str]:
    """Every address a trace touches: seeds, flow ends, endpoints; sorted."""
    out = {s for s in doc.get("seeds", []) if isinstance(s, str) and ":" not in s}
    for f in doc["flows"]:
        out |= {a for a in (f.get("from"), f.get("to")) if a}
    out |= {e["address"] for e in doc.get("endpoints", []) if e.get("address")}
    return sorted(out)


def export_chain_records(store: ChainStore, chain: str, txids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The chain-store rows behind ``txids``; InputError naming a txid the store does not hold."""
    con = store.con
    con.execute("CREATE OR REPLACE TEMP TABLE _ev_txids (txid VARCHAR)")
    try:
        if txids:
            con.executemany("INSERT INTO _ev_txids VALUES (?)", [[t] for t in txids])
        held = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT txid FROM txs WHERE chain = ? AND txid IN (SELECT txid FROM _ev_txids) "
                "UNION SELECT DISTINCT txid FROM transfers WHERE chain = ? "
                "AND txid IN (SELECT txid FROM _ev_txids)",
                [chain, chain],
            ).fetchall()
        }
        missing = [t for t in txids if t not in held]
        if missing:
            raise InputError(
                f"transaction {missing[0]} of the trace is not in the chain store ({chain}); "
                f"{len(missing)} missing in all: ingest the blocks that hold them first"
            )
        out: dict[str, list[dict[str, Any]]] = {}
        sel = "chain = ? AND txid IN (SELECT txid FROM _ev_txids)"
        out["txs"] = _rows(store, f"SELECT * FROM txs WHERE {sel} ORDER BY {_ORDER['txs']}", [chain])
        out["inputs"] = _rows(store, f"SELECT * FROM inputs WHERE {sel} ORDER BY {_ORDER['inputs']}", [chain])
        out["outputs"] = _rows(
            store,
            f"""
            SELECT o.* FROM outputs o WHERE o.chain = ? AND (o.txid IN (SELECT txid FROM _ev_txids)
               OR EXISTS (SELECT 1 FROM inputs i WHERE i.chain = o.chain
                          AND i.txid IN (SELECT txid FROM _ev_txids)
                          AND i.prev_txid = o.txid AND i.prev_n = o.n))
            ORDER BY {_ORDER["outputs"]}""",
            [chain],
        )
        out["transfers"] = _rows(
            store, f"SELECT * FROM transfers WHERE {sel} ORDER BY {_ORDER['transfers']}", [chain]
        )
        heights = sorted({r["height"] for t in ("txs", "outputs", "transfers") for r in out[t]})
        out["blocks"] = (
            _rows(
                store,
                f"SELECT * FROM blocks WHERE chain = ? AND height IN "
                f"(SELECT unnest(?::BIGINT[])) ORDER BY {_ORDER['blocks']}",
                [chain, heights],
            )
            if heights
            else []
        )
        return out
    finally:
        con.execute("DROP TABLE IF EXISTS _ev_txids")


def export_tags(
    store: ChainStore, chain: str, addresses: list[str], endpoints: list[str]
) -> list[dict[str, Any]]:
    """Tags on the trace's addresses, and on the cluster-mates of its endpoints (propagated attribution)."""
    if not _has_table(store, "tags") or not addresses:
        return []
    con = store.con
    con.execute("CREATE OR REPLACE TEMP TABLE _ev_addr (address VARCHAR, endpoint BOOLEAN)")
    try:
        con.executemany("INSERT INTO _ev_addr VALUES (?, ?)", [[a, a in set(endpoints)] for a in addresses])
        wanted = "SELECT address FROM _ev_addr"
        if _has_table(store, "clusters"):
            wanted += """ UNION SELECT m.address FROM _ev_addr e
                JOIN addresses a ON a.chain = $chain AND a.address = e.address AND e.endpoint
                JOIN clusters c ON c.chain = $chain AND c.address_id = a.id
                JOIN clusters c2 ON c2.chain = $chain AND c2.cluster_id = c.cluster_id
                JOIN addresses m ON m.chain = $chain AND m.id = c2.address_id
                WHERE EXISTS (SELECT 1 FROM tags t WHERE t.chain = $chain AND t.address = m.address)"""
        cur = con.execute(
            f"""SELECT * FROM tags WHERE chain = $chain AND address IN ({wanted})
                              ORDER BY address, tagpack, tag_index, label""",
            {"chain": chain},
        )
        names = [d[0] for d in cur.description]
        rows = []
        for row in cur.fetchall():
            doc = {n: _jsonable(v) for n, v in zip(names, row, strict=True)}
            if isinstance(doc.get("extra"), str):
                try:
                    doc["extra"] = json.loads(doc["extra"])
                except ValueError:
                    pass
            rows.append(doc)
        return rows
    finally:
        con.execute("DROP TABLE IF EXISTS _ev_addr")


def store_tips(store: ChainStore, chain: str) -> dict[str, Any]:
    """The chain store's tip for ``chain`` (height and hash) when the evidence was taken."""
    tip = store.tip(chain)
    return {"height": tip, "hash": store.block_hash(chain, tip) if tip is not None else None}


# -------------------------------------------------------------------------------------- the bag


def _file_hashes(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        out[path.relative_to(root).as_posix()] = h.hexdigest()
    return out


def _write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for row in rows:
            fh.write(canonical_json(row) + b"\n")


def _bag_info(
    ctx: Context, case: Case, evidence_id: str, title: str, extra: Mapping[str, str]
) -> dict[str, str]:
    settings = agency(ctx)
    user = ctx.acting_user
    info = {
        "Source-Organization": settings.name if settings else case.lead_agency,
        "Contact-Name": user.display_name,
        "External-Identifier": evidence_id,
        "External-Description": title,
        "Bag-Group-Identifier": case.number,
        "Internal-Sender-Identifier": f"{case.number}/{evidence_id}",
        "FundTrail-Version": __version__,
    }
    if settings and settings.address:
        info["Organization-Address"] = " ".join(settings.address.split())
    if user.email:
        info["Contact-Email"] = user.email
    info.update(extra)
    return info


def _make_bag(staging: Path, info: Mapping[str, str]) -> None:
    bagit.make_bag(str(staging), dict(info), checksums=["sha256"])


def _evidence_root(ctx: Context) -> Path:
    root = ctx.home / "evidence"
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass
class Preserved:
    """A new evidence item, and the subjects it added with their deconfliction notes."""

    item: EvidenceItem
    subjects: list[dict[str, Any]] = field(default_factory=list)


def _next_item(ctx: Context, case: Case) -> int:
    last = ctx.session.execute(
        select(func.max(EvidenceItem.item)).where(EvidenceItem.case_id == case.id)
    ).scalar()
    return (last or 0) + 1


def _seal(
    ctx: Context,
    case: Case,
    staging: Path,
    *,
    evidence_id: str,
    item: int,
    version: int,
    title: str,
    description: str | None,
    chain: str | None,
    kind: str,
    trace_hash: str | None,
    parameters: Mapping[str, Any] | None,
    supersedes: str | None,
    reason: str,
) -> EvidenceItem:
    """Sign the bag in ``staging``, record it, and move it to ``HOME/evidence/<id>``."""
    key = ctx.key
    register(ctx.session, key)
    tagmanifest = (staging / TAGMANIFEST).read_bytes()
    manifest = _file_hashes(staging)
    final = _evidence_root(ctx) / evidence_id
    if final.exists():
        raise IntegrityError(f"{final} already exists: an evidence folder is never overwritten")
    ev = EvidenceItem(
        id=evidence_id,
        case_id=case.id,
        item=item,
        version=version,
        supersedes_id=supersedes,
        kind=kind,
        title=title,
        description=description,
        chain=chain,
        bag_path=f"evidence/{evidence_id}",
        manifest=canonical_json(manifest).decode("utf-8"),
        manifest_sha256=document_hash(manifest),
        tagmanifest_sha256=sha256_hex(tagmanifest),
        trace_sha256=trace_hash,
        parameters=None if parameters is None else canonical_json(parameters).decode("utf-8"),
        software_version=__version__,
        key_id=key.key_id,
        signature=key.sign(tagmanifest),
        created_by_id=ctx.acting_user.id,
        created_at=ctx.now,
    )
    ctx.session.add(ev)
    ctx.session.add(
        CustodyEvent(
            evidence_id=evidence_id,
            event=CustodyEventType.CREATED.value,
            actor_id=ctx.acting_user.id,
            at=ctx.now,
            reason=reason,
            details=json.dumps({"supersedes": supersedes}) if supersedes else None,
        )
    )
    touch(ctx, case)
    ctx.session.flush()
    ctx.audit(
        "evidence.create",
        "evidence",
        evidence_id,
        case=case.number,
        reason=reason,
        details={
            "manifest_sha256": ev.manifest_sha256,
            "tagmanifest_sha256": ev.tagmanifest_sha256,
            "trace_sha256": trace_hash,
            "key_id": key.key_id,
            "files": len(manifest),
            "supersedes": supersedes,
        },
    )
    os.replace(staging, final)
    ctx.written.append(final)  # removed again if the transaction does not commit
    return ev


def preserve_trace(
    ctx: Context,
    number: str,
    trace: Mapping[str, Any],
    store: ChainStore,
    *,
    title: str | None = None,
    description: str | None = None,
    reason: str = "preserve the trace as evidence",
    add_subjects: bool = False,
) -> Preserved:
    """Freeze a trace, its raw chain records and tags into a signed, immutable evidence item."""
    case = ctx.case(number, Action.PRESERVE)
    check_trace(trace)
    chain = str(trace["chain"])
    txids = trace_txids(trace)
    records = export_chain_records(store, chain, txids)
    endpoints = [e["address"] for e in trace.get("endpoints", []) if e.get("address")]
    tags = export_tags(store, chain, trace_addresses(trace), endpoints)
    t_hash = trace_sha256(trace)
    parameters: dict[str, Any] = {
        "chain": chain,
        "seeds": list(trace.get("seeds", [])),
        "parameters": trace.get("parameters"),
        "policy": trace.get("policy"),
        "direction": trace.get("direction"),
        "software": {"name": "fundtrail", "version": __version__},
        "chain_store": store_tips(store, chain),
        "trace_sha256": t_hash,
        "records": {t: len(records[t]) for t in CHAIN_TABLES},
        "tags": len(tags),
    }
    item = _next_item(ctx, case)
    evidence_id = str(EvidenceId(case.number, item, 1))
    title = title or f"Trace of {', '.join(parameters['seeds'][:3])} on {chain}"
    staging = _evidence_root(ctx) / f".staging-{evidence_id}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        (staging / "trace.json").write_bytes(canonical_json(trace))
        (staging / "parameters.json").write_bytes(canonical_json(parameters))
        for table in CHAIN_TABLES:
            _write_jsonl(staging / "chain" / f"{table}.jsonl", records[table])
        _write_jsonl(staging / "tags.jsonl", tags)
        _make_bag(
            staging,
            _bag_info(
                ctx,
                case,
                evidence_id,
                title,
                {
                    "FundTrail-Kind": "trace",
                    "FundTrail-Chain": chain,
                    "FundTrail-Trace-SHA256": t_hash,
                    "FundTrail-Signing-Key": ctx.key.key_id,
                },
            ),
        )
        ev = _seal(
            ctx,
            case,
            staging,
            evidence_id=evidence_id,
            item=item,
            version=1,
            title=title,
            description=description,
            chain=chain,
            kind="trace",
            trace_hash=t_hash,
            parameters=parameters,
            supersedes=None,
            reason=reason,
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result = Preserved(ev)
    if add_subjects:
        result.subjects = _subjects_from_trace(ctx, case.number, trace, ev.id)
    case_logger(__name__, case.number).info("preserved %s (%d txs, %d tags)", ev.id, len(txids), len(tags))
    return result


def _subjects_from_trace(
    ctx: Context, number: str, trace: Mapping[str, Any], evidence_id: str
) -> list[dict[str, Any]]:
    """Add the trace's seeds and endpoint addresses as subjects linked to the evidence."""
    chain = str(trace["chain"])
    held = {
        (s.chain, s.value)
        for s in ctx.session.execute(
            select(Subject).join(Case).where(Case.number == number, Subject.kind == "address")
        ).scalars()
    }
    out = []
    wanted: list[tuple[str, dict[str, Any]]] = []
    for seed in trace.get("seeds", []):
        if isinstance(seed, str) and ":" not in seed and len(seed) != 64:
            wanted.append((seed, {"role": "seed", "source": f"trace seed ({evidence_id})"}))
    for e in trace.get("endpoints", []):
        if e.get("address"):
            wanted.append(
                (
                    e["address"],
                    {
                        "role": f"endpoint:{e.get('reason')}",
                        "label": e.get("entity"),
                        "asset": e.get("asset"),
                        "amount": int(e["tainted_value"]) if e.get("tainted_value") is not None else None,
                        "details": {
                            k: e.get(k) for k in ("category", "cluster", "hops", "jurisdiction") if e.get(k)
                        },
                        "source": f"trace endpoint ({evidence_id})",
                    },
                )
            )
    seen: set[str] = set()
    for address, extra in wanted:
        if address in seen or (chain, address) in held:
            continue
        seen.add(address)
        subject, others = add_subject(
            ctx, number, "address", address, chain=chain, evidence_id=evidence_id, **extra
        )
        out.append(
            {
                "subject": subject.id,
                "address": subject.value,
                "role": subject.role,
                "deconfliction": [d.to_dict() for d in others],
            }
        )
    return out


def new_version(
    ctx: Context, evidence_id: str, *, reason: str, title: str | None = None, description: str | None = None
) -> EvidenceItem:
    """A new version of an evidence item with changed metadata; the old one stays as it was."""
    old = get_evidence(ctx, evidence_id, Action.PRESERVE)
    if not reason.strip():
        raise InputError("a new evidence version needs a reason (--reason)")
    check = check_item(ctx, old)
    if not check.ok:
        raise IntegrityError(
            f"evidence {old.id} does not verify ({check.summary()}); it cannot be the basis of a new version"
        )
    case = old.case
    latest = ctx.session.execute(
        select(func.max(EvidenceItem.version)).where(
            EvidenceItem.case_id == case.id, EvidenceItem.item == old.item
        )
    ).scalar_one()
    if latest != old.version:
        raise InputError(f"evidence {old.id} is superseded by version {latest}; amend the latest version")
    new_id = str(EvidenceId(case.number, old.item, old.version + 1))
    staging = _evidence_root(ctx) / f".staging-{new_id}-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(ctx.home / old.bag_path / "data", staging)
        title = title or old.title
        extra = {
            "FundTrail-Kind": old.kind,
            "FundTrail-Supersedes": old.id,
            "FundTrail-Signing-Key": ctx.key.key_id,
        }
        if old.chain:
            extra["FundTrail-Chain"] = old.chain
        if old.trace_sha256:
            extra["FundTrail-Trace-SHA256"] = old.trace_sha256
        _make_bag(staging, _bag_info(ctx, case, new_id, title, extra))
        ev = _seal(
            ctx,
            case,
            staging,
            evidence_id=new_id,
            item=old.item,
            version=old.version + 1,
            title=title,
            description=description if description is not None else old.description,
            chain=old.chain,
            kind=old.kind,
            trace_hash=old.trace_sha256,
            parameters=json.loads(old.parameters) if old.parameters else None,
            supersedes=old.id,
            reason=reason,
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _custody(ctx, old, CustodyEventType.SUPERSEDED, reason, {"by": new_id})
    return ev


# --------------------------------------------------------------------------- look-ups and custody


def get_evidence(ctx: Context, evidence_id: str, action: Action = Action.READ_CASE) -> EvidenceItem:
    """An evidence item by id (the latest version when the version is left out), within the user's reach."""
    case_number, item, version = EvidenceId.parse(evidence_id)
    case = ctx.case(case_number, action)
    q = select(EvidenceItem).where(EvidenceItem.case_id == case.id, EvidenceItem.item == item)
    q = (
        q.where(EvidenceItem.version == version)
        if version
        else q.order_by(EvidenceItem.version.desc()).limit(1)
    )
    ev = ctx.session.execute(q).scalars().first()
    if ev is None:
        raise NotFoundError("evidence", evidence_id)
    return ev


def _custody(
    ctx: Context,
    ev: EvidenceItem,
    event: CustodyEventType,
    reason: str,
    details: Mapping[str, Any] | None = None,
) -> CustodyEvent:
    if not reason or not reason.strip():
        raise InputError(f"a custody event ({event.value}) needs a reason (--reason)")
    ce = CustodyEvent(
        evidence_id=ev.id,
        event=event.value,
        actor_id=ctx.acting_user.id,
        at=ctx.now,
        reason=reason.strip(),
        details=json.dumps(dict(details), sort_keys=True) if details else None,
    )
    ctx.session.add(ce)
    ctx.session.flush()
    ctx.audit(
        f"evidence.{event.value}",
        "evidence",
        ev.id,
        case=ev.case.number,
        reason=reason.strip(),
        details=dict(details or {}),
    )
    return ce


def show_evidence(ctx: Context, evidence_id: str, *, reason: str = "review") -> EvidenceItem:
    """An evidence item; viewing it is a custody event."""
    ev = get_evidence(ctx, evidence_id)
    _custody(ctx, ev, CustodyEventType.VIEWED, reason)
    return ev


def evidence_doc(ev: EvidenceItem) -> dict[str, Any]:
    """An evidence item with its custody chain, as JSON values."""
    return {
        "id": ev.id,
        "case": ev.case.number,
        "item": ev.item,
        "version": ev.version,
        "supersedes": ev.supersedes_id,
        "kind": ev.kind,
        "title": ev.title,
        "description": ev.description,
        "chain": ev.chain,
        "path": ev.bag_path,
        "software_version": ev.software_version,
        "trace_sha256": ev.trace_sha256,
        "manifest_sha256": ev.manifest_sha256,
        "tagmanifest_sha256": ev.tagmanifest_sha256,
        "files": json.loads(ev.manifest),
        "signature": {
            "algorithm": "ed25519",
            "key_id": ev.key_id,
            "public_key": ev.key.public_key,
            "value": ev.signature,
            "signed_file": TAGMANIFEST,
        },
        "parameters": json.loads(ev.parameters) if ev.parameters else None,
        "created_by": ev.created_by.username,
        "created_at": ev.created_at,
        "custody": [
            {
                "event": c.event,
                "actor": c.actor.username,
                "at": c.at,
                "reason": c.reason,
                "details": json.loads(c.details) if c.details else None,
            }
            for c in ev.custody
        ],
    }


@dataclass
class EvidenceCheck:
    """What verifying an evidence item (or an exported package) found."""

    evidence_id: str
    files: list[FileDifference] = field(default_factory=list)
    signature_ok: bool = True
    problems: list[str] = field(default_factory=list)
    signer: TrustedKey | None = None
    """The trusted key whose valid signature the package bears (None when there is none)."""
    logged: bool | None = None
    """True when the creation record is proved under a trusted signed tree head (None: not checked)."""

    @property
    def ok(self) -> bool:
        """True when every hash, the signature (by a trusted key) and the audit log agree."""
        return not self.files and self.signature_ok and not self.problems and self.logged is not False

    def summary(self) -> str:
        """One line saying what differs."""
        parts = [str(d) for d in self.files]
        parts.extend(self.problems)
        return "; ".join(parts) if parts else "intact"

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "evidence": self.evidence_id,
            "ok": self.ok,
            "signature_ok": self.signature_ok,
            "signer": None
            if self.signer is None
            else {
                "key_id": self.signer.key_id,
                "fingerprint": self.signer.fingerprint,
                "owner": self.signer.owner,
            },
            "audit_log": self.logged,
            "files": [d.to_dict() for d in self.files],
            "problems": self.problems,
        }


def _manifest_entries(path: Path) -> dict[str, str]:
    """``{path: sha256}`` of a BagIt manifest file (empty when it is missing or unreadable)."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return out
    for line in text.splitlines():
        digest, _, rel = line.strip().partition(" ")
        if rel:
            out[rel.strip().lstrip("*")] = digest.lower()
    return out


def unlisted_files(root: Path) -> list[str]:
    """Files of the bag at ``root`` that neither of its SHA-256 manifests lists (its tag manifest aside).

    BagIt itself tolerates tag files missing from the tag manifest; evidence does not: whatever lies
    in the bag must be covered by the signed tag manifest.
    """
    listed = set(_manifest_entries(root / "manifest-sha256.txt"))
    listed |= set(_manifest_entries(root / TAGMANIFEST))
    listed.add(TAGMANIFEST)
    found = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()
    )
    return [p for p in found if p not in listed]


def trusted_keys(home: Path, given: Iterable[str] = ()) -> dict[str, TrustedKey]:
    """The keys whose signature on evidence this home accepts: its own, pinned partners', and ``given``.

    Never a key because the case database lists it (``signing_keys``, ``sharing_agreements``).
    """
    return trust.load(home, given)


def check_signature(
    result: EvidenceCheck,
    keys: Mapping[str, TrustedKey],
    key_id: str,
    claimed_public: str | None,
    signed: bytes | None,
    signature: str,
) -> None:
    """Accept the signature only by a trusted key whose id is ``key_id``; record what fails in ``result``.

    ``claimed_public`` is the public key the package or the database says signed it: it is never
    trusted, only checked against ``key_id`` and shown (its fingerprint) when the signer is unknown.
    """
    fingerprint = "unknown"
    if claimed_public:
        try:
            actual_id = trust.key_id_for(claimed_public)
            fingerprint = trust.fingerprint(claimed_public)
        except InputError as error:
            result.signature_ok = False
            result.problems.append(f"the signer's public key is not valid: {error}")
            return
        if actual_id != key_id:
            result.signature_ok = False
            result.problems.append(
                f"the signature names key id {key_id}, which does not match its public key "
                f"(fingerprint {fingerprint}, key id {actual_id})"
            )
            return
    known = keys.get(key_id)
    if known is None:
        result.signature_ok = False
        result.problems.append(
            f"signed by key {key_id} (fingerprint {fingerprint}), which this home does not trust: it is "
            f"neither the agency's key nor a partner key pinned for an agreement; if its owner confirms "
            f"that fingerprint, pass it with --public-key"
        )
        return
    if claimed_public and claimed_public.strip() != known.public_key:
        result.signature_ok = False
        result.problems.append(f"the public key given for key {key_id} is not the trusted one")
        return
    if signed is None or not verify_signature(known.public_key, signed, signature):
        result.signature_ok = False
        result.problems.append(
            f"the signature over {TAGMANIFEST} is not valid (key {key_id}, {known.owner}): the bag "
            f"was changed after it was signed"
        )
        return
    result.signer = known


def _creation_records(ctx: Context, evidence_id: str) -> list[tuple[int, str | None]]:
    return [
        (int(seq), details)
        for seq, details in ctx.session.execute(
            select(AuditRecord.seq, AuditRecord.details)
            .where(AuditRecord.action == "evidence.create", AuditRecord.object_id == evidence_id)
            .order_by(AuditRecord.seq)
        ).all()
    ]


def check_item(ctx: Context, ev: EvidenceItem, keys: Mapping[str, TrustedKey] | None = None) -> EvidenceCheck:
    """Compare the package on disk with the recorded hashes, the creation record and a trusted signature.

    Reads only. ``keys`` are the trusted keys (default: the home's, see :func:`trusted_keys`).
    """
    keys = trusted_keys(ctx.home) if keys is None else keys
    result = EvidenceCheck(ev.id)
    root = ctx.home / ev.bag_path
    expected: dict[str, str] = json.loads(ev.manifest)
    if document_hash(expected) != ev.manifest_sha256:
        result.problems.append("the recorded manifest does not match its recorded hash (database edited)")
    tag = root / TAGMANIFEST
    tag_bytes = tag.read_bytes() if tag.is_file() else None
    created = _creation_records(ctx, ev.id)
    if not created:
        result.problems.append("no audit record of the evidence's creation")
    elif len(created) > 1:
        result.problems.append(
            f"{len(created)} audit records claim the evidence's creation (records "
            f"{', '.join(str(seq) for seq, _ in created)}); there is only one"
        )
    else:
        recorded = json.loads(created[0][1] or "{}")
        for name in ("manifest_sha256", "tagmanifest_sha256", "trace_sha256", "key_id"):
            if recorded.get(name) != getattr(ev, name):
                result.problems.append(
                    f"{name} differs from the audit record of its creation "
                    f"({recorded.get(name)} recorded, {getattr(ev, name)} now)"
                )
        on_disk = sha256_hex(tag_bytes) if tag_bytes is not None else None
        if on_disk is not None and recorded.get("tagmanifest_sha256") != on_disk:
            result.problems.append(
                f"the bag's {TAGMANIFEST} (sha256 {on_disk}) is not the one the audit record of its "
                f"creation holds ({recorded.get('tagmanifest_sha256')})"
            )
    actual = _file_hashes(root) if root.is_dir() else {}
    if not root.is_dir():
        result.problems.append(f"the package folder {ev.bag_path} is missing")
    result.files = compare_manifests(expected, actual)
    for name in unlisted_files(root) if root.is_dir() else []:
        result.problems.append(f"{name} is in the bag but in none of its manifests")
    claimed = ctx.session.get(SigningKey, ev.key_id)
    check_signature(
        result, keys, ev.key_id, claimed.public_key if claimed else None, tag_bytes, ev.signature
    )
    if root.is_dir() and not result.files:
        try:
            bagit.Bag(str(root)).validate()
        except bagit.BagError as error:
            result.problems.append(f"BagIt validation: {error}")
    return result


def _log_keys(keys: Mapping[str, TrustedKey]) -> dict[str, TrustedKey]:
    """The keys that may sign this home's tree heads: the agency's, and keys the user gave."""
    return {k: v for k, v in keys.items() if v.owner in (trust.AGENCY, trust.USER_GIVEN)}


def prove_creation(ctx: Context, ev: EvidenceItem, keys: Mapping[str, TrustedKey]) -> str | None:
    """None when the item's creation record is included under the newest trusted signed tree head.

    Otherwise a sentence saying what is wrong. A bag, its row and its creation record rewritten
    together fail here: the rewritten record is not the one the signed head covers.
    """
    from fundtrail.audit.log import prove_record

    created = _creation_records(ctx, ev.id)
    if len(created) != 1:
        return "the evidence has no single audit record of its creation to prove"
    problem = prove_record(ctx.session, created[0][0], _log_keys(keys))
    return None if problem is None else f"audit record {created[0][0]} of its creation: {problem}"


def verify_evidence(
    ctx: Context,
    evidence_id: str,
    *,
    public_keys: Iterable[str] = (),
    reason: str | None = None,
) -> EvidenceCheck:
    """Verify an evidence item: file hashes, BagIt manifests, the signature, the creation record and
    its inclusion in the signed audit log.

    Verification only reads: it records no custody event, appends no audit record, signs nothing and
    makes no key (run it in :func:`fundtrail.cases.context.open_reading`). This is the documented
    exception to "every read of case data is audited": a check that wrote would change the evidence
    and the log it checks. ``public_keys`` are keys the user chose to trust besides the home's pinned
    ones (``--public-key``); ``reason`` is accepted for callers that pass one, and not recorded.
    """
    del reason
    ev = get_evidence(ctx, evidence_id, Action.VERIFY_EVIDENCE)
    keys = trusted_keys(ctx.home, public_keys)
    result = check_item(ctx, ev, keys)
    problem = prove_creation(ctx, ev, keys)
    result.logged = problem is None
    if problem is not None:
        result.problems.append(problem)
    if not result.ok:
        case_logger(__name__, ev.case.number).warning(
            "evidence %s does not verify: %s", ev.id, result.summary()
        )
    return result


@dataclass(frozen=True)
class Retrace:
    """Re-running a preserved trace: the hash preserved, the hash now, and what differs."""

    evidence_id: str
    expected_sha256: str
    actual_sha256: str
    differences: dict[str, Any]

    @property
    def reproduced(self) -> bool:
        """True when the re-run gives the preserved document exactly."""
        return self.expected_sha256 == self.actual_sha256

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "evidence": self.evidence_id,
            "reproduced": self.reproduced,
            "expected_sha256": self.expected_sha256,
            "actual_sha256": self.actual_sha256,
            "differences": self.differences,
        }


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("flows", "endpoints"):
        a = {canonical_json(x) for x in old.get(key, [])}
        b = {canonical_json(x) for x in new.get(key, [])}
        if a != b:
            out[key] = {"only_preserved": len(a - b), "only_now": len(b - a)}
    others = sorted(
        k for k in set(old) | set(new) if k not in ("flows", "endpoints") and old.get(k) != new.get(k)
    )
    if others:
        out["fields"] = others
    return out


def retrace(
    ctx: Context, evidence_id: str, store: ChainStore, *, reason: str = "reproduce the trace"
) -> Retrace:
    """Re-run the preserved trace on the chain store; equal canonical JSON hashes mean it is reproduced."""
    ev = get_evidence(ctx, evidence_id, Action.VERIFY_EVIDENCE)
    if ev.kind != "trace" or not ev.trace_sha256:
        raise InputError(f"evidence {ev.id} is not a preserved trace")
    path = ctx.home / ev.bag_path / "data" / "trace.json"
    if not path.is_file():
        raise IntegrityError(f"evidence {ev.id}: data/trace.json is missing")
    raw = path.read_bytes()
    expected_file = json.loads(ev.manifest).get("data/trace.json")
    if sha256_hex(raw) != expected_file:
        raise IntegrityError(
            f"evidence {ev.id}: data/trace.json: sha256 expected {expected_file}, actual {sha256_hex(raw)}"
        )
    preserved = json.loads(raw)
    now = run_trace(store, preserved["chain"], list(preserved["seeds"]), preserved.get("parameters") or {})
    result = Retrace(ev.id, ev.trace_sha256, trace_sha256(now), _diff(preserved, now))
    _custody(
        ctx,
        ev,
        CustodyEventType.RETRACED,
        reason,
        {"reproduced": result.reproduced, "actual_sha256": result.actual_sha256},
    )
    return result


def export_evidence(
    ctx: Context, evidence_id: str, out: Path, *, reason: str, recipient: str | None = None
) -> Path:
    """Copy the package and its signature to ``out``; a transfer of custody when a recipient is named."""
    ev = get_evidence(ctx, evidence_id, Action.EXPORT_EVIDENCE)
    check = check_item(ctx, ev)
    if not check.ok:
        raise IntegrityError(f"evidence {ev.id} does not verify, it is not exported: {check.summary()}")
    out = Path(out)
    target = out / ev.id
    if target.exists():
        raise InputError(f"{target} already exists")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ctx.home / ev.bag_path, target)
    settings = agency(ctx)
    signature = {
        "evidence": ev.id,
        "case": ev.case.number,
        "algorithm": "ed25519",
        "key_id": ev.key_id,
        "public_key": ev.key.public_key,
        "signature": ev.signature,
        "signed_file": TAGMANIFEST,
        "tagmanifest_sha256": ev.tagmanifest_sha256,
        "manifest_sha256": ev.manifest_sha256,
        "trace_sha256": ev.trace_sha256,
        "agency": settings.name if settings else ev.case.lead_agency,
    }
    (out / f"{ev.id}.signature.json").write_text(
        json.dumps(signature, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    event = CustodyEventType.TRANSFERRED if recipient else CustodyEventType.EXPORTED
    _custody(ctx, ev, event, reason, {"to": recipient, "path": str(target)})
    return target


def verify_package(
    folder: Path, signature_file: Path | None = None, *, keys: Mapping[str, TrustedKey]
) -> EvidenceCheck:
    """Verify an exported package on its own: BagIt hashes, no unlisted file, and the Ed25519 signature
    beside it by one of ``keys`` (the public key written in the signature file is never trusted)."""
    folder = Path(folder)
    signature_file = signature_file or folder.parent / f"{folder.name}.signature.json"
    try:
        sig = json.loads(Path(signature_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"{signature_file}: cannot read the signature ({error})") from None
    if not isinstance(sig, dict):
        raise InputError(f"{signature_file}: not a signature file")
    result = EvidenceCheck(str(sig.get("evidence", folder.name)))
    expected: dict[str, str] = {}
    for name in ("manifest-sha256.txt", TAGMANIFEST):
        path = folder / name
        if not path.is_file():
            result.problems.append(f"{name} is missing: not a BagIt package with SHA-256 manifests")
            continue
        expected.update(_manifest_entries(path))
    if sig.get("tagmanifest_sha256"):  # the tag manifest itself is covered by the signature file
        expected[TAGMANIFEST] = str(sig["tagmanifest_sha256"])
    actual = _file_hashes(folder) if folder.is_dir() else {}
    listed = set(expected) | {TAGMANIFEST}
    result.files = compare_manifests(expected, {p: h for p, h in actual.items() if p in listed})
    for name in unlisted_files(folder) if folder.is_dir() else []:
        result.problems.append(f"{name} is in the bag but in none of its manifests")
    if not result.files and not result.problems:
        try:
            bagit.Bag(str(folder)).validate()
        except bagit.BagError as error:
            result.problems.append(f"BagIt validation: {error}")
    tag = folder / TAGMANIFEST
    check_signature(
        result,
        keys,
        str(sig.get("key_id") or ""),
        str(sig.get("public_key") or "") or None,
        tag.read_bytes() if tag.is_file() else None,
        str(sig.get("signature") or ""),
    )
    return result
