"""The transaction graph kept in files beside a home's chain store (analysis/graphstore.py).

Random small worlds are ingested in random splits (and sometimes rolled back onto another branch); after
every step the graph kept in files, loaded as a fresh process would load it, must equal a graph built
from nothing in memory. Then: blocks added are appended (not rebuilt), a reorg rebuilds, builders in
several processes leave one valid generation, and damaged files are noticed and replaced.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fundtrail.analysis import graph as graph_module
from fundtrail.analysis import graphstore
from fundtrail.analysis.change import detect_change
from fundtrail.analysis.graph import NO_HEIGHT, UtxoGraph, build_utxo_graph, snapshot, utxo_graph
from fundtrail.analysis.tracing import trace_funds
from fundtrail.domain.records import BlockRecord, UtxoBatch
from fundtrail.store.chainstore import ChainStore

CHAIN = "btc"


# ------------------------------------------------------------------------------------------- worlds


def world(seed: int, n_blocks: int, branch: str = "a", start: int = 0,
          spendable: list[tuple[str, int, int]] | None = None) -> list[UtxoBatch]:
    """One batch per block: a coinbase, then transactions spending earlier outputs (sometimes outputs
    the store never sees), paying reused or fresh addresses. ``branch`` changes txids and hashes."""
    rng = random.Random(seed)
    pool = list(spendable or [])
    batches = []
    prev_hash: str | None = None
    for height in range(start, start + n_blocks):
        batch = UtxoBatch(chain=CHAIN)
        block_hash = f"{branch}{seed:x}h{height}".ljust(64, "0")[:64]
        txs: list[tuple[str, list[tuple[str, int]], list[tuple[str, int]]]] = []
        txs.append((f"{branch}{seed}cb{height}", [], [(f"addr{rng.randrange(40)}", 5_000_000)]))
        for k in range(rng.randrange(0, 5)):
            inputs = []
            for _ in range(rng.randint(1, 3)):
                if pool and rng.random() < 0.9:
                    txid, n, _value = pool.pop(rng.randrange(len(pool)))
                    inputs.append((txid, n))
                else:  # an output the store does not hold
                    inputs.append((f"outside{rng.randrange(10**6)}", rng.randrange(3)))
            outs = [(f"addr{rng.randrange(60)}" if rng.random() < 0.6 else f"fresh{seed}-{height}-{k}-{j}",
                     rng.randint(1, 2_000_000)) for j in range(rng.randint(1, 3))]
            txs.append((f"{branch}{seed}t{height}-{k}", inputs, outs))
        batch.blocks.append(BlockRecord(CHAIN, height, block_hash, prev_hash, 1_600_000_000 + 600 * height,
                                        len(txs)))
        prev_hash = block_hash
        for index, (txid, inputs, outs) in enumerate(txs):
            batch.add_tx(txid, height, 1_600_000_000 + 600 * height, index, coinbase=not inputs)
            for n, (ptxid, pn) in enumerate(inputs):
                batch.add_input(txid, n, ptxid, pn)
            for n, (address, value) in enumerate(outs):
                batch.add_output(txid, n, address, value, "p2wpkh")
                pool.append((txid, n, value))
        batches.append(batch)
    return batches


def unspent(batches: list[UtxoBatch]) -> list[tuple[str, int, int]]:
    """The outputs of ``batches`` that no input of them spends."""
    spent = {(t, n) for b in batches for t, n in zip(b.in_prev_txid, b.in_prev_n, strict=True)}
    return [(t, n, v) for b in batches for t, n, v in zip(b.out_txid, b.out_n, b.out_value, strict=True)
            if (t, n) not in spent]


# ---------------------------------------------------------------------------------------- comparing


def columns(g: UtxoGraph) -> dict[str, Any]:
    """Everything a graph holds, as plain values."""
    out: dict[str, Any] = {name: np.asarray(getattr(g, name)).tolist() for name in graphstore.ARRAYS
                           if name != "addr_order"}
    out["txid"] = g.txid.to_pylist()
    out["addr_text"] = None if g.addr_text is None else g.addr_text.to_pylist()
    out["addr_order"] = None if g.addr_text is None else np.asarray(g._address_order()).tolist()
    out["change_names"] = list(g.change_names)
    return out


def fresh_graph(store: ChainStore) -> UtxoGraph:
    """A graph built from nothing in memory."""
    return build_utxo_graph(store, CHAIN)


def loaded_graph(home: Path) -> UtxoGraph:
    """The graph as a new process finds it in the files (no in-process cache)."""
    found = graphstore._load(home / "graph" / CHAIN, CHAIN)
    assert found is not None, "no usable graph files"
    return found[0]


def assert_persisted_equals_fresh(store: ChainStore, home: Path) -> None:
    graphstore.update_graphs(store)
    kept = loaded_graph(home)
    assert kept.fingerprint == snapshot(store, CHAIN).graph
    assert columns(kept) == columns(fresh_graph(store))


def generations(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "graph" / CHAIN).iterdir() if p.is_dir())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def open_store(home: Path) -> ChainStore:
    return ChainStore(home / "chain.duckdb")


# ------------------------------------------------------------------------------------------ property


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), n_blocks=st.integers(1, 9),
       cuts=st.lists(st.integers(1, 8), max_size=3, unique=True),
       rollback=st.one_of(st.none(), st.tuples(st.integers(0, 8), st.integers(1, 4))),
       later_first=st.booleans())
def test_persisted_graph_equals_a_fresh_build(tmp_path_factory: pytest.TempPathFactory, seed: int,
                                              n_blocks: int, cuts: list[int],
                                              rollback: tuple[int, int] | None, later_first: bool) -> None:
    home = tmp_path_factory.mktemp("home")
    blocks = world(seed, n_blocks)
    edges = [0, *sorted(c for c in cuts if c < n_blocks), n_blocks]
    parts = [blocks[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]
    if later_first and len(parts) > 1:  # a later part first: the next one lands below the covered tip
        parts[0], parts[1] = parts[1], parts[0]
    with open_store(home) as store:
        for part in parts:
            for batch in part:
                store.write_batch(batch)
            store.resolve_inputs(CHAIN)
            assert_persisted_equals_fresh(store, home)
        if rollback is not None:
            keep, more = rollback
            keep = min(keep, n_blocks - 1)
            store.rollback_to(CHAIN, keep)
            assert_persisted_equals_fresh(store, home)
            branch = world(seed + 1, more, branch="b", start=keep + 1, spendable=unspent(blocks[:keep + 1]))
            for batch in branch:
                store.write_batch(batch)
            assert_persisted_equals_fresh(store, home)


# --------------------------------------------------------------------------------------- incremental


class Spy:
    """Records the ``above`` of every graph extension."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.above: list[int] = []
        real = graphstore.extend_utxo_graph

        def extend(store: ChainStore, chain: str, snap: Any, base: UtxoGraph | None = None,
                   above: int = NO_HEIGHT, upto: int | None = None) -> UtxoGraph:
            self.above.append(above)
            return real(store, chain, snap, base, above, upto)

        monkeypatch.setattr(graphstore, "extend_utxo_graph", extend)


