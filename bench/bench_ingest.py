"""Ingest throughput of each reader into the chain store, against a plain per-transaction SQLite loop.

Machine this was written for: 2 cores, 24 GiB. Run: ``.venv/bin/python bench/bench_ingest.py``
(``--txs N`` for the bitcoin-etl size, ``--gigabyte`` to also ingest a ~1 GB file in a subprocess and
report its peak memory, which shows that the reader streams).

Readers measured:
- bitcoin-etl JSON lines: a generated file (real P2PKH scripts and addresses, 1-3 inputs, 2 outputs);
- raw blocks: the real mainnet blocks of ../shared/data/bitcoin_raw_blocks (blocks 1-255, 277,647,
  540,107, 574,200), parsed and written;
- ethereum-etl CSV: a generated export (native transfers and token transfers).
The baseline reads the same input with ``json.loads``/``csv`` and inserts row by row into SQLite, one
``execute`` per transaction, output and input, committing at the end.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import base58
import orjson
from rich.console import Console
from rich.table import Table

from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_batches

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FUNDTRAIL_SHARED_DATA", ROOT.parent / "shared" / "data"))
console = Console()


# ---------------------------------------------------------------------------------------- inputs

def _p2pkh(rng: random.Random) -> tuple[str, str]:
    h160 = rng.randbytes(20)
    return base58.b58encode_check(b"\x00" + h160).decode(), "76a914" + h160.hex() + "88ac"


def generate_bitcoin_etl(path: Path, n_txs: int, *, seed: int = 7, per_block: int = 2000) -> int:
    """Write a bitcoin-etl transactions file of ``n_txs`` plausible transactions; returns its size."""
    rng = random.Random(seed)
    utxos: list[tuple[str, int, str, str, int]] = []  # txid, n, address, script, value
    height = 0
    written = 0
    with path.open("wb") as f:
        while written < n_txs:
            block_hash = hashlib.sha256(f"block{height}".encode()).hexdigest()
            ts = 1_600_000_000 + height * 600
            for index in range(min(per_block, n_txs - written)):
                txid = hashlib.sha256(f"tx{written}".encode()).hexdigest()
                if index == 0 or len(utxos) < 10:
                    ins, total = [], 625_000_000
                else:
                    ins = [utxos.pop(rng.randrange(len(utxos))) for _ in range(rng.randint(1, 3))]
                    total = sum(u[4] for u in ins)
                fee = 0 if not ins else min(total // 100, 5000)
                pay = rng.randint(1, max(1, (total - fee) - 1))
                outs = []
                for n, value in enumerate((pay, total - fee - pay)):
                    addr, script = _p2pkh(rng)
                    outs.append({"index": n, "script_asm": "", "script_hex": script, "required_signatures": 1,
                                 "type": "pubkeyhash", "addresses": [addr], "value": value})
                    if value > 0:
                        utxos.append((txid, n, addr, script, value))
                inputs = [{"index": i, "spent_transaction_hash": u[0], "spent_output_index": u[1],
                           "script_asm": "", "script_hex": "", "sequence": 4294967295,
                           "required_signatures": None, "type": "pubkeyhash", "addresses": [u[2]],
                           "value": u[4]}
                          for i, u in enumerate(ins)]
                row = {"hash": txid, "size": 226, "virtual_size": 226, "version": 1, "lock_time": 0,
                       "block_number": height, "block_hash": block_hash, "block_timestamp": ts,
                       "is_coinbase": not ins, "index": index, "inputs": inputs, "outputs": outs,
                       "input_count": len(inputs), "output_count": 2, "input_value": total if ins else 0,
                       "output_value": total - fee, "fee": fee}
                f.write(orjson.dumps(row) + b"\n")
                written += 1
            height += 1
    return path.stat().st_size


def generate_ethereum_etl(folder: Path, n_txs: int, *, seed: int = 11, per_block: int = 200) -> None:
    """Write blocks.csv, transactions.csv, receipts.csv and token_transfers.csv of ``n_txs`` transactions."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    accounts = ["0x" + rng.randbytes(20).hex() for _ in range(5000)]
    token = "0x" + rng.randbytes(20).hex()
    n_blocks = (n_txs + per_block - 1) // per_block
    with (folder / "blocks.csv").open("w", newline="") as fb, \
         (folder / "transactions.csv").open("w", newline="") as ft, \
         (folder / "receipts.csv").open("w", newline="") as fr, \
         (folder / "token_transfers.csv").open("w", newline="") as fk:
        wb, wt, wr, wk = csv.writer(fb), csv.writer(ft), csv.writer(fr), csv.writer(fk)
        wb.writerow(["number", "hash", "parent_hash", "timestamp", "transaction_count"])
        wt.writerow(["hash", "nonce", "block_hash", "block_number", "transaction_index", "from_address",
                     "to_address", "value", "gas", "gas_price", "input", "block_timestamp"])
        wr.writerow(["transaction_hash", "transaction_index", "block_hash", "block_number", "gas_used",
                     "status", "effective_gas_price"])
        wk.writerow(["token_address", "from_address", "to_address", "value", "transaction_hash", "log_index",
                     "block_number"])
        done = 0
        for b in range(n_blocks):
            bh = "0x" + hashlib.sha256(f"eb{b}".encode()).hexdigest()
            parent = "0x" + hashlib.sha256(f"eb{b - 1}".encode()).hexdigest()
            count = min(per_block, n_txs - done)
            wb.writerow([b, bh, parent, 1_600_000_000 + 12 * b, count])
            for i in range(count):
                th = "0x" + hashlib.sha256(f"et{done}".encode()).hexdigest()
                frm, to = rng.choice(accounts), rng.choice(accounts)
                wt.writerow([th, i, bh, b, i, frm, to, rng.randint(1, 10**20), 21000, 10**10, "0x",
                             1_600_000_000 + 12 * b])
                wr.writerow([th, i, bh, b, 21000, 1, 10**10])
                if i % 2:
                    wk.writerow([token, frm, to, rng.randint(1, 10**24), th, 0, b])
                done += 1


