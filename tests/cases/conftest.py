"""Fixtures of the case layer (``case_db`` and ``agency_db`` come from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def ransom_trace(home: Path, tmp_path: Path) -> dict:
    """The home's chain store holds the small ransomware chain of ``fundtrail.cases.testing``; its trace."""
    from fundtrail.cases.evidence import run_trace
    from fundtrail.cases.testing import RANSOM, ransom_chain
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home) as store:
        ransom_chain(store, tmp_path)
        return run_trace(store, "btc", [RANSOM], {})


@pytest.fixture()
def chain_store(home: Path, ransom_trace: dict):
    """The home's chain store (read-only), holding the ransomware chain."""
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home, read_only=True) as store:
        yield store
