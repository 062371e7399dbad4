"""Attribution: who is behind an address, from tags propagated through clusters.

The ``tags`` table (filled by TagPack import) holds one row per tag. :func:`attribute` answers, for
address ids of one chain, the best attribution: a direct tag on the address first, else a tag on any
address of its cluster (``via_cluster`` true), choosing the highest confidence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fundtrail.store import schema
from fundtrail.store.chainstore import ChainStore

schema.register_table(
    "tags",
    "chain VARCHAR NOT NULL, address VARCHAR NOT NULL, label VARCHAR, category VARCHAR, abuse VARCHAR, "
    "actor VARCHAR, jurisdiction VARCHAR, confidence VARCHAR, confidence_level INTEGER, source VARCHAR, "
    "tagpack VARCHAR, is_cluster_definer BOOLEAN, lastmod VARCHAR, extra JSON, tag_index INTEGER",
)

SERVICE_CATEGORIES = frozenset({
    "exchange", "mixing_service", "coinjoin", "defi_bridge", "bridge", "wallet_service", "payment_processor",
    "gambling", "market", "defi_dex", "defi_lending", "defi", "atm", "miner", "hosting", "otc_broker",
})
"""Categories of attributed services at which a trace stops (funds pass into someone's custody)."""


@dataclass(frozen=True, slots=True)
class Attribution:
    """The best-known owner of an address."""

    entity: str | None
    category: str | None
    abuse: str | None
    jurisdiction: str | None
    confidence: int
    source: str | None
    via_cluster: bool

    @property
    def is_service(self) -> bool:
        """True when the owner is a service where a trace stops (exchange, mixer, bridge ...)."""
        return self.category in SERVICE_CATEGORIES


def attribute(store: ChainStore, chain: str, address_ids: Iterable[int]) -> dict[int, Attribution]:
    """Best attribution per address id (absent ids have none). Implemented by the intel layer."""
    from fundtrail.intel.tagstore import attribute_ids  # the implementation lives with the tag store

    return attribute_ids(store, chain, list(address_ids))
