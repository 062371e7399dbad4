"""Ingest throughput and memory of each reader into the chain store, against baselines in the same run.

Machine this was written for: 2 cores (shared), 24 GiB. Run: ``.venv/bin/python bench/bench_ingest.py``
(``--sizes 200000,1000000,10000000`` for larger runs; the default is small enough for ``make bench``).

Readers measured, each on a generated input of N transactions, each run in a child process (its peak
RSS is the child's own ``ru_maxrss``):
- raw blocks: a generated ``blk*.dat``-style file (P2PKH outputs, 1-3 inputs spending recent outputs,
  valid merkle roots), parsed and written;
- bitcoin-etl JSON lines: the same shape of transactions in bitcoin-etl's export format (enriched inputs);
- ethereum-etl CSV: native transfers and token transfers.
Per reader: tx/s over the whole run, tx/s per slice (a tenth of the run, at least 1M at 10M) to show
the rate is sustained as the store grows, peak RSS (of the writing process, of the largest process
reading ahead for it, and of the whole ingest: the largest sum of the RSS of the writing process and all
its reading processes, sampled every 0.1 s; shared pages count once per process, so it errs high) and
store bytes per transaction. ``--inputs DIR`` keeps the generated inputs for
the next run. Baselines in the same
run: a plain per-transaction loop inserting into SQLite (one ``execute`` per row, one commit), and DuckDB's
own loader (``read_json`` + ``unnest`` of the JSON lines, ``read_csv`` of the CSVs) into plain tables.
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
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FUNDTRAIL_SHARED_DATA", ROOT.parent / "shared" / "data"))
console = Console(width=150)
MAGIC = bytes.fromhex("f9beb4d9")


# ---------------------------------------------------------------------------------------- inputs

class _World:
    """Transactions of plausible shape: a coinbase per block, then 1-3 inputs spending recent outputs
    (a small pool, as real blocks often spend outputs of the last few blocks) and 2 fresh P2PKH outputs."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        # txid (internal byte order), n, address, script, value
        self.utxos: list[tuple[bytes, int, str, bytes, int]] = []
        self.count = 0

    def fresh(self, k: int) -> list[tuple[str, bytes]]:
        from fundtrail.domain.addresses import b58check_encode_many

        blob = self.rng.randbytes(20 * k)
        hashes = [blob[i:i + 20] for i in range(0, 20 * k, 20)]
        addresses = b58check_encode_many([b"\x00" + h for h in hashes])
        return [(a, b"\x76\xa9\x14" + h + b"\x88\xac") for a, h in zip(addresses, hashes, strict=True)]

    def block(self, count: int) -> list[tuple[bytes, list[Any], list[tuple[int, str, bytes]], int]]:
        """``count`` transactions: (txid, spent utxos, outputs (value, address, script), fee)."""
        rng = self.rng
        fresh = self.fresh(2 * count)
        out = []
        for index in range(count):
            txid = hashlib.sha256(b"tx%d" % self.count).digest()
            self.count += 1
            if index == 0 or not self.utxos:
                ins: list[Any] = []
                total = 625_000_000
            else:
                ins = [self.utxos.pop(rng.randrange(len(self.utxos)))
                       for _ in range(rng.randint(1, min(3, len(self.utxos))))]
                total = sum(u[4] for u in ins)
            fee = 0 if not ins else min(total // 100, 5000)
            pay = rng.randint(1, max(1, (total - fee) - 1))
            outs = []
            for n, value in enumerate((pay, total - fee - pay)):
                address, script = fresh[2 * index + n]
                outs.append((value, address, script))
                if value > 0:
                    self.utxos.append((txid, n, address, script, value))
            out.append((txid, ins, outs, fee))
        return out


def generate_bitcoin_etl(path: Path, n_txs: int, *, seed: int = 7, per_block: int = 2000) -> int:
    """Write a bitcoin-etl transactions file of ``n_txs`` plausible transactions; returns its size."""
    world = _World(seed)
    height = 0
    written = 0
    dumps = orjson.dumps
    with path.open("wb", buffering=1 << 20) as f:
        while written < n_txs:
            block_hash = hashlib.sha256(f"block{height}".encode()).hexdigest()
            ts = 1_600_000_000 + height * 600
            lines = []
            for index, (txid, ins, outs, fee) in enumerate(world.block(min(per_block, n_txs - written))):
                total = sum(u[4] for u in ins) if ins else 625_000_000
                row = {"hash": txid[::-1].hex(), "size": 226, "virtual_size": 226, "version": 1,
                       "lock_time": 0,
                       "block_number": height, "block_hash": block_hash, "block_timestamp": ts,
                       "is_coinbase": not ins, "index": index,
                       "inputs": [{"index": i, "spent_transaction_hash": u[0][::-1].hex(),
                                   "spent_output_index": u[1], "script_asm": "", "script_hex": "",
                                   "sequence": 4294967295, "required_signatures": None, "type": "pubkeyhash",
                                   "addresses": [u[2]], "value": u[4]} for i, u in enumerate(ins)],
                       "outputs": [{"index": n, "script_asm": "", "script_hex": script.hex(),
                                    "required_signatures": 1, "type": "pubkeyhash", "addresses": [address],
                                    "value": value} for n, (value, address, script) in enumerate(outs)],
                       "input_count": len(ins), "output_count": 2, "input_value": total if ins else 0,
                       "output_value": total - fee, "fee": fee}
                lines.append(dumps(row))
                written += 1
            lines.append(b"")
            f.write(b"\n".join(lines))
            height += 1
    return path.stat().st_size


def _varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    return b"\xfd" + struct.pack("<H", n) if n <= 0xFFFF else b"\xfe" + struct.pack("<I", n)


def generate_raw_blocks(path: Path, n_txs: int, *, seed: int = 5, per_block: int = 2000) -> int:
    """Write a blk*.dat-style file (magic + length + block) of ``n_txs`` transactions; returns its size."""
    from fundtrail.chains.bitcoin.raw import merkle_root

    world = _World(seed)
    prev = bytes(32)
    height = 0
    written = 0
    with path.open("wb", buffering=1 << 20) as f:
        while written < n_txs:
            count = min(per_block, n_txs - written)
            # txids are computed from the serialisation, so the world's ids are replaced as we go
            serial: list[bytes] = []
            ids: list[bytes] = []
            renamed: dict[bytes, bytes] = {}
            for index, (wid, ins, outs, _fee) in enumerate(world.block(count)):
                parts = [b"\x01\x00\x00\x00"]
                if index == 0:
                    script = b"\x03" + height.to_bytes(3, "little") + b"\x00" * 4
                    parts += [b"\x01", bytes(32), b"\xff\xff\xff\xff", _varint(len(script)), script,
                              b"\xff\xff\xff\xff"]
                else:
                    parts.append(_varint(len(ins)))
                    for u in ins:
                        parts += [renamed.get(u[0], u[0]), struct.pack("<I", u[1]), b"\x00",
                                  b"\xff\xff\xff\xff"]
                parts.append(_varint(len(outs)))
                for value, _address, script in outs:
                    parts += [struct.pack("<q", value), _varint(len(script)), script]
                parts.append(b"\x00\x00\x00\x00")
                raw = b"".join(parts)
                txid = hashlib.sha256(hashlib.sha256(raw).digest()).digest()
                renamed[wid] = txid
                serial.append(raw)
                ids.append(txid)
            world.utxos = [(renamed.get(u[0], u[0]), *u[1:]) for u in world.utxos]
            header = struct.pack("<I32s32sIII", 2, prev, merkle_root(ids), 1_600_000_000 + height * 600,
                                 0x1D00FFFF, height)
            block = header + _varint(count) + b"".join(serial)
            f.write(MAGIC + struct.pack("<I", len(block)) + block)
            prev = hashlib.sha256(hashlib.sha256(header).digest()).digest()
            written += count
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


def baseline_raw_blocks(path: Path, db: Path) -> int:
    """Parse each block with FundTrail's parser, then insert row by row into SQLite."""
    from fundtrail.chains.bitcoin.raw import iter_block_bytes, parse_block
    from fundtrail.domain.scripts import classify_script

    con = sqlite3.connect(db)
    con.executescript(BASELINE_DDL)
    n = 0
    with path.open("rb") as f:
        for h, data in enumerate(iter_block_bytes(f, MAGIC, str(path))):
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


ETL_COLUMNS = (
    "{hash: 'VARCHAR', block_number: 'BIGINT', block_hash: 'VARCHAR', block_timestamp: 'BIGINT', "
    "is_coinbase: 'BOOLEAN', \"index\": 'INTEGER', fee: 'BIGINT', "
    "inputs: 'STRUCT(\"index\" INTEGER, spent_transaction_hash VARCHAR, spent_output_index INTEGER, "
    "addresses VARCHAR[], \"value\" BIGINT)[]', "
    "outputs: 'STRUCT(\"index\" INTEGER, script_hex VARCHAR, \"type\" VARCHAR, addresses VARCHAR[], "
    "\"value\" BIGINT)[]'}")


def duckdb_bitcoin_etl(path: Path, db: Path) -> int:
    """DuckDB's own loader: read_json with explicit columns, outputs and inputs unnested into tables."""
    import duckdb

    con = duckdb.connect(str(db))
    src = f"read_json('{path}', format = 'newline_delimited', columns = {ETL_COLUMNS})"
    con.execute(f"CREATE TABLE raw AS SELECT * FROM {src}")
    con.execute("CREATE TABLE txs AS SELECT hash, block_number, block_timestamp, fee, is_coinbase FROM raw")
    con.execute("""CREATE TABLE outputs AS SELECT hash AS txid, o.index AS n, o.addresses[1] AS address,
                   o.value AS value, o.type AS script_type
                   FROM (SELECT hash, unnest(outputs) AS o FROM raw)""")
    con.execute("""CREATE TABLE inputs AS SELECT hash AS txid, i.index AS n,
                   i.spent_transaction_hash AS prev_txid,
                   i.spent_output_index AS prev_n, i.addresses[1] AS address, i.value AS value
                   FROM (SELECT hash, unnest(inputs) AS i FROM raw)""")
    con.execute("DROP TABLE raw")
    n = con.execute("SELECT count(*) FROM txs").fetchall()[0][0]
    con.close()
    return int(n)


def duckdb_ethereum_etl(folder: Path, db: Path) -> int:
    """DuckDB's own loader: read_csv of the transactions and token transfers into one table."""
    import duckdb

    con = duckdb.connect(str(db))
    con.execute(f"""CREATE TABLE transfers AS
        SELECT hash AS txid, 'native' AS kind, 'native' AS asset, from_address, to_address,
               value::VARCHAR AS value
        FROM read_csv('{folder / "transactions.csv"}', header = true, all_varchar = true)
        UNION ALL
        SELECT transaction_hash, 'token', token_address, from_address, to_address, value
        FROM read_csv('{folder / "token_transfers.csv"}', header = true, all_varchar = true)""")
    n = con.execute(f"SELECT count(*) FROM read_csv('{folder / 'transactions.csv'}', header = true, "
                    "all_varchar = true)").fetchall()[0][0]
    con.close()
    return int(n)


# ------------------------------------------------------------------------------------------ runs

def child(kind: str, source: Path, store_path: Path, n_expected: int) -> None:
    """One measured run (in this process): prints a JSON line with txs, seconds, slices and peak RSS."""
    start = time.perf_counter()
    slices: list[float] = []
    if kind.startswith("fundtrail-"):
        from fundtrail.store import ChainStore
        from fundtrail.store.ingest import ingest_batches

        reader = kind.removeprefix("fundtrail-")
        store = ChainStore(store_path)
        step = max(n_expected // 10, 1_000_000 if n_expected >= 10_000_000 else 1)
        done = [0, 0.0, start]

        def on_batch(batch: Any, result: Any) -> None:
            done[0] += result.txs_written
            if done[0] // step > len(slices):
                now = time.perf_counter()
                slices.append((done[0] - done[1]) / (now - done[2]))
                done[1], done[2] = done[0], now

        if reader == "bitcoin-etl":
            from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
            batches: Any = read_bitcoin_etl([source], "btc")
            chain = "btc"
        elif reader == "raw":
            from fundtrail.chains.bitcoin.raw import read_block_files
            batches = read_block_files([source], "btc", known_height=lambda h: store.height_of("btc", h))
            chain = "btc"
        else:
            from fundtrail.chains.evm.etl import read_ethereum_etl
            batches = read_ethereum_etl(source, "eth")
            chain = "eth"
        report = ingest_batches(store, chain, batches, on_batch)
        store.close()
        n = report.txs_written
    elif kind == "sqlite-bitcoin-etl":
        n = baseline_bitcoin_etl(source, store_path)
    elif kind == "sqlite-raw":
        n = baseline_raw_blocks(source, store_path)
    elif kind == "sqlite-ethereum-etl":
        n = baseline_ethereum_etl(source, store_path)
    elif kind == "duckdb-bitcoin-etl":
        n = duckdb_bitcoin_etl(source, store_path)
    elif kind == "duckdb-ethereum-etl":
        n = duckdb_ethereum_etl(source, store_path)
    else:
        raise SystemExit(f"unknown run {kind}")
    secs = time.perf_counter() - start
    size = sum(p.stat().st_size for p in store_path.parent.glob(store_path.name + "*"))
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest reading process
    print(json.dumps({"txs": n, "secs": secs, "slices": slices, "bytes": size, "rss_mib": _peak_rss_mib(),
                      "worker_rss_mib": workers}))


def _peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM (ru_maxrss would include the parent's RSS at the fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def grown_store(n_prefill: int, tmp: Path, batches: int = 4) -> list[tuple[str, float, float]]:
    """Seconds per 20,000-tx bitcoin-etl batch written into a store already holding ``n_prefill``
    addresses and outputs: the fast path (address index, windowed resolution) against the plain one it
    replaced (SQL anti-join interning over all addresses, resolution joined against all outputs).
    Returns (path, first batch incl. loading the index, median of the others)."""
    import statistics

    from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
    from fundtrail.store import ChainStore, chainstore

    source = tmp / "grown.json"
    generate_bitcoin_etl(source, 20_000 * batches, seed=9)
    todo = list(read_bitcoin_etl([source], "btc", prefetch=False))
    out = []
    for name in ("fast", "plain"):
        saved = chainstore.load_index, chainstore.RESOLVE_WINDOW
        if name == "plain":
            chainstore.load_index = lambda con, chain: None  # type: ignore[assignment]
            chainstore.RESOLVE_WINDOW = 10**12
        try:
            store = ChainStore(tmp / f"grown-{name}.duckdb")
            store.con.execute(f"INSERT INTO addresses SELECT 'btc', i, 'pre' || i "
                              f"FROM range({n_prefill}) t(i)")
            store.con.execute(f"INSERT INTO outputs SELECT 'btc', md5(i::VARCHAR), 0, -1 - (i // 2000), "
                              f"'pre' || i, i, 1, 'p2pkh' FROM range({n_prefill}) t(i)")
            store.con.execute("CHECKPOINT")
            times = []
            for batch in todo:
                start = time.perf_counter()
                store.write_batch(batch)
                times.append(time.perf_counter() - start)
            store.close()
        finally:
            chainstore.load_index, chainstore.RESOLVE_WINDOW = saved
        out.append((name, times[0], statistics.median(times[1:])))
    source.unlink()
    return out


def _tree_rss_kib(root: int) -> int:
    """The summed VmRSS of ``root`` and all its descendants now (KiB; 0 once it has gone)."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue  # the process ended meanwhile
    return total


def _measure(kind: str, source: Path, store_path: Path, n: int) -> dict[str, Any]:
    """Run one measurement in a child process; while it runs, the summed RSS of its whole process tree
    (the writing process and its reading processes) is sampled every 0.1 s, and the largest sum kept."""
    import threading

    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, str(source), str(store_path), str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    finished = threading.Event()

    def sample() -> None:
        while not finished.wait(0.1):
            peak[0] = max(peak[0], _tree_rss_kib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    finished.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{kind} failed (exit {proc.returncode}):\n{stderr}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["kind"] = kind
    result["tree_rss_mib"] = peak[0] / 1024
    for p in store_path.parent.glob(store_path.name + "*"):
        p.unlink()
    return result


def main() -> None:
    """Run each reader and its baselines at each size; print a table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="200000", help="transactions per run, comma-separated")
    parser.add_argument("--readers", default="raw,bitcoin-etl,ethereum-etl")
    parser.add_argument("--no-baselines", action="store_true", help="measure FundTrail only")
    parser.add_argument("--grown", type=int, default=2_000_000,
                        help="addresses and outputs already in the store for the write-path "
                             "comparison (0: skip)")
    parser.add_argument("--tmp", default=None, help="folder for inputs and stores (default: a temporary one)")
    parser.add_argument("--inputs", default=None,
                        help="folder keeping the generated inputs between runs (default: regenerated)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, source, store, n = args.child
        child(kind, Path(source), Path(store), int(n))
        return

    sizes = [int(x) for x in args.sizes.split(",")]
    readers = args.readers.split(",")
    results: list[tuple[str, int, dict[str, Any]]] = []
    grown: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp_s:
        tmp = Path(tmp_s)
        if args.grown:
            grown = grown_store(args.grown, tmp)
        for n in sizes:
            for reader in readers:
                t0 = time.perf_counter()
                where = Path(args.inputs) if args.inputs else tmp
                where.mkdir(parents=True, exist_ok=True)
                if reader == "raw":
                    source = where / f"blk{n}.dat"
                    make: Any = generate_raw_blocks
                    baselines = ["sqlite-raw"]
                elif reader == "bitcoin-etl":
                    source = where / f"transactions{n}.json"
                    make = generate_bitcoin_etl
                    baselines = ["sqlite-bitcoin-etl", "duckdb-bitcoin-etl"]
                else:
                    source = where / f"eth{n}"
                    make = generate_ethereum_etl
                    baselines = ["sqlite-ethereum-etl", "duckdb-ethereum-etl"]
                done_mark = where / f".{source.name}.done"
                if not (args.inputs and done_mark.exists()):
                    make(source, n)
                    done_mark.touch()
                    console.print(f"{reader}: {n:,} txs generated in {time.perf_counter() - t0:.0f} s")
                for kind in [f"fundtrail-{reader}", *([] if args.no_baselines else baselines)]:
                    store = tmp / ("store.duckdb" if not kind.startswith("sqlite") else "store.sqlite")
                    result = _measure(kind, source, store, n)
                    console.print(f"  {kind}: {result['txs'] / result['secs']:,.0f} tx/s, "
                                  f"{result['rss_mib']:,.0f} MiB writing process, "
                                  f"{result['tree_rss_mib']:,.0f} MiB whole ingest", highlight=False)
                    results.append((reader, n, result))
                if args.inputs:
                    continue  # kept for the next run
                if source.is_dir():
                    for p in source.iterdir():
                        p.unlink()
                    source.rmdir()
                else:
                    source.unlink()

    table = Table(title="Ingest into the chain store (2 cores shared, 24 GiB): FundTrail and baselines, "
                        "same run")
    for col in ("reader", "txs", "run", "tx/s", "vs FundTrail", "tx/s per slice (min..max)", "peak RSS MiB",
                "reader process MiB", "whole ingest MiB", "bytes/tx"):
        table.add_column(col, justify="left" if col in ("reader", "run") else "right")
    for reader, n, r in results:
        ours = next(x for rd, m, x in results
                    if rd == reader and m == n and x["kind"].startswith("fundtrail"))
        rate = r["txs"] / r["secs"]
        slices = f"{min(r['slices']):,.0f}..{max(r['slices']):,.0f}" if r["slices"] else ""
        table.add_row(reader, f"{n:,}", r["kind"], f"{rate:,.0f}",
                      f"{(ours['secs'] / r['secs']):.2f}x" if r is not ours else "",
                      slices, f"{r['rss_mib']:,.0f}",
                      f"{r['worker_rss_mib']:,.0f}" if r.get("worker_rss_mib") else "",
                      f"{r['tree_rss_mib']:,.0f}",
                      f"{r['bytes'] / max(r['txs'], 1):,.0f}")
    console.print(table)
    for reader, n, r in results:
        if r["slices"]:
            console.print(f"{reader} {n:,}: tx/s per slice in order: "
                          + ", ".join(f"{x:,.0f}" for x in r["slices"]), highlight=False)
    if grown:
        console.print(f"write path, 20,000-tx bitcoin-etl batches into a store already holding "
                      f"{args.grown:,} "
                      "addresses and outputs (same run):")
        for name, first, median in grown:
            console.print(f"  {name}: first batch {first:.2f} s (index load included), then median "
                          f"{median:.2f} s per batch ({20_000 / median:,.0f} tx/s)", highlight=False)
    console.print("vs FundTrail: the baseline's speed relative to FundTrail's "
                  "(above 1x: the baseline is faster).")


if __name__ == "__main__":
    main()
