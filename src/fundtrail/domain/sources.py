"""The port of node-backed block sources: readers in ``chains/`` implement it, the ingest loop uses it."""

from __future__ import annotations

from collections.abc import Iterable

from fundtrail.domain.records import AccountBatch, UtxoBatch


class BlockSource:
    """A port for node-backed sources (JSON-RPC) that can re-read blocks after a reorg.

    ``read(start, end)`` yields batches of complete, consecutive blocks in height order;
    ``block_hash(height)`` answers the node's current hash at a height.
    """

    chain: str

    def block_hash(self, height: int) -> str:  # pragma: no cover - protocol
        """The source's current block hash at ``height``."""
        raise NotImplementedError

    def tip(self) -> int:  # pragma: no cover - protocol
        """The source's highest block height."""
        raise NotImplementedError

    def read(self, start: int, end: int) -> Iterable[UtxoBatch | AccountBatch]:  # pragma: no cover
        """Batches of blocks ``start..end`` inclusive."""
        raise NotImplementedError
