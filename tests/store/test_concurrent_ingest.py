"""Several ingests of one chain on one home at the same time.

Three `fundtrail ingest bitcoin-etl` processes start together on one home: two of the whole export and
one of its second part. Without one writer at a time they would each see no stored block, write the
same blocks twice and give different addresses the same id. The final store must equal one written by
a single ingest of the whole export: every block once, every address once with its own dense id, and
every output and input pointing at the id of its own address.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_concurrent_use import PART_A, PART_B, content, ingest, write_export

from fundtrail.store import ChainStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def ids_consistent(home: Path) -> None:
    """Address ids are dense, unique per chain, one per address, and outputs and inputs use them."""
    with ChainStore.open_home(home, read_only=True) as store:
        (n, distinct_ids, distinct_addresses, low, high), = store.query(
            "SELECT count(*), count(DISTINCT id), count(DISTINCT address), min(id), max(id) FROM addresses "
            "WHERE chain = 'btc'")
        assert n == distinct_ids == distinct_addresses, "an address id or an address is stored twice"
        assert (low, high) == (0, n - 1), "address ids are not dense"
        for table in ("outputs", "inputs"):
            (wrong,), = store.query(
                f"""SELECT count(*) FROM {table} t
                    LEFT JOIN addresses a ON a.chain = t.chain AND a.id = t.address_id
                    WHERE t.address IS NOT NULL AND a.address IS DISTINCT FROM t.address""")
            assert wrong == 0, f"{wrong} rows of {table} point at another address's id"
        (twice,), = store.query("SELECT count(*) - count(DISTINCT (chain, height)) FROM blocks")
        assert twice == 0, "a block is stored twice"


def test_three_ingests_of_one_chain_at_once(tmp_path: Path) -> None:
    whole, part_b = tmp_path / "whole.json", tmp_path / "b.json"
    part_a = tmp_path / "a.json"
    write_export(part_a, PART_A)
    write_export(part_b, PART_B)
    whole.write_bytes(part_a.read_bytes() + part_b.read_bytes())
    home = tmp_path / "home"
    runs = [subprocess.Popen(ingest(export, home), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
            for export in (whole, part_b, whole)]
    for run in runs:
        _, err = run.communicate(timeout=240)
        assert run.returncode == 0, err.decode()
    ids_consistent(home)
    clean = tmp_path / "clean"
    assert subprocess.run(ingest(whole, clean), capture_output=True, timeout=120).returncode == 0
    assert content(home) == content(clean)
