"""The transaction graph kept beside the chain store: numpy files, memory-mapped on load, extended on ingest.

A store in a home (``HOME/chain.duckdb``) keeps each UTXO chain's graph (:class:`UtxoGraph`) in
``HOME/graph/<chain>/``: one folder per generation holding every array as a ``.npy`` file and
``manifest.json`` (what part of the store the arrays cover: the highest block, its hash, the number
and a hash sum of the blocks up to it, unresolved inputs; the snapshot the graph was read at; per file
its dtype, shape, size and checksum), and ``current`` naming the generation in use with the SHA-256 of
its manifest. Invariants:

* **Atomic**: a generation is written in a temporary folder, renamed into place, and only then named
  by ``current`` (itself written to a temporary file and renamed). A reader sees the old generation
  or the new one, never a part of one; a writer killed at any point leaves the old one in use.
* **One builder at a time**: building and writing hold an exclusive lock (``flock`` on
  ``graph/<chain>/.lock``); a process that waited for the lock reads what the other one wrote.
* **Never trusted blindly**: every load checks the manifest's hash and each file's size, dtype and
  shape, and reads every file whose inode, size or modification time differs from when its whole
  content last matched its checksum (``verified.json``: the writer's, then each full check's), so a
  file rewritten, truncated or replaced is read in full; anything that does not match is logged and
  the graph is built again.
* **Incremental**: when the store holds blocks above the covered height and nothing at or below it
  changed, only the new blocks' rows are read and appended (the CSR pointers re-emitted); when the
  covered blocks changed (a rollback, a reorg, a block ingested below the tip) the graph is rebuilt.
  Changed marks (CoinJoin and peel patterns, change outputs) are read again whole.

Stores in memory and stores outside a home keep the graph in memory only (:func:`graph_folder`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fundtrail.analysis.graph import (
    MARKS,
    NO_HEIGHT,
    Coverage,
    Snapshot,
    UtxoGraph,
    coverage,
    extend_utxo_graph,
    links_into,
    snapshot,
)
from fundtrail.domain.chains import get_chain
from fundtrail.errors import IntegrityError
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

FORMAT = 2
"""The layout version of the files; another version is built again."""

ARRAYS = ("tx_height", "tx_time", "tx_coinbase", "tx_coinjoin", "tx_out_ptr", "tx_in_ptr", "tx_in_total",
          "tx_key", "out_tx", "out_n", "out_value", "out_addr", "out_spender", "out_spender_in", "out_change",
          "out_is_change", "out_peel", "in_tx", "in_n", "in_prev", "in_value", "in_addr", "in_resolved",
          "addr_degree", "addr_out_ptr", "addr_out_rows", "addr_order")
"""The graph's arrays kept as ``<name>.npy``."""

TEXTS = ("txid", "addr_text")
"""The graph's string columns, kept as ``<name>.offsets.npy`` and ``<name>.data.npy``."""

STORE_FILE = "chain.duckdb"


_Invalid = IntegrityError
"""Graph files that do not match their manifest (caught here: such files are built again)."""


def graph_folder(store: ChainStore) -> Path | None:
    """Where the store's graphs are kept: ``HOME/graph`` for a home's store, None otherwise."""
    path = getattr(store, "path", None)
    if not path or str(path) == ":memory:":
        return None
    file = Path(str(path))
    return file.parent / "graph" if file.name == STORE_FILE else None


# ------------------------------------------------------------------------------------------ files


def _checksum(array: np.ndarray) -> str:
    """A checksum of an array's bytes: the sum (mod 2**64) and the XOR of its 8-byte words, and the bytes
    left over; any changed word changes both (several changes cancelling out in both is not a failure
    that disks or interrupted writes produce)."""
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    whole = len(raw) // 8 * 8
    words = raw[:whole].view(np.uint64)
    total = int(np.add.reduce(words, dtype=np.uint64)) if whole else 0
    folded = int(np.bitwise_xor.reduce(words)) if whole else 0
    return f"{total:016x}{folded:016x}{bytes(raw[whole:]).hex()}"