def test_more_blocks_are_appended_not_rebuilt(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    blocks = world(7, 8)
    with open_store(home) as store:
        for batch in blocks[:5]:
            store.write_batch(batch)
        graphstore.update_graphs(store)
        assert spy.above == [NO_HEIGHT]
        first = generations(home)
        for batch in blocks[5:]:
            store.write_batch(batch)
        graphstore.update_graphs(store)
        assert spy.above == [NO_HEIGHT, 4]  # only the blocks above height 4 were read
        assert generations(home) != first and len(generations(home)) == 1
        manifest = json.loads((home / "graph" / CHAIN / generations(home)[0] / "manifest.json").read_text())
        assert manifest["covered"]["height"] == 7
        assert columns(loaded_graph(home)) == columns(fresh_graph(store))
        graphstore.update_graphs(store)  # up to date: nothing read
        assert spy.above == [NO_HEIGHT, 4]


def test_a_trace_brings_a_graph_behind_up_to_date(home: Path) -> None:
    blocks = world(3, 6)
    with open_store(home) as store:
        for batch in blocks[:3]:
            store.write_batch(batch)
        graphstore.update_graphs(store)
        for batch in blocks[3:]:
            store.write_batch(batch)
        seed = blocks[0].tx_txid[0]
        result = trace_funds(store, CHAIN, [seed], max_hops=20).to_dict()
        assert loaded_graph(home).tx_count == sum(len(b.tx_txid) for b in blocks)
    with ChainStore(":memory:") as memory:
        for batch in blocks:
            memory.write_batch(batch)
        assert trace_funds(memory, CHAIN, [seed], max_hops=20).to_dict() == result


def test_a_reorg_rebuilds(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    blocks = world(11, 6)
    with open_store(home) as store:
        for batch in blocks:
            store.write_batch(batch)
        graphstore.update_graphs(store)
        store.rollback_to(CHAIN, 3)
        for batch in world(12, 4, branch="b", start=4, spendable=unspent(blocks[:4])):
            store.write_batch(batch)
        graphstore.update_graphs(store)
        assert spy.above == [NO_HEIGHT, NO_HEIGHT]
        assert columns(loaded_graph(home)) == columns(fresh_graph(store))


def test_changed_marks_are_read_again(home: Path) -> None:
    blocks = world(5, 8)
    with open_store(home) as store:
        for batch in blocks:
            store.write_batch(batch)
        before = utxo_graph(store, CHAIN)
        detect_change(store, CHAIN)
        after = utxo_graph(store, CHAIN)
        assert after is not before
        assert columns(loaded_graph(home)) == columns(fresh_graph(store))
        assert after.change_names == fresh_graph(store).change_names


def test_memory_and_other_stores_keep_no_files(tmp_path: Path) -> None:
    with ChainStore(":memory:") as memory:
        assert graphstore.graph_folder(memory) is None
    with ChainStore(tmp_path / "world.duckdb") as other:
        for batch in world(1, 2):
            other.write_batch(batch)
        assert graphstore.update_graphs(other) == {}
        utxo_graph(other, CHAIN)
    assert not (tmp_path / "graph").exists()


# ---------------------------------------------------------------------------------------- concurrency


def _build_in_process(home: str) -> int:
    with ChainStore(Path(home) / "chain.duckdb", read_only=True) as store:
        return graphstore.update_graphs(store)[CHAIN]


def test_concurrent_builders_leave_one_valid_generation(home: Path) -> None:
    blocks = world(21, 9)
    with open_store(home) as store:
        for batch in blocks:
            store.write_batch(batch)
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        counts = pool.map(_build_in_process, [str(home)] * 4)
    assert counts == [sum(len(b.tx_txid) for b in blocks)] * 4
    assert len(generations(home)) == 1
    assert not [p for p in (home / "graph" / CHAIN).iterdir() if p.name.startswith((".tmp-", ".current-"))]
    with ChainStore(home / "chain.duckdb", read_only=True) as store:
        assert columns(loaded_graph(home)) == columns(fresh_graph(store))


# --------------------------------------------------------------------------------------------- damage


def _damage_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - 3] ^= 0xFF  # in the array's data, past the header
    path.write_bytes(bytes(data))


def _damage_truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 8])


