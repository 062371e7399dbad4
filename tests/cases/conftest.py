"""Fixtures of the case layer (``case_db`` and ``agency_db`` come from tests/conftest.py)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ransom_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A folder whose chain store holds the small ransomware chain of ``fundtrail.cases.testing`` (and its
    TagPack), and the chain's trace; made once per session."""
    from fundtrail.cases.evidence import run_trace
    from fundtrail.cases.testing import RANSOM, ransom_chain
    from fundtrail.store import ChainStore

    folder = tmp_path_factory.mktemp("ransom-chain")
    with ChainStore.open_home(folder) as store:
        ransom_chain(store, folder)
        trace = run_trace(store, "btc", [RANSOM], {})
    return folder, trace


@pytest.fixture()
def ransom_trace(home: Path, tmp_path: Path, ransom_template: tuple[Path, dict]) -> dict:
    """The home's chain store holds the small ransomware chain of ``fundtrail.cases.testing``; its trace.

    The store is a copy of the session's (see :func:`ransom_template`), the trace a copy of its trace.
    """
    folder, trace = ransom_template
    shutil.copyfile(folder / "chain.duckdb", home / "chain.duckdb")
    shutil.copyfile(folder / "northwind.yaml", tmp_path / "northwind.yaml")
    return copy.deepcopy(trace)


@pytest.fixture()
def chain_store(home: Path, ransom_trace: dict):
    """The home's chain store (read-only), holding the ransomware chain."""
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home, read_only=True) as store:
        yield store
