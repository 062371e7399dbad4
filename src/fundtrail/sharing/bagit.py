"""BagIt packages of a case's evidence, with its chain of custody, for a partner agency.

The package is itself a BagIt bag (RFC 8493, SHA-256) whose payload holds, untouched, each evidence
item as the case layer exports it (its own signed bag and signature file) and the custody record::

    data/evidence/EE-2026-0001-E001-v1/            the evidence bag, as preserved and signed
    data/evidence/EE-2026-0001-E001-v1.signature.json
    data/custody.json                               every custody event of every item, this transfer included
    data/case.json                                  the case number and title, the items and their hashes

Exporting transfers custody (the case layer records a ``transferred`` event naming the partner). The
receiver validates the outer bag, every inner bag and every inner signature, which must be the
sending agency's key as pinned for the agreement (the same key that signs the envelope); a file in a
bag that its manifests do not list fails the import.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import bagit

from fundtrail import __version__
from fundtrail.audit import trust
from fundtrail.cases.context import Context
from fundtrail.cases.evidence import export_evidence, unlisted_files, verify_package
from fundtrail.cases.models import EvidenceItem
from fundtrail.domain.sharing import DataCategory
from fundtrail.errors import InputError, IntegrityError
from fundtrail.sharing.content import CaseContent

log = logging.getLogger(__name__)


def _custody_record(ev: EvidenceItem) -> list[dict[str, Any]]:
    return [
        {
            "event": c.event,
            "actor": c.actor.username,
            "actor_role": c.actor.role,
            "actor_unit": c.actor.unit,
            "at": c.at.isoformat(),
            "reason": c.reason,
            "details": json.loads(c.details) if c.details else None,
        }
        for c in ev.custody
    ]


def build_bag(
    ctx: Context, content: CaseContent, staging: Path, *, recipient: str, reason: str, info: dict[str, str]
) -> list[str]:
    """Write the package into ``staging`` (made a bag); returns the evidence ids it holds."""
    if not content.evidence:
        raise IntegrityError(f"case {content.number} holds no evidence to send")
    evidence_dir = staging / "evidence"
    evidence_dir.mkdir(parents=True)
    ids = []
    for ev in content.evidence:
        export_evidence(ctx, ev.id, evidence_dir, reason=reason, recipient=recipient)
        ids.append(ev.id)
    ctx.session.flush()
    for ev in content.evidence:
        ctx.session.refresh(ev, attribute_names=["custody"])
    custody = {ev.id: _custody_record(ev) for ev in content.evidence}
    (staging / "custody.json").write_text(
        json.dumps(custody, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    case = {
        "case": content.number,
        "title": content.title,
        "evidence": [
            {
                "id": ev.id,
                "title": ev.title,
                "kind": ev.kind,
                "chain": ev.chain,
                "manifest_sha256": ev.manifest_sha256,
                "tagmanifest_sha256": ev.tagmanifest_sha256,
                "trace_sha256": ev.trace_sha256,
                "key_id": ev.key_id,
            }
            for ev in content.evidence
        ],
    }
    (staging / "case.json").write_text(json.dumps(case, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    bagit.make_bag(str(staging), {**info, "FundTrail-Version": __version__}, checksums=["sha256"])
    return ids


def bag_categories(content: CaseContent) -> frozenset[DataCategory]:
    """What the evidence bags of a case carry (they are sent whole: their signatures cover everything)."""
    out = {DataCategory.EVIDENCE}
    if content.traces:
        out |= {DataCategory.TRACES, DataCategory.ADDRESSES_AND_TRANSACTIONS}
    if content.tags:
        out.add(DataCategory.ATTRIBUTION_TAGS)
    return frozenset(out)


@dataclass
class BagItem:
    """What the import stores of one item of a bag."""

    kind: str
    ref: str
    chain: str | None
    value: str | None
    label: str | None
    content: dict[str, Any]


def check_bag(
    path: Path, sender_key_id: str, sender_public_key: str
) -> tuple[list[BagItem], frozenset[DataCategory]]:
    """Validate the package bag, each evidence bag in it and its signature by the sender; the items.

    ``sender_public_key`` must be the partner's key as pinned in the home's trust file (never one read
    from the case database or the package): each evidence signature is accepted from that key only.
    """
    path = Path(path)
    try:
        sender = trust.trusted_key(sender_public_key, "sender", sender_key_id)
    except InputError as error:
        raise IntegrityError(f"{path.name}: the sender's key: {error}") from None
    try:
        bagit.Bag(str(path)).validate()
    except bagit.BagError as error:
        raise IntegrityError(f"{path.name}: BagIt validation failed: {error}") from None
    unlisted = unlisted_files(path)
    if unlisted:
        raise IntegrityError(f"{path.name}: {unlisted[0]} is in the bag but in none of its manifests")
    data = path / "data"
    try:
        custody = json.loads((data / "custody.json").read_text(encoding="utf-8"))
        case = json.loads((data / "case.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IntegrityError(
            f"{path.name}: custody.json or case.json is missing or not JSON: {error}"
        ) from None
    items: list[BagItem] = []
    carried = {DataCategory.EVIDENCE}
    listed = case.get("evidence") if isinstance(case, dict) else None
    if not isinstance(listed, list) or not listed:
        raise IntegrityError(f"{path.name}: case.json lists no evidence")
    for entry in listed:
        evidence_id = str(entry.get("id", ""))
        folder = data / "evidence" / evidence_id
        signature = data / "evidence" / f"{evidence_id}.signature.json"
        if not evidence_id or "/" in evidence_id or not folder.is_dir() or not signature.is_file():
            raise IntegrityError(f"{path.name}: evidence {evidence_id!r} is listed but not in the package")
        check = verify_package(folder, signature, keys={sender.key_id: sender})
        if not check.ok:
            raise IntegrityError(f"{path.name}: evidence {evidence_id} does not verify: {check.summary()}")
        sig = json.loads(signature.read_text(encoding="utf-8"))
        if sig.get("key_id") != sender_key_id or sig.get("public_key") != sender_public_key:
            raise IntegrityError(
                f"{path.name}: evidence {evidence_id} is signed by key {sig.get('key_id')}, "
                f"not by the sending agency's key {sender_key_id}"
            )
        if evidence_id not in custody:
            raise IntegrityError(f"{path.name}: custody.json has no record of evidence {evidence_id}")
        items.append(
            BagItem(
                "evidence",
                evidence_id,
                entry.get("chain"),
                evidence_id,
                entry.get("title"),
                {"evidence": entry, "custody": custody[evidence_id]},
            )
        )
        trace_file = folder / "data" / "trace.json"
        if trace_file.is_file():
            trace = json.loads(trace_file.read_text(encoding="utf-8"))
            carried |= {DataCategory.TRACES, DataCategory.ADDRESSES_AND_TRANSACTIONS}
            chain = str(trace.get("chain") or "")
            for e in trace.get("endpoints", []):
                if e.get("address"):
                    items.append(
                        BagItem(
                            "wallet",
                            evidence_id,
                            chain,
                            e["address"],
                            e.get("entity"),
                            {"endpoint": e, "evidence": evidence_id},
                        )
                    )
        tags = folder / "data" / "tags.jsonl"
        if tags.is_file() and tags.stat().st_size:
            carried.add(DataCategory.ATTRIBUTION_TAGS)
    return items, frozenset(carried)


def copy_bag(src: Path, target: Path) -> None:
    """Copy a received bag into the home (the receiver's own copy, as received)."""
    shutil.copytree(src, target)


def bag_info(
    content: CaseContent, package_id: str, sender: str, marking: str, now: datetime
) -> dict[str, str]:
    """The package bag's ``bag-info.txt`` fields."""
    return {
        "Source-Organization": sender,
        "External-Identifier": package_id,
        "External-Description": f"evidence of case {content.number}: {content.title}",
        "Bag-Group-Identifier": content.number,
        "Bagging-Date": now.date().isoformat(),
        "FundTrail-Marking": marking,
    }
