"""The chain store: an embedded DuckDB file with the normalised chain model, and Parquet."""

from fundtrail.store.chainstore import ChainStore, WriteResult

__all__ = ["ChainStore", "WriteResult"]