# -------------------------------------------------------------------------------------- baselines

BASELINE_DDL = """
CREATE TABLE txs(txid TEXT, height INTEGER, time INTEGER, fee INTEGER, coinbase INTEGER);
CREATE TABLE outputs(txid TEXT, n INTEGER, address TEXT, value INTEGER, script_type TEXT);
CREATE TABLE inputs(txid TEXT, n INTEGER, prev_txid TEXT, prev_n INTEGER, address TEXT, value INTEGER);
CREATE TABLE transfers(txid TEXT, kind TEXT, asset TEXT, from_address TEXT, to_address TEXT, value TEXT);
"""


def baseline_bitcoin_etl(path: Path, db: Path) -> int:
    """The straightforward way: json.loads per line, one INSERT per row into SQLite."""
    con = sqlite3.connect(db)
    con.executescript(BASELINE_DDL)
    n = 0
    with path.open("rb") as f:
        for line in f:
            tx = json.loads(line)
            con.execute("INSERT INTO txs VALUES (?,?,?,?,?)", (tx["hash"], tx["block_number"],
                        tx["block_timestamp"], tx["fee"], tx["is_coinbase"]))
            for o in tx["outputs"]:
                con.execute("INSERT INTO outputs VALUES (?,?,?,?,?)", (tx["hash"], o["index"],
                            (o["addresses"] or [None])[0], o["value"], o["type"]))
            for i in tx["inputs"]:
                con.execute("INSERT INTO inputs VALUES (?,?,?,?,?,?)", (tx["hash"], i["index"],
                            i["spent_transaction_hash"], i["spent_output_index"],
                            (i["addresses"] or [None])[0], i["value"]))
            n += 1
    con.commit()
    con.close()
    return n


def baseline_raw_blocks(blocks: list[bytes], db: Path) -> int:
    """Parse each block with FundTrail's parser, then insert row by row into SQLite."""
    from fundtrail.chains.bitcoin.raw import parse_block
    from fundtrail.domain.scripts import classify_script

    con = sqlite3.connect(db)
    con.executescript(BASELINE_DDL)
    n = 0
    for h, data in enumerate(blocks):
        block = parse_block(data)
        for tx in block.txs:
            con.execute("INSERT INTO txs VALUES (?,?,?,?,?)", (tx.txid, h, block.header.time, None, 0))
            for k, out in enumerate(tx.outputs):
                stype, addr = classify_script("btc", bytes(out.script))
                con.execute("INSERT INTO outputs VALUES (?,?,?,?,?)",
                            (tx.txid, k, addr, out.value, stype.value))
            for k, txin in enumerate(tx.inputs):
                con.execute("INSERT INTO inputs VALUES (?,?,?,?,?,?)",
                            (tx.txid, k, txin.prev_txid, txin.prev_n, None, None))
            n += 1
    con.commit()
    con.close()
    return n


def baseline_ethereum_etl(folder: Path, db: Path) -> int:
    """csv.DictReader per row, one INSERT per transfer into SQLite."""
    con = sqlite3.connect(db)
    con.executescript(BASELINE_DDL)
    n = 0
    with (folder / "transactions.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            con.execute("INSERT INTO transfers VALUES (?,?,?,?,?,?)", (row["hash"], "native", "native",
                        row["from_address"], row["to_address"], row["value"]))
            n += 1
    with (folder / "token_transfers.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            con.execute("INSERT INTO transfers VALUES (?,?,?,?,?,?)", (row["transaction_hash"], "token",
                        row["token_address"], row["from_address"], row["to_address"], row["value"]))
    con.commit()
    con.close()
    return n


