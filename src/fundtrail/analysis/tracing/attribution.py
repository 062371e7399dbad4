"""The attribution cache of tracing: who is behind every address that can have an owner, and clusters.

The tag query itself lives in the intel layer (:func:`fundtrail.intel.tagstore.propagate_to_clusters`);
this module keeps its answers per store and chain as arrays, rebuilt when tags, clusters or actors change.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from fundtrail.analysis.graph import Snapshot, snapshot
from fundtrail.intel.attribution import Attribution
from fundtrail.intel.tagstore import propagate_to_clusters
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)


@dataclass(eq=False)
class AttributionIndex:
    """The attribution port's answers for every address of a chain that can have one, and clusters.

    The port attributes an address through its own tags or the tags of its cluster, so only addresses
    that are tagged or share a cluster with a tagged address can have an attribution; the index asks
    the port about exactly those, once, and is rebuilt when tags, clusters or actors change.
    """

    fingerprint: tuple[Any, ...]
    known: dict[int, Attribution]
    services: np.ndarray
    cluster_members: np.ndarray
    cluster_values: np.ndarray

    def service_mask(self, addrs: np.ndarray) -> np.ndarray:
        """Which addresses are attributed services."""
        if len(self.services) == 0:
            return np.zeros(len(addrs), dtype=bool)
        pos = np.minimum(np.searchsorted(self.services, addrs), len(self.services) - 1)
        return np.asarray(self.services[pos] == addrs)

    def get(self, address_id: int) -> Attribution | None:
        """The attribution of one address (None when it has none)."""
        return self.known.get(int(address_id))

    def cluster_ids(self, addrs: np.ndarray) -> np.ndarray:
        """The cluster id of each address (-1 for addresses in no cluster or without an address)."""
        addrs = np.asarray(addrs, dtype=np.int64)
        out = np.full(len(addrs), -1, dtype=np.int64)
        if len(addrs) == 0 or len(self.cluster_members) == 0:
            return out
        pos = np.minimum(np.searchsorted(self.cluster_members, addrs), len(self.cluster_members) - 1)
        hit = (addrs >= 0) & (self.cluster_members[pos] == addrs)
        out[hit] = self.cluster_values[pos[hit]]
        return out

    def clusters(self, ids: Iterable[int]) -> dict[int, str]:
        """Cluster ids (as text) of addresses that are in a cluster."""
        wanted = np.array(sorted({int(i) for i in ids if int(i) >= 0}), dtype=np.int64)
        found = self.cluster_ids(wanted)
        hit = found >= 0
        return {int(a): str(int(c)) for a, c in zip(wanted[hit], found[hit], strict=True)}


_ATT_CACHE: weakref.WeakKeyDictionary[ChainStore, dict[str, AttributionIndex]] = weakref.WeakKeyDictionary()
_ATT_LOCK = threading.Lock()


def _has_clusters(cat: dict[str, set[str]]) -> bool:
    return {"chain", "address_id", "cluster_id"} <= cat.get("clusters", set())


def _known(store: ChainStore, chain: str, cat: dict[str, set[str]]) -> dict[int, Attribution]:
    """The attribution of every address that can have one (none while the store holds no tags)."""
    if "address" not in cat.get("tags", set()):
        return {}
    try:
        return propagate_to_clusters(store, chain)
    except duckdb.CatalogException as exc:  # a store opened before the tag tables were registered
        log.warning("attribution through the tag store failed (%s); addresses stay unattributed", exc)
        return {}


def attribution_index(store: ChainStore, chain: str, snap: Snapshot | None = None) -> AttributionIndex:
    """The cached attribution index of ``chain``, rebuilt when tags, clusters or actors changed."""
    snap = snapshot(store, chain) if snap is None else snap
    cat = snap.catalog
    fingerprint = snap.attribution
    with _ATT_LOCK:
        index = _ATT_CACHE.get(store, {}).get(chain)
        if index is not None and index.fingerprint == fingerprint:
            return index
    known = _known(store, chain, cat)
    services = np.array(sorted(a for a, att in known.items() if att.is_service), dtype=np.int64)
    members = values = np.zeros(0, dtype=np.int64)
    if _has_clusters(cat):
        rows = store.con.execute("SELECT address_id, cluster_id FROM clusters WHERE chain = ? ORDER BY 1",
                                 [chain]).fetchnumpy()
        members = np.asarray(rows["address_id"], dtype=np.int64)
        values = np.asarray(rows["cluster_id"], dtype=np.int64)
    index = AttributionIndex(fingerprint, known, services, members, values)
    with _ATT_LOCK:
        _ATT_CACHE.setdefault(store, {})[chain] = index
    return index
