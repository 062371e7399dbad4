"""The ingest service: write reader batches into the chain store, idempotently and resumably."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fundtrail.chains.tables import UtxoTables
from fundtrail.domain.records import AccountBatch, UtxoBatch
from fundtrail.domain.sources import BlockSource
from fundtrail.store.chainstore import ChainStore, WriteResult

log = logging.getLogger(__name__)

ProgressFn = Callable[[UtxoBatch | UtxoTables | AccountBatch, WriteResult], None]


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What an ingest run did, per chain."""

    chain: str
    blocks_written: int
    blocks_skipped: int
    txs_written: int
    inputs_resolved: int = 0
    reorgs: int = 0
    notes: tuple[str, ...] = ()  # limits of what the source could give (no traces, ...)

    def as_dict(self) -> dict[str, int | str | list[str]]:
        """JSON-ready form."""
        return {"chain": self.chain, "blocks_written": self.blocks_written,
                "blocks_skipped": self.blocks_skipped, "txs_written": self.txs_written,
                "inputs_resolved": self.inputs_resolved, "reorgs": self.reorgs, "notes": list(self.notes)}


def ingest_batches(store: ChainStore, chain: str, batches: Iterable[UtxoBatch | UtxoTables | AccountBatch],
                   on_batch: ProgressFn | None = None) -> IngestReport:
    """Write every batch (each one transaction); blocks already stored are skipped.

    A reader error stops the run after the last complete batch: what was written stays, and
    running the same command again completes it.
    """
    total = WriteResult()
    store.prepare_ingest()
    for batch in batches:
        result = store.write_batch(batch)
        total = total + result
        if on_batch is not None:
            on_batch(batch, result)
    resolved = _resolve(store, chain, total)
    return IngestReport(chain, total.blocks_written, total.blocks_skipped, total.txs_written, resolved)


def _resolve(store: ChainStore, chain: str, total: WriteResult) -> int:
    """Resolve inputs left unresolved by the batches (spends of older outputs, out-of-order blocks),
    also when a run killed after its last batch left them so and the rerun writes nothing."""
    if total.blocks_written or store.has_unresolved_inputs(chain):
        return store.resolve_inputs(chain)
    return 0


MAX_REORG_DEPTH = 1000


def fork_point(store: ChainStore, source: BlockSource, height: int) -> int:
    """The highest height at or below ``height`` where the store and the source agree (-1: none)."""
    h = height
    while h >= 0 and height - h <= MAX_REORG_DEPTH:
        stored = store.block_hash(source.chain, h)
        if stored is None or stored == source.block_hash(h):
            return h
        h -= 1
    return h


def ingest_from_source(store: ChainStore, source: BlockSource, start: int, end: int,
                       on_batch: ProgressFn | None = None) -> IngestReport:
    """Ingest ``start..end`` from a node, rolling back and re-reading when the node reorganised.

    Before each batch is written, its first block's parent hash is checked against the stored block
    below it; on a mismatch the store is rolled back to the last common block and reading resumes
    there. Stored blocks inside the range whose hash differs from the node's are replaced the same way.
    """
    chain = source.chain
    total = WriteResult()
    store.prepare_ingest()
    reorgs = 0
    next_height = start
    while next_height <= end:
        restarted = False
        for batch in source.read(next_height, end):
            if not batch.blocks:
                continue
            first = min(batch.blocks, key=lambda b: b.height)
            below = store.block_hash(chain, first.height - 1) if first.height > 0 else None
            stale = [b for b in batch.blocks
                     if (have := store.block_hash(chain, b.height)) is not None and have != b.hash]
            if (below is not None and first.prev_hash is not None and below != first.prev_hash) or stale:
                fork = fork_point(store, source, first.height - 1 if not stale else
                                  min(b.height for b in stale) - 1)
                log.warning("%s: reorg detected at height %d; rolling back to %d", chain, first.height, fork)
                store.rollback_to(chain, fork)
                reorgs += 1
                next_height = max(fork + 1, 0)
                restarted = True
                break
            result = store.write_batch(batch)
            total = total + result
            next_height = max(b.height for b in batch.blocks) + 1
            if on_batch is not None:
                on_batch(batch, result)
        if not restarted:
            break
    resolved = _resolve(store, chain, total)
    notes = tuple(getattr(source, "notes", ()))
    return IngestReport(chain, total.blocks_written, total.blocks_skipped, total.txs_written, resolved,
                        reorgs, notes)
