"""The address profile: the ``fundtrail address --format json`` document, built in one place.

Activity per asset (:func:`fundtrail.store.lookups.address_activity`), then the cluster, tags, sanctions,
exposure and risk sections (:func:`fundtrail.analysis.risk.address_sections`). The API and the dashboard
call :func:`address_document`; renderers stay in the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fundtrail.analysis.clustering import describe_cluster
from fundtrail.analysis.risk import address_sections
from fundtrail.store.chainstore import ChainStore
from fundtrail.store.lookups import address_activity

SECTIONS = ("tags", "sanctions", "exposure", "risk")
"""The sections after ``cluster``, in the document's order."""


def cluster_section(store: ChainStore, chain: str, address: str) -> dict[str, Any] | None:
    """The cluster section as the clustering layer writes it (id, naming address, size, reason)."""
    try:
        info = describe_cluster(store, chain, address, limit=0)
    except LookupError:
        return None
    return {"cluster_id": info["cluster_id"], "address": info["cluster_address"], "size": info["size"],
            "reason": info["reason"]}


def address_document(store: ChainStore, home: Path | None, chain: str, address: str, *,
                     indicators_file: Path | None = None, trace: bool = True) -> dict[str, Any]:
    """The ``fundtrail address --format json`` document of ``address``.

    ``indicators_file`` overrides or extends the risk indicator catalogue; ``trace`` computes indirect
    exposure (a trace each way).
    """
    doc = address_activity(store, chain, address)
    sections = address_sections(store, home, doc["chain"], doc["address"], indicators_file=indicators_file,
                                trace=trace)
    doc["cluster"] = (cluster_section(store, doc["chain"], doc["address"])
                      if sections["cluster"] is not None else None)
    for key in SECTIONS:
        doc[key] = sections[key]
    return doc