def _damage_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:6] = b"garbag"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_damage_flip, _damage_truncate, _damage_header])
@pytest.mark.parametrize("stem", ["out_spender", "tx_out_ptr", "txid.data", "addr_text.offsets"])
def test_damaged_files_are_noticed_and_rebuilt(home: Path, damage: Any, stem: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    blocks = world(31, 5)
    with open_store(home) as store:
        for batch in blocks:
            store.write_batch(batch)
        graphstore.update_graphs(store)
        folder = home / "graph" / CHAIN / generations(home)[0]
        damage(folder / f"{stem}.npy")
        assert graphstore._load(home / "graph" / CHAIN, CHAIN) is None
        assert stem in caplog.text
        graph_module._CACHE.clear()
        rebuilt = utxo_graph(store, CHAIN)
        assert columns(rebuilt) == columns(fresh_graph(store))
        assert columns(loaded_graph(home)) == columns(fresh_graph(store))


@pytest.mark.parametrize("what", ["manifest", "pointer", "missing"])
def test_a_damaged_manifest_is_noticed(home: Path, what: str) -> None:
    with open_store(home) as store:
        for batch in world(41, 4):
            store.write_batch(batch)
        graphstore.update_graphs(store)
        chain_dir = home / "graph" / CHAIN
        folder = chain_dir / generations(home)[0]
        if what == "manifest":
            manifest = json.loads((folder / "manifest.json").read_text())
            manifest["rows"]["txs"] += 1
            (folder / "manifest.json").write_text(json.dumps(manifest, sort_keys=True))
        elif what == "pointer":
            (chain_dir / "current").write_text("{not json")
        else:
            (folder / "in_prev.npy").unlink()
        assert graphstore._load(chain_dir, CHAIN) is None
        graphstore.update_graphs(store)
        assert columns(loaded_graph(home)) == columns(fresh_graph(store))


def test_string_columns_round_trip_from_slices() -> None:
    text = pa.array(["a", "bc", "", "def", "g"]).slice(1, 3)
    offsets, data = graphstore._text_parts(text)
    assert graphstore._text_array(offsets, data).to_pylist() == ["bc", "", "def"]


def test_files_without_a_record_of_their_check_are_read_in_full(home: Path) -> None:
    """A file whose content changed behind an unchanged inode, size and time is caught once the record
    of the last full check is gone (each load reads in full what no record vouches for)."""
    with open_store(home) as store:
        for batch in world(51, 4):
            store.write_batch(batch)
        graphstore.update_graphs(store)
        folder = home / "graph" / CHAIN / generations(home)[0]
        path = folder / "out_value.npy"
        before = path.stat()
        _damage_flip(path)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        (folder / "verified.json").unlink()
        assert graphstore._load(home / "graph" / CHAIN, CHAIN) is None
