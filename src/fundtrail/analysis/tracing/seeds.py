"""Seeds of a trace: an address, a transaction, or one output / transfer (``txid:n``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from fundtrail.analysis.tracing.queries import tx_exists as stored_tx
from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.chains import get_chain
from fundtrail.errors import InvalidAddressError, NotFoundError
from fundtrail.store.chainstore import ChainStore

_TXID = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


@dataclass(frozen=True, slots=True)
class Seed:
    """A parsed seed: an address, a transaction, or one output / transfer (``txid:n``)."""

    kind: str  # "address" | "tx" | "output"
    text: str
    txid: str | None = None
    n: int | None = None


@lru_cache(maxsize=4096)
def _address_form(chain: str, raw: str) -> str | None:
    """The canonical form of ``raw`` when it is an address valid for ``chain``, else None (kept: a seed is
    checked, then parsed, and often traced again)."""
    try:
        return canonical_address(chain, raw)
    except InvalidAddressError:
        return None


def normalise_txid(chain: str, txid: str) -> str:
    """Txids as the store keeps them: lower-case hex, ``0x``-prefixed on account chains."""
    txid = txid.strip().lower()
    if not get_chain(chain).is_utxo and not txid.startswith("0x") and _TXID.match(txid):
        txid = "0x" + txid
    return txid


def parse_seed(store: ChainStore, chain: str, text: str,
               tx_exists: Callable[[str], bool] | None = None) -> Seed:
    """Parse a seed: ``txid:n``, an address valid for the chain, or a txid held by the store.

    Raises InvalidAddressError for text that is neither, NotFoundError for a txid the store lacks.
    ``tx_exists`` answers whether the store holds a txid (default: a query).
    """
    def exists(txid: str) -> bool:
        return tx_exists(txid) if tx_exists is not None else stored_tx(store, chain, txid)

    raw = text.strip()
    head, sep, tail = raw.rpartition(":")
    if sep and tail.isdigit() and head:
        txid = normalise_txid(chain, head)
        if not exists(txid):
            raise NotFoundError(f"{chain} transaction", txid)
        return Seed("output", f"{txid}:{int(tail)}", txid, int(tail))
    address = _address_form(chain, raw)
    if address is not None:
        return Seed("address", address)
    txid = normalise_txid(chain, raw)
    if _TXID.match(raw):
        if not exists(txid):
            raise NotFoundError(f"{chain} transaction", txid)
        return Seed("tx", txid, txid)
    if exists(raw):  # a txid in another form (test chains, other networks)
        return Seed("tx", raw, raw)
    canonical_address(chain, raw)  # raises InvalidAddressError with the reason
    raise InvalidAddressError(raw, chain)  # pragma: no cover - canonical_address raised already


def check_seed_shape(store: ChainStore, chain: str, text: str) -> None:
    """Raise InvalidAddressError for a seed that is neither an address, a txid nor ``txid:n``."""
    raw = text.strip()
    head, sep, tail = raw.rpartition(":")
    if (sep and tail.isdigit() and head) or _address_form(chain, raw) is not None or _TXID.match(raw):
        return
    if not stored_tx(store, chain, raw):
        canonical_address(chain, raw)  # raises with the reason
        raise InvalidAddressError(raw, chain)  # pragma: no cover
