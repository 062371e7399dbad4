"""A server, an ingest and CLI traces on one home at the same time.

`fundtrail serve` answers address look-ups (and so hosts the chain store) while `fundtrail ingest
bitcoin-etl` appends a second part of a generated chain as another process, and CLI traces and store
reads run beside both. Every answer must be whole and consistent: the server's look-ups of history do
not change, a backward trace into history gives the same document every time, every read sees whole
blocks only, and the final store equals one written by a single uninterrupted ingest.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from fundtrail.store import ChainStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TXS_PER_BLOCK = 300
PART_A = range(0, 30)
PART_B = range(30, 110)
CLI = [sys.executable, "-c", "from fundtrail.cli.main import run; run()"]
TABLES = ("blocks", "txs", "outputs", "inputs", "addresses")
ID = {"outputs": "address_id", "inputs": "address_id", "addresses": "id"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def txid(h: int, i: int) -> str:
    return hashlib.sha256((f"tx {h} {i}" if i else f"cb {h}").encode()).hexdigest()


def write_export(path: Path, heights: range) -> None:
    """bitcoin-etl lines: each block's coinbase pays outputs that the next block's transactions spend."""
    rng = random.Random(heights.start)
    # each part pays its own addresses, so that what part A's addresses show depends on part A only
    keys = [random.Random(heights.start * 100_000 + k).randbytes(20).hex() for k in range(2_000)]
    with path.open("wb") as f:
        for h in heights:
            head = {"block_number": h, "block_hash": hashlib.sha256(f"block {h}".encode()).hexdigest(),
                    "block_timestamp": 1_500_000_000 + 600 * h}
            f.write(orjson.dumps({"hash": txid(h, 0), **head, "is_coinbase": True, "index": 0, "inputs": [],
                                  "outputs": [{"index": i, "script_hex": f"76a914{keys[i]}88ac",
                                               "type": "pubkeyhash", "addresses": [], "value": 100_000}
                                              for i in range(TXS_PER_BLOCK)]}) + b"\n")
            for i in range(1, TXS_PER_BLOCK if h else 1):
                inputs = [{"index": 0, "spent_transaction_hash": txid(h - 1, 0), "spent_output_index": i,
                           "sequence": 4294967295, "addresses": [], "value": None}]
                if h >= 2:
                    inputs.append({"index": 1, "spent_transaction_hash": txid(h - 1, i),
                                   "spent_output_index": 1,
                                   "sequence": 4294967295, "addresses": [], "value": None})
                f.write(orjson.dumps({
                    "hash": txid(h, i), **head, "is_coinbase": False, "index": i, "inputs": inputs,
                    "outputs": [{"index": 0, "script_hex": f"0014{keys[rng.randrange(2000)]}",
                                 "type": "witness_v0_keyhash", "addresses": [], "value": 60_000},
                                {"index": 1, "script_hex": f"76a914{keys[rng.randrange(2000)]}88ac",
                                 "type": "pubkeyhash", "addresses": [], "value": 39_000}]}) + b"\n")


def ingest(export: Path, home: Path) -> list[str]:
    return [*CLI, "ingest", "bitcoin-etl", str(export), "--chain", "btc", "--home", str(home)]


def document(base: str, path: str, headers: dict[str, str]) -> object:
    """A GET's document, following the API's 202 job (a slow look-up finishes in the background)."""
    answer = httpx.get(base + path, headers=headers, timeout=30)
    deadline = time.monotonic() + 60
    while answer.status_code == 202:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.1)
        job = httpx.get(base + answer.json()["location"], headers=headers, timeout=30)
        assert job.status_code == 200, job.text
        if job.json()["status"] != "running":
            assert job.json()["status"] == "done", job.text
            return job.json()["result"]
    assert answer.status_code == 200, answer.text
    return answer.json()


def trace(home: Path, seed: str) -> dict[str, object]:
    done = subprocess.run([*CLI, "trace", seed, "--direction", "backward", "--max-hops", "3",
                           "--home", str(home),
                           "--format", "json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    return {k: doc[k] for k in ("endpoints", "flows") if k in doc}


def content(home: Path) -> dict[str, tuple[int, str]]:
    """Each table's rows (address ids, dense numbers given in order of arrival, left out) and their hash."""
    with ChainStore.open_home(home, read_only=True) as store:
        return {t: (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
                for t in TABLES for rows in [store.query(f"SELECT * EXCLUDE ({ID[t]}) FROM {t} ORDER BY ALL"
                                                         if t in ID else f"SELECT * FROM {t} ORDER BY ALL")]}


def whole_blocks_only(home: Path) -> int:
    """One snapshot: every stored block has all its transactions; returns how many blocks."""
    with ChainStore.open_home(home, read_only=True) as store:
        store.con.execute("BEGIN TRANSACTION")
        blocks, declared = store.query("SELECT count(*), coalesce(sum(tx_count), 0) FROM blocks")[0]
        assert store.query("SELECT count(*) FROM txs") == [(declared,)]
        store.con.execute("COMMIT")
        return int(blocks)


def test_server_ingest_and_cli_traces_share_one_home(tmp_path: Path, home: Path, cli) -> None:
    part_a, part_b, whole = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "whole.json"
    write_export(part_a, PART_A)
    write_export(part_b, PART_B)
    whole.write_bytes(part_a.read_bytes() + part_b.read_bytes())
    h = str(home)
    for args in (["db", "agency", "--name", "Test Unit", "--jurisdiction", "EE", "--home", h],
                 ["user", "add", "admin", "--name", "Admin", "--role", "admin", "--unit", "IT",
                  "--jurisdiction", "EE", "--home", h],
                 ["user", "add", "ana", "--name", "Ana", "--role", "analyst", "--unit", "Cyber",
                  "--jurisdiction", "EE", "--home", h, "--as", "admin"]):
        assert cli(*args).exit_code == 0
    made = cli("token", "create", "ana", "--home", h, "--format", "json")
    assert made.exit_code == 0, made.output
    headers = {"Authorization": f"Bearer {json.loads(made.stdout)['token']}"}
    assert subprocess.run(ingest(part_a, home), capture_output=True, timeout=120).returncode == 0
    with ChainStore.open_home(home, read_only=True) as store:
        # an address of part A that no block of part B pays or spends from
        (address,) = store.query("""SELECT o.address FROM outputs o JOIN txs t USING (chain, txid)
                                    GROUP BY o.address
                                    HAVING bool_and(o.height < 29 OR (o.n = 0 AND NOT t.coinbase))
                                    ORDER BY o.address LIMIT 1""")[0]
    seed = f"{txid(20, 7)}:0"
    before_trace = trace(home, seed)
    assert before_trace["flows"], "the backward trace found no history"

    port = free_port()
    env = {**os.environ, "FUNDTRAIL_USER": ""}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([*CLI, "serve", "--home", h, "--host", "127.0.0.1", "--port", str(port),
                               "--log-level", "warning", "--no-access-log"],
                              stdout=log, stderr=subprocess.STDOUT,
                              env=env)
    base = f"http://127.0.0.1:{port}"
    writer = None
    try:
        wait_for(f"{base}/api/auth/me", server)
        path = f"/api/chains/btc/addresses/{address}"
        first = document(base, path, headers)
        writer = subprocess.Popen(ingest(part_b, home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seen_blocks = [whole_blocks_only(home)]
        traces = 0
        while writer.poll() is None or traces < 2:
            assert document(base, path, headers) == first
            assert trace(home, seed) == before_trace
            traces += 1
            seen_blocks.append(whole_blocks_only(home))
        assert writer.wait(timeout=120) == 0, writer.stderr.read().decode() if writer.stderr else ""
        assert seen_blocks == sorted(seen_blocks)  # the chain only grows, block by whole block
        assert seen_blocks[-1] == len(PART_A) + len(PART_B)
        assert server.poll() is None, "the server stopped"
        late = document(base, f"/api/chains/btc/transactions/{txid(100, 3)}", headers)
        # the server sees what the ingest wrote
        assert isinstance(late, dict) and late["txid"] == txid(100, 3)
    finally:
        for process in (writer, server):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
        log.close()
    clean = tmp_path / "clean"
    assert subprocess.run(ingest(whole, clean), capture_output=True, timeout=120).returncode == 0
    assert content(home) == content(clean)
