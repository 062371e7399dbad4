"""What every trace checks besides the graph, read once per store and kept while it is unchanged: the in
sides of stored conversions and the pools (:mod:`.crosschain`), and the addresses on sanctions lists
(:mod:`.screening`). A trace that reaches no conversion's in side and no listed address asks the store
nothing more; the lists are read again when the snapshot's ``lists`` part changes.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from fundtrail.analysis.graph import Snapshot
from fundtrail.store.chainstore import ChainStore

Key = tuple[str, str]
"""How a listed address is matched: ("evm", lower-case address) on any EVM chain, else (chain, address)."""


def listing_key(chain: str, address: str) -> Key:
    """The key a sanctions listing of ``address`` on ``chain`` is matched by."""
    from fundtrail.intel.sanctions import is_evm  # imported when a store holds lists

    if address.startswith(("0x", "0X")) or is_evm(chain):
        return "evm", address.lower()
    return chain, address


@dataclass(frozen=True)
class TraceLists:
    """The conversions' in sides (chain, address), the pools by chain, and the listed addresses."""

    fingerprint: tuple[object, ...]
    conversion_in: frozenset[tuple[str, str]]
    pools: dict[str, frozenset[str]]
    listed: frozenset[Key]

    def reaches_conversion(self, chain: str, addresses: set[str]) -> bool:
        """Whether any of ``addresses`` on ``chain`` is the in side of a stored conversion."""
        return any((chain, a) in self.conversion_in for a in addresses)


_LISTS: weakref.WeakKeyDictionary[ChainStore, TraceLists] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def trace_lists(store: ChainStore, snap: Snapshot) -> TraceLists:
    """The lists of ``store`` as of ``snap`` (cached per store while the snapshot's lists are unchanged)."""
    with _LOCK:
        kept = _LISTS.get(store)
    if kept is not None and kept.fingerprint == snap.lists:
        return kept
    conversion_in: set[tuple[str, str]] = set()
    pools: dict[str, set[str]] = {}
    if {"in_chain", "in_address", "kind"} <= snap.catalog.get("conversions", set()):
        from fundtrail.domain.conversions import ConversionKind

        for chain, address, kind in store.con.execute(
                "SELECT DISTINCT in_chain, in_address, kind FROM conversions").fetchall():
            conversion_in.add((str(chain), str(address)))
            if kind == ConversionKind.POOL.value:
                pools.setdefault(str(chain), set()).add(str(address))
    listed: set[Key] = set()
    if {"chain", "address"} <= snap.catalog.get("sanctions", set()):
        listed = {listing_key(str(c), str(a))
                  for c, a in store.con.execute("SELECT DISTINCT chain, address FROM sanctions").fetchall()}
    lists = TraceLists(snap.lists, frozenset(conversion_in), {c: frozenset(a) for c, a in pools.items()},
                       frozenset(listed))
    with _LOCK:
        _LISTS[store] = lists
    return lists
