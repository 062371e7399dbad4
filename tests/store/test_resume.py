"""An ingest killed mid-run leaves a consistent store, and running it again gives the clean result.

``fundtrail -v ingest bitcoin-etl`` runs in a subprocess on a generated export of five 20,000-tx
batches. The reader logs each batch as it hands it over; once the third is announced the first two
are committed, and the process gets SIGKILL while it writes the third. The store must then hold only
complete blocks, and the same command run again must leave it equal, table for table, to a single
uninterrupted run.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from fundtrail.store import ChainStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BLOCKS = 100
TXS_PER_BLOCK = 1_000  # 100,000 txs: five batches at the CLI's 20,000
TABLES = ("blocks", "txs", "outputs", "inputs", "addresses")
CLI = ["-c", "from fundtrail.cli.main import run; run()"]


def write_export(path: Path) -> None:
    """A bitcoin-etl export: each block's coinbase pays 1,000 outputs that the next block spends."""
    rng = random.Random(5)
    keys = [rng.randbytes(20).hex() for _ in range(3_000)]
    with path.open("wb") as f:
        for h in range(BLOCKS):
            block_hash = hashlib.sha256(f"block {h}".encode()).hexdigest()
            head = {"block_number": h, "block_hash": block_hash, "block_timestamp": 1_500_000_000 + 600 * h}
            coinbase = hashlib.sha256(f"cb {h}".encode()).hexdigest()
            f.write(orjson.dumps({"hash": coinbase, **head, "is_coinbase": True, "index": 0, "inputs": [],
                                  "outputs": [{"index": i, "script_hex": f"76a914{keys[i % 3000]}88ac",
                                               "type": "pubkeyhash", "addresses": [], "value": 100_000}
                                              for i in range(TXS_PER_BLOCK)]}) + b"\n")
            for i in range(1, TXS_PER_BLOCK if h else 1):
                spent = hashlib.sha256(f"cb {h - 1}".encode()).hexdigest()
                inputs = [{"index": 0, "spent_transaction_hash": spent, "spent_output_index": i,
                           "sequence": 4294967295, "addresses": [], "value": None}]
                if h >= 2:
                    inputs.append({"index": 1, "spent_transaction_hash": hashlib.sha256(
                        f"tx {h - 1} {i}".encode()).hexdigest(), "spent_output_index": 1,
                        "sequence": 4294967295, "addresses": [], "value": None})
                f.write(orjson.dumps({
                    "hash": hashlib.sha256(f"tx {h} {i}".encode()).hexdigest(), **head, "is_coinbase": False,
                    "index": i, "inputs": inputs,
                    "outputs": [{"index": 0, "script_hex": f"0014{keys[rng.randrange(3000)]}",
                                 "type": "witness_v0_keyhash", "addresses": [], "value": 60_000},
                                {"index": 1, "script_hex": f"76a914{keys[rng.randrange(3000)]}88ac",
                                 "type": "pubkeyhash", "addresses": [], "value": 39_000}]}) + b"\n")


def command(export: Path, home: Path) -> list[str]:
    return [sys.executable, *CLI, "-v", "ingest", "bitcoin-etl", str(export), "--chain", "btc",
            "--home", str(home)]


def content(home: Path) -> dict[str, tuple[int, str]]:
    """Row count and a hash of the sorted rows of each table."""
    with ChainStore.open_home(home, read_only=True) as store:
        return {t: (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
                for t in TABLES for rows in [store.query(f"SELECT * FROM {t} ORDER BY ALL")]}


def assert_consistent(home: Path) -> int:
    """Only whole blocks are stored; returns how many."""
    with ChainStore.open_home(home, read_only=True) as store:
        assert store.query(
            """SELECT count(*) FROM blocks b WHERE b.tx_count <> (
                 SELECT count(*) FROM txs t WHERE t.chain = b.chain AND t.height = b.height)""") == [(0,)]
        for table in ("txs", "outputs", "inputs"):
            assert store.query(f"""SELECT count(*) FROM {table} x WHERE NOT EXISTS (
                                   SELECT 1 FROM blocks b WHERE b.chain = x.chain
                                   AND b.height = x.height)""") == [(0,)]
        for table in ("outputs", "inputs"):
            assert store.query(f"""SELECT count(*) FROM {table} x WHERE NOT EXISTS (
                                   SELECT 1 FROM txs t WHERE t.chain = x.chain AND t.txid = x.txid
                                   AND t.height = x.height)""") == [(0,)]
        heights = [h for (h,) in store.query("SELECT height FROM blocks ORDER BY height")]
        # the outputs of each block are all there: 1,000 for the coinbase plus two per spend
        expected = sum(1000 + (2 * 999 if h else 0) for h in heights)
        assert store.query("SELECT count(*) FROM outputs") == [(expected,)]
        return len(heights)


def test_killed_ingest_resumes_to_the_clean_result(tmp_path: Path) -> None:
    export = tmp_path / "transactions.json"
    write_export(export)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    killed_home = tmp_path / "killed"
    process = subprocess.Popen(command(export, killed_home), stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, env=env)
    assert process.stderr is not None
    announced = []
    deadline = time.monotonic() + 240
    for raw in process.stderr:
        line = raw.decode(errors="replace")
        if "bitcoin-etl batch" in line:
            announced.append(line)
            if len(announced) == 3:  # batches 1 and 2 are committed, batch 3 is being written
                process.send_signal(signal.SIGKILL)
                break
        assert time.monotonic() < deadline, "ingest did not progress"
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"not killed mid-run: {announced}"

    stored = assert_consistent(killed_home)
    assert 40 <= stored < BLOCKS  # at least the two committed batches, not everything

    resumed = subprocess.run(command(export, killed_home), capture_output=True, env=env, timeout=240)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert assert_consistent(killed_home) == BLOCKS

    clean_home = tmp_path / "clean"
    clean = subprocess.run(command(export, clean_home), capture_output=True, env=env, timeout=240)
    assert clean.returncode == 0, clean.stderr.decode()
    assert content(killed_home) == content(clean_home)
    with ChainStore.open_home(clean_home, read_only=True) as store:
        assert store.query("SELECT count(*), count(value) FROM inputs") == [(99 * 999 + 98 * 999,) * 2]