def _identity(path: Path) -> list[int]:
    """What a file's rewrite, truncation or replacement changes: inode, size, modification time."""
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _write_verified(folder: Path, identities: dict[str, list[int]]) -> None:
    """Record the files whose contents matched their checksums, as they were then (atomically)."""
    tmp = folder / f".verified-{os.getpid()}"
    tmp.write_text(json.dumps(identities, sort_keys=True))
    os.replace(tmp, folder / "verified.json")


def _read_verified(folder: Path) -> dict[str, list[int]]:
    try:
        found = json.loads((folder / "verified.json").read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _text_parts(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (from 0) and bytes of a string array without nulls."""
    if text.null_count:
        raise _Invalid("a string column holds nulls")
    wide = pa.types.is_large_string(text.type)
    buffers = text.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64 if wide else np.int32)[
        text.offset:text.offset + len(text) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    start = int(offsets[0]) if len(offsets) else 0
    end = int(offsets[-1]) if len(offsets) else 0
    based: np.ndarray = offsets - start
    return based.astype(offsets.dtype), data[start:end]


def _text_array(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    kind = pa.large_string() if offsets.dtype == np.int64 else pa.string()
    if len(offsets) < 1 or int(offsets[0]) != 0 or int(offsets[-1]) != len(data) or (
            len(offsets) > 1 and bool((offsets[1:] < offsets[:-1]).any())):
        raise _Invalid("string offsets out of order")
    return pa.Array.from_buffers(kind, len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _columns(graph: UtxoGraph) -> dict[str, np.ndarray]:
    """Every file's array, by file stem."""
    graph.addr_order = graph._address_order() if graph.addr_text is not None else None
    out: dict[str, np.ndarray] = {}
    for name in ARRAYS:
        value = getattr(graph, name)
        if value is None:
            continue
        array = np.asarray(value)
        if array.dtype == object:
            raise _Invalid(f"{name} holds amounts beyond 64 bits")
        out[name] = array
    for name in TEXTS:
        text = getattr(graph, name)
        if text is None:
            continue
        out[f"{name}.offsets"], out[f"{name}.data"] = _text_parts(text)
    return out


def _write_generation(chain_dir: Path, graph: UtxoGraph, cover: Coverage,
                      fingerprint: tuple[Any, ...] | None) -> str:
    """Write a generation folder and switch ``current`` to it; returns its name."""
    columns = _columns(graph)
    name = f"g{time.time_ns():x}-{os.getpid()}"
    tmp = chain_dir / f".tmp-{name}"
    tmp.mkdir(parents=True)
    files: dict[str, dict[str, Any]] = {}
    for stem, array in columns.items():
        path = tmp / f"{stem}.npy"
        with open(path, "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        files[stem] = {"dtype": array.dtype.str, "shape": list(array.shape), "bytes": path.stat().st_size,
                       "checksum": _checksum(array)}
    manifest = {"format": FORMAT, "chain": graph.chain, "covered": cover.to_dict(),
                "fingerprint": list(fingerprint) if fingerprint is not None else None,
                "change_names": graph.change_names, "files": files,
                "rows": {"txs": graph.tx_count, "outputs": len(graph.out_tx), "inputs": len(graph.in_tx),
                         "addresses": len(graph.addr_degree)}}
    body = json.dumps(manifest, sort_keys=True).encode()
    with open(tmp / "manifest.json", "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    _write_verified(tmp, {stem: _identity(tmp / f"{stem}.npy") for stem in files})  # checksummed as written
    os.rename(tmp, chain_dir / name)
    pointer = chain_dir / f".current-{name}"
    pointer.write_text(json.dumps({"generation": name, "manifest_sha256": hashlib.sha256(body).hexdigest()}))
    os.replace(pointer, chain_dir / "current")
    _fsync_dir(chain_dir)
    for other in chain_dir.iterdir():  # older generations and what killed writers left
        if other.name != name and (other.name.startswith(("g", ".tmp-", ".current-"))):
            if other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
            else:
                other.unlink(missing_ok=True)
    return name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_generation(chain_dir: Path, chain: str) -> tuple[UtxoGraph, dict[str, Any]]:
    """The graph of the generation ``current`` names, checked against its manifest; raises _Invalid."""
    try:
        pointer = json.loads((chain_dir / "current").read_text())
        folder = chain_dir / str(pointer["generation"])
        body = (folder / "manifest.json").read_bytes()
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _Invalid(f"no readable manifest ({error})") from None
    if hashlib.sha256(body).hexdigest() != pointer.get("manifest_sha256"):
        raise _Invalid(f"{folder.name}/manifest.json does not match its hash")
    try:
        manifest = json.loads(body)
        if manifest["format"] != FORMAT or manifest["chain"] != chain:
            raise _Invalid(f"{folder.name} has format {manifest['format']} for {manifest['chain']}")
        files: dict[str, dict[str, Any]] = manifest["files"]
        for spec in files.values():
            if not (isinstance(spec["bytes"], int) and isinstance(spec["checksum"], str)
                    and isinstance(spec["dtype"], str) and isinstance(spec["shape"], list)):
                raise TypeError("a file entry of the wrong shape")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise _Invalid(f"malformed manifest ({error})") from None
    arrays: dict[str, np.ndarray] = {}
    verified = _read_verified(folder)
    checked: dict[str, list[int]] = {}
    for stem, spec in files.items():
        path = folder / f"{stem}.npy"
        try:
            identity = _identity(path)
            if identity[1] != spec["bytes"]:
                raise _Invalid(f"{path.name} has {identity[1]} bytes, not {spec['bytes']}")
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise _Invalid(f"{path.name} cannot be read ({error})") from None
        if array.dtype.str != spec["dtype"] or list(array.shape) != spec["shape"]:
            raise _Invalid(f"{path.name} is {array.dtype.str}{list(array.shape)}, the manifest says "
                           f"{spec['dtype']}{spec['shape']}")
        if verified.get(stem) != identity:  # new to this check, or rewritten since: read it all
            if _checksum(array) != spec["checksum"]:
                raise _Invalid(f"{path.name} does not match its checksum")
            checked[stem] = identity
        arrays[stem] = array.view(np.ndarray)  # the same mapped pages, without memmap's slower indexing
    if checked:
        with contextlib.suppress(OSError):  # a home this process may not write to: check again next time
            _write_verified(folder, {**{k: v for k, v in verified.items() if k in files}, **checked})
    missing = [n for n in (*ARRAYS, "txid.offsets", "txid.data") if n not in arrays and n != "addr_order"]
    if missing:
        raise _Invalid(f"{folder.name} lacks {', '.join(missing)}")
    rows = manifest["rows"]
    texts = {name: _text_array(arrays[f"{name}.offsets"], arrays[f"{name}.data"])
             for name in TEXTS if f"{name}.offsets" in arrays}
    graph = UtxoGraph(
        chain=chain, fingerprint=tuple(manifest["fingerprint"] or ("stale",)), txid=texts["txid"],
        addr_text=texts.get("addr_text"), change_names=list(manifest["change_names"]),
        **{name: arrays.get(name) for name in ARRAYS})  # type: ignore[arg-type]
    shapes_ok = (graph.tx_count == rows["txs"] == len(graph.txid) and len(graph.out_tx) == rows["outputs"]
                 and len(graph.in_tx) == rows["inputs"] and len(graph.tx_out_ptr) == rows["txs"] + 1
                 and int(graph.tx_out_ptr[-1]) == rows["outputs"]
                 and int(graph.tx_in_ptr[-1]) == rows["inputs"]
                 and len(graph.addr_degree) == rows["addresses"])
    if not shapes_ok:
        raise _Invalid(f"{folder.name}: the arrays disagree on the numbers of rows")
    return graph, manifest


@contextlib.contextmanager
def _locked(chain_dir: Path) -> Iterator[None]:
    chain_dir.mkdir(parents=True, exist_ok=True)
    with open(chain_dir / ".lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------ graph


def _load(chain_dir: Path, chain: str) -> tuple[UtxoGraph, dict[str, Any]] | None:
    if not (chain_dir / "current").exists():
        return None
    try:
        return _read_generation(chain_dir, chain)
    except _Invalid as error:
        log.warning("graph files of %s in %s are not usable, building again: %s", chain, chain_dir, error)
        return None


def _bring_up_to_date(store: ChainStore, chain: str, snap: Snapshot,
                      loaded: tuple[UtxoGraph, dict[str, Any]] | None) -> tuple[UtxoGraph, Coverage, str]:
    """The graph of the store as it is: ``loaded`` extended when only blocks were added, else rebuilt."""
    tip = coverage(store, chain)
    if loaded is not None:
        graph, manifest = loaded
        covered = Coverage(**manifest["covered"])
        if covered.height <= tip.height and coverage(store, chain, covered.height) == covered:
            grown = tip.height > covered.height
            if not (grown and links_into(store, chain, covered.height)):
                if graph.fingerprint[MARKS] != snap.graph[MARKS] or grown or covered != tip:
                    graph = extend_utxo_graph(store, chain, snap, graph, covered.height, tip.height)
                else:
                    graph.fingerprint = snap.graph
                return graph, tip, "extended" if grown else "marks"
    return extend_utxo_graph(store, chain, snap, None, NO_HEIGHT, tip.height), tip, "built"


def persisted_graph(store: ChainStore, chain: str, snap: Snapshot) -> UtxoGraph | None:
    """The graph of ``chain`` from its files, brought up to date (None: the store keeps no files).

    Files that match the store's snapshot are used as they are (memory-mapped); otherwise, holding the
    lock, the graph is extended or rebuilt and written.
    """
    folder = graph_folder(store)
    if folder is None:
        return None
    chain_dir = folder / chain
    loaded = _load(chain_dir, chain)
    if loaded is not None and loaded[0].fingerprint == snap.graph:
        return loaded[0]
    try:
        with _locked(chain_dir):
            loaded = _load(chain_dir, chain)  # another process may have written it meanwhile
            if loaded is not None and loaded[0].fingerprint == snap.graph:
                return loaded[0]
            graph, tip, how = _bring_up_to_date(store, chain, snap, loaded)
            after = snapshot(store, chain)
            fingerprint = snap.graph if after.graph == snap.graph else None  # written meanwhile: check again
            try:
                _write_generation(chain_dir, graph, tip, fingerprint)
            except _Invalid as error:
                log.info("graph of %s kept in memory only: %s", chain, error)
                return graph
            except OSError as error:  # a full disk, a folder that cannot be written: use it unsaved
                log.warning("graph of %s not written to %s (%s)", chain, chain_dir, error)
                return graph
            log.info("graph of %s %s and written to %s (up to block %d)", chain, how, chain_dir, tip.height)
            return graph
    except OSError as error:
        log.warning("graph files of %s cannot be written in %s (%s); building in memory", chain, chain_dir,
                    error)
        return None


def update_graphs(store: ChainStore, chains: Iterable[str] | None = None) -> dict[str, int]:
    """Bring the kept graphs of the store's UTXO chains (or of ``chains``) up to date; the ingest service
    calls it after a run. Returns the number of transactions each graph holds (none for stores without
    files)."""
    if graph_folder(store) is None:
        return {}
    names = store.chains() if chains is None else list(chains)
    done: dict[str, int] = {}
    for chain in names:
        if not get_chain(chain).is_utxo:
            continue
        graph = persisted_graph(store, chain, snapshot(store, chain))
        if graph is not None:
            done[chain] = graph.tx_count
    return done