# ------------------------------------------------------------------------------------------ runs

def _timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _read_raw_blocks() -> list[bytes]:
    import bz2

    from fundtrail.chains.bitcoin.raw import iter_block_bytes

    folder = SHARED / "bitcoin_raw_blocks"
    out: list[bytes] = []
    for name in ("blocks1-256.bz2", "277647.dat.bz2"):
        with bz2.open(folder / name, "rb") as f:
            out.extend(iter_block_bytes(f, bytes.fromhex("f9beb4d9"), str(folder / name)))
    for p in sorted(folder.glob("block-*.blk")):
        out.append(p.read_bytes())
    return out


def main() -> None:
    """Run each reader and its baseline; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=200_000, help="bitcoin-etl transactions to generate")
    parser.add_argument("--eth-txs", type=int, default=100_000, help="ethereum-etl transactions to generate")
    parser.add_argument("--gigabyte", action="store_true", help="also stream a ~1 GB bitcoin-etl file")
    args = parser.parse_args()

    from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
    from fundtrail.chains.bitcoin.raw import read_block_files
    from fundtrail.chains.evm.etl import read_ethereum_etl

    rows: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        etl = tmp / "transactions.json"
        size = generate_bitcoin_etl(etl, args.txs)
        console.print(f"bitcoin-etl input: {args.txs:,} txs, {size / 1e6:.0f} MB")
        store = ChainStore(tmp / "a.duckdb")
        report, t_ours = _timed(lambda: ingest_batches(store, "btc", read_bitcoin_etl([etl], "btc")))
        store.close()
        n_base, t_base = _timed(lambda: baseline_bitcoin_etl(etl, tmp / "a.sqlite"))
        assert report.txs_written == n_base == args.txs
        rows.append(("bitcoin-etl JSON lines", args.txs, t_ours, t_base))

        if (SHARED / "bitcoin_raw_blocks").is_dir():
            blocks = _read_raw_blocks()
            raw = SHARED / "bitcoin_raw_blocks"
            files = [raw / n for n in ("blocks1-256.bz2", "277647.dat.bz2")] + sorted(raw.glob("block-*.blk"))
            store = ChainStore(tmp / "b.duckdb")
            report, t_ours = _timed(lambda: ingest_batches(
                store, "btc",
                read_block_files(files, "btc", known_height=lambda h: store.height_of("btc", h))))
            store.close()
            n_base, t_base = _timed(lambda: baseline_raw_blocks(blocks, tmp / "b.sqlite"))
            rows.append(("raw blocks (real mainnet)", report.txs_written, t_ours, t_base))

        eth = tmp / "eth"
        generate_ethereum_etl(eth, args.eth_txs)
        store = ChainStore(tmp / "c.duckdb")
        report, t_ours = _timed(lambda: ingest_batches(store, "eth", read_ethereum_etl(eth, "eth")))
        store.close()
        n_base, t_base = _timed(lambda: baseline_ethereum_etl(eth, tmp / "c.sqlite"))
        rows.append(("ethereum-etl CSV", args.eth_txs, t_ours, t_base))

        big = None
        if args.gigabyte:
            gz = tmp / "big.json"
            n_big = 1_000_000
            size = generate_bitcoin_etl(gz, n_big, seed=3)
            code = ("import sys, resource; from fundtrail.store import ChainStore; "
                    "from fundtrail.store.ingest import ingest_batches; "
                    "from fundtrail.chains.bitcoin.etl import read_bitcoin_etl; from pathlib import Path; "
                    "s = ChainStore(sys.argv[2]); "
                    "r = ingest_batches(s, 'btc', read_bitcoin_etl([Path(sys.argv[1])], 'btc')); s.close(); "
                    "print(r.txs_written, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code, str(gz), str(tmp / "big.duckdb")],
                                 check=True, capture_output=True, text=True).stdout.split()
            big = (size, int(out[0]), time.perf_counter() - start, int(out[1]) / 1024)

    table = Table(title="Ingest throughput into the chain store (2 cores, 24 GiB)")
    for col in ("reader", "transactions", "FundTrail tx/s", "baseline tx/s (SQLite loop)", "speed-up"):
        table.add_column(col, justify="right" if col != "reader" else "left")
    for name, n, ours, base in rows:
        table.add_row(name, f"{n:,}", f"{n / ours:,.0f}", f"{n / base:,.0f}", f"{base / ours:.1f}x")
    console.print(table)
    if big:
        size, n, secs, rss_mb = big
        console.print(f"streaming check: {size / 1e9:.2f} GB bitcoin-etl file, {n:,} txs in {secs:.0f} s "
                      f"({n / secs:,.0f} tx/s), peak memory {rss_mb:,.0f} MiB")
    console.print(f"peak memory of this process: "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
