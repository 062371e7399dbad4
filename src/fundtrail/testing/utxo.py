"""Hand-written UTXO test chains: name the addresses, list the transactions, write them to a store.

::

    chain = UtxoChain()
    cb = chain.coinbase("c1", [("alice1", 50_000)])
    chain.tx("t1", [cb.out(0)], [("bob", 30_000), ("alice2", 19_000)])
    chain.write(store)

Every call to :meth:`UtxoChain.next_block` closes the current block; transactions are otherwise
appended to it in order. Input addresses and values are left to the store, which resolves them from
the spent outputs, exactly as for real ingests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fundtrail.domain.records import BlockRecord, UtxoBatch
from fundtrail.store.chainstore import ChainStore, WriteResult

Output = tuple[str | None, int] | tuple[str | None, int, str]


@dataclass(frozen=True, slots=True)
class TxRef:
    """A written transaction; :meth:`out` names one of its outputs for spending."""

    txid: str

    def out(self, n: int) -> tuple[str, int]:
        """The outpoint ``(txid, n)``."""
        return self.txid, n


@dataclass
class UtxoChain:
    """A small UTXO chain built transaction by transaction."""

    chain: str = "btc"
    script_type: str = "p2wpkh"
    start_height: int = 1
    _blocks: list[list[tuple[str, bool, list[tuple[str, int]], list[Output]]]] = field(
        default_factory=lambda: [[]])

    def coinbase(self, txid: str, outputs: list[Output]) -> TxRef:
        """A transaction creating coins (no inputs)."""
        self._blocks[-1].append((txid, True, [], list(outputs)))
        return TxRef(txid)

    def tx(self, txid: str, inputs: list[tuple[str, int]], outputs: list[Output]) -> TxRef:
        """A transaction spending ``inputs`` (outpoints) into ``(address, value[, script_type])`` outputs."""
        self._blocks[-1].append((txid, False, list(inputs), list(outputs)))
        return TxRef(txid)

    def next_block(self) -> None:
        """Close the current block; later transactions go into a new one."""
        self._blocks.append([])

    def batch(self) -> UtxoBatch:
        """The chain as one batch of complete blocks."""
        batch = UtxoBatch(chain=self.chain)
        prev: str | None = None
        for offset, txs in enumerate(b for b in self._blocks if b):
            height = self.start_height + offset
            block_hash = f"{height:064x}"
            when = 1_600_000_000 + 600 * height
            batch.blocks.append(BlockRecord(self.chain, height, block_hash, prev, when, len(txs)))
            prev = block_hash
            for index, (txid, coinbase, inputs, outputs) in enumerate(txs):
                batch.add_tx(txid, height, when, index, coinbase=coinbase)
                for n, (prev_txid, prev_n) in enumerate(inputs):
                    batch.add_input(txid, n, prev_txid, prev_n)
                for n, out in enumerate(outputs):
                    address, value = out[0], out[1]
                    default = "nulldata" if address is None else self.script_type
                    script = out[2] if len(out) == 3 else default
                    batch.add_output(txid, n, address, value, script)
        return batch

    def write(self, store: ChainStore) -> WriteResult:
        """Write the chain to ``store``."""
        return store.write_batch(self.batch())
