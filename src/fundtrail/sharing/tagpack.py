"""GraphSense TagPacks of a case: the attribution tags it holds, and what the case itself established.

A case's TagPack has, for every address of the case:

* the tags preserved with its trace evidence (the tags the trace relied on, as they were);
* one tag per address the crime paid into (``abuse`` the offence when it is a taxonomy concept,
  confidence ``forensic_investigation``: a known perpetrator address);
* one tag per trace endpoint attributed to a service (``category`` of the service, confidence
  ``heuristic``: attribution through clustering).

It is written by the intel layer's own TagPack export (:func:`fundtrail.intel.tagpacks.export_tagpacks`)
from an in-memory tag store, after the intel layer's validator (:func:`parse_tagpack`) accepted it, so
that what FundTrail sends is what FundTrail itself would import.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from fundtrail.domain.chains import CHAINS, get_chain
from fundtrail.domain.sharing import DataCategory
from fundtrail.errors import FundTrailError, InputLimitError, IntegrityError
from fundtrail.intel.tagpacks import (
    ParsedPack,
    chain_for_network,
    export_tagpacks,
    load_taxonomy,
    parse_tagpack,
    read_yaml,
    store_pack,
)
from fundtrail.sharing.content import CaseContent
from fundtrail.store.chainstore import ChainStore

TAG_FIELDS = (
    "label",
    "category",
    "abuse",
    "actor",
    "confidence",
    "source",
    "is_cluster_definer",
    "context",
    "tag_type",
    "concepts",
)


def _network(chain: str) -> str:
    return get_chain(chain).symbol if chain in CHAINS else chain.upper()


def tag_documents(content: CaseContent, agency: str, now: datetime) -> list[dict[str, Any]]:
    """The tags of a case's TagPack (every field in the tag, nothing inherited)."""
    taxonomy = load_taxonomy()
    lastmod = now.date()
    source = f"{agency}, case {content.number}"
    seen: set[tuple[str, str, str]] = set()
    tags: list[dict[str, Any]] = []

    def add(chain: str, doc: dict[str, Any]) -> None:
        key = (chain, doc["address"], doc["label"])
        if key in seen:
            return
        seen.add(key)
        doc.setdefault("currency", _network(chain))
        doc.setdefault("network", _network(chain))
        tags.append(doc)

    for row in content.tags:
        chain, address = str(row.get("chain")), str(row.get("address"))
        if not row.get("label") or chain not in CHAINS:
            continue
        own = ((row.get("extra") or {}).get("tag") or {}) if isinstance(row.get("extra"), dict) else {}
        doc: dict[str, Any] = {"address": address}
        for name in TAG_FIELDS:
            value = row.get(name, own.get(name))
            if value is not None:
                doc[name] = value
        doc.setdefault("source", own.get("source") or f"tag store of {agency}")
        for name in ("currency", "network"):
            if own.get(name):
                doc[name] = own[name]
        if doc.get("confidence") is None:
            doc["confidence"] = "unknown"
        lastmod_value = row.get("lastmod") or own.get("lastmod")
        if lastmod_value:
            doc["lastmod"] = str(lastmod_value)[:10]
        add(chain, doc)
    abuse = (content.offence or "").strip().lower().replace(" ", "_")
    for (chain, address), w in sorted(content.wallets.items()):
        if w.is_seed or w.abuse:
            concept = w.abuse or (abuse if taxonomy.is_concept(abuse) else None)
            doc = {
                "address": address,
                "label": f"{(concept or 'criminal').replace('_', ' ')} payment address",
                "source": source,
                "confidence": "forensic_investigation",
                "lastmod": lastmod,
                "context": f"paid by the crime investigated in case {content.number}",
            }
            if concept:
                doc["abuse"] = concept
            add(chain, doc)
        if w.entity and w.is_endpoint:
            doc = {
                "address": address,
                "label": w.entity,
                "source": source,
                "confidence": "heuristic",
                "lastmod": lastmod,
                "context": "attributed through clustering and tags while tracing",
            }
            if w.category and taxonomy.is_concept(w.category):
                doc["category"] = w.category
            add(chain, doc)
    return tags


def write_tagpack(
    tags: list[dict[str, Any]], out: Path, *, title: str, creator: str, description: str
) -> Path:
    """Validate the tags as one TagPack and write it to ``out`` with the intel layer's export."""
    document = {
        "title": title,
        "creator": creator,
        "description": description,
        "is_public": False,
        "tags": tags,
    }
    pack = parse_tagpack(document, str(out))
    bad = [t for t in pack.tags if t.invalid_reason]
    if bad:
        raise IntegrityError(f"tag {bad[0].index}: {bad[0].invalid_reason}")
    with tempfile.TemporaryDirectory(prefix="fundtrail-tagpack-") as tmp, ChainStore(":memory:") as mem:
        store_pack(mem, pack, "case")
        files = export_tagpacks(mem, Path(tmp), by="pack")
        if len(files) != 1:
            raise IntegrityError(f"the TagPack export wrote {len(files)} files, expected one")
        shutil.move(str(files[0]), str(out))
    return Path(out)


def check_tagpack(path: Path) -> tuple[ParsedPack, frozenset[DataCategory]]:
    """Validate a received TagPack (schema and taxonomy, addresses valid for their chains)."""
    try:
        pack = parse_tagpack(read_yaml(Path(path)), Path(path).name)
    except InputLimitError:
        raise  # bad input past a safety bound (an alias bomb), not a tampered package
    except FundTrailError as error:
        raise IntegrityError(f"not a valid TagPack: {error}") from None
    if not pack.tags:
        raise IntegrityError(f"{Path(path).name}: the TagPack holds no address tags")
    for t in pack.tags:
        if t.chain not in CHAINS:
            raise IntegrityError(
                f"{Path(path).name}: tag {t.index}: unknown network "
                f"{t.resolved.get('network') or t.resolved.get('currency')!r}"
            )
        if t.invalid_reason:
            raise IntegrityError(f"{Path(path).name}: tag {t.index}: {t.invalid_reason}")
    return pack, frozenset({DataCategory.ATTRIBUTION_TAGS})


__all__ = ["chain_for_network", "check_tagpack", "tag_documents", "write_tagpack"]
