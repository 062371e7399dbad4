"""The audit log's Merkle tree, signed tree heads and proofs; and the standalone verifier for auditors.

This module needs nothing but the Python standard library and ``cryptography``: an independent auditor
copies this one file and checks a FundTrail audit export with the agency's public key alone::

    python verifier.py audit-export.json --public-key <base64 Ed25519 key> [--head kept-head.json ...]

(inside an installation: ``python -m fundtrail.audit.verifier ...``). Exit 0 when the log is intact
and extends every kept head, 1 naming the first problem otherwise, 2 when the input is unreadable.

The tree is the one of Certificate Transparency (RFC 9162, section 2.1): SHA-256, leaf hashes
``H(0x00 || leaf)``, interior nodes ``H(0x01 || left || right)``, split at the largest power of two
below the size. A leaf is the canonical JSON (sorted keys, compact, UTF-8) of one audit record's
fields; a record's own ``hash`` is the plain SHA-256 of the same bytes, and each record names the
hash of the one before (``prev_hash``), so a record can be found again by its hash.

A signed tree head (STH) is an Ed25519 signature over the canonical JSON of
``{"log": "fundtrail-audit", "tree_size", "root_hash", "timestamp", "key_id"}``; a witness's
cosignature is an Ed25519 signature over ``{"log": "fundtrail-audit-cosignature", "head": <the
head's payload fields>, "witness_key_id"}``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LOG_NAME = "fundtrail-audit"
COSIGNATURE_NAME = "fundtrail-audit-cosignature"
EXPORT_FORMAT = "fundtrail-audit-export/1"
GENESIS = "0" * 64
RECORD_FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "case_number",
    "reason",
    "details",
    "prev_hash",
)
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
MAX_PROOF = 130


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(document: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8: the bytes that are hashed and signed."""
    return _ENCODER.encode(document).encode("utf-8")


def record_leaf(record: Mapping[str, Any]) -> bytes:
    """The leaf bytes of an audit record (its fields, ``details`` as the stored JSON text)."""
    return canonical_json({name: record[name] for name in RECORD_FIELDS})


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 leaf hash."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right edge of a growing tree: the roots of its perfect subtrees, largest first.

    Appending costs O(1) amortised and the root of the tree so far O(log n), so a reader streaming the
    log can check every signed head along the way without holding the leaves.
    """

    __slots__ = ("size", "nodes")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if len(nodes) != bin(size).count("1"):
            raise ValueError(
                f"a frontier of {size} leaves has {bin(size).count('1')} nodes, not {len(nodes)}"
            )
        self.size = size
        self.nodes = list(nodes)

    def append(self, leaf_hash_: bytes) -> None:
        """Add one leaf hash."""
        node = leaf_hash_
        size = self.size
        while size & 1:
            node = node_hash(self.nodes.pop(), node)
            size >>= 1
        self.nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        """The tree's root hash (the hash of the empty string for an empty tree)."""
        if not self.nodes:
            return hashlib.sha256(b"").digest()
        node = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            node = node_hash(left, node)
        return node

    def dump(self) -> str:
        """The frontier as text (comma-separated hex)."""
        return ",".join(n.hex() for n in self.nodes)

    @classmethod
    def load(cls, size: int, text: str | None) -> Frontier:
        """A frontier from :meth:`dump` text."""
        nodes = [bytes.fromhex(h) for h in (text or "").split(",") if h]
        return cls(size, nodes)


class Tree:
    """A whole tree in memory (levels of hashes), for roots at any size and for proofs."""

    def __init__(self, leaf_hashes: Iterable[bytes]) -> None:
        level = bytearray()
        for h in leaf_hashes:
            level += h
        self.levels: list[bytearray] = [level]
        while len(self.levels[-1]) > 32:
            below = self.levels[-1]
            above = bytearray()
            for i in range(0, len(below) - 32, 64):
                above += node_hash(bytes(below[i : i + 32]), bytes(below[i + 32 : i + 64]))
            self.levels.append(above)

    @property
    def size(self) -> int:
        """How many leaves."""
        return len(self.levels[0]) // 32

    def _perfect(self, level: int, index: int) -> bytes:
        return bytes(self.levels[level][index * 32 : index * 32 + 32])

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) where ``start`` is aligned as RFC 9162's recursion leaves it."""
        n = end - start
        if n <= 0:
            return hashlib.sha256(b"").digest()
        if n & (n - 1) == 0 and start % n == 0:
            return self._perfect(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of the first ``size`` leaves (all by default)."""
        size = self.size if size is None else size
        if size > self.size:
            raise ValueError(f"the tree has {self.size} leaves, not {size}")
        return self.subtree(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        if not 0 <= index < size <= self.size:
            raise ValueError(f"no leaf {index} in a tree of {size}")
        proof: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                proof.append(self.subtree(start + k, end))
                end = start + k
            else:
                proof.append(self.subtree(start, start + k))
                start += k
        proof.reverse()
        return proof

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 consistency proof between the trees of ``old`` and ``new`` leaves."""
        if not 0 < old <= new <= self.size:
            raise ValueError(f"no consistency proof from {old} to {new} in a tree of {self.size}")
        if old == new:
            return []
        proof: list[bytes] = []
        start, end, m, complete = 0, new, old, True
        while True:
            n = end - start
            if m == n:
                if not complete:
                    proof.append(self.subtree(start, end))
                break
            k = _split(n)
            if m <= k:
                proof.append(self.subtree(start + k, end))
                end = start + k
            else:
                proof.append(self.subtree(start, start + k))
                start, m, complete = start + k, m - k, False
        proof.reverse()
        return proof


def verify_inclusion(index: int, size: int, leaf_hash_: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` show leaf ``index`` in the tree of ``size`` with ``root``."""
    if index >= size or len(proof) > MAX_PROOF:
        return False
    fn, sn, r = index, size - 1, leaf_hash_
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2: does ``proof`` show the tree of ``new`` extends the one of ``old``."""
    if old > new or len(proof) > MAX_PROOF:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0 or not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


# --- signed tree heads --------------------------------------------------------------------------


def key_id_of(public_raw: bytes) -> str:
    """The key id of a raw Ed25519 public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def fingerprint_of(public_raw: bytes) -> str:
    """The fingerprint people compare: ``SHA256:`` and the digest in groups of four."""
    digest = hashlib.sha256(public_raw).hexdigest()
    return "SHA256:" + ":".join(digest[i : i + 4] for i in range(0, 64, 4))


def head_payload(tree_size: int, root_hash: str, timestamp: str, key_id: str) -> bytes:
    """The bytes a signed tree head's signature covers."""
    return canonical_json(
        {
            "log": LOG_NAME,
            "tree_size": tree_size,
            "root_hash": root_hash,
            "timestamp": timestamp,
            "key_id": key_id,
        }
    )


def cosignature_payload(head: Mapping[str, Any], witness_key_id: str) -> bytes:
    """The bytes a witness's cosignature covers."""
    fields = {k: head[k] for k in ("tree_size", "root_hash", "timestamp", "key_id")}
    return canonical_json({"log": COSIGNATURE_NAME, "head": fields, "witness_key_id": witness_key_id})


def _ed25519_ok(public_raw: bytes, data: bytes, signature_b64: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        signature = base64.b64decode(signature_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        return False
    return True


@dataclass(frozen=True, slots=True)
class SignedHead:
    """A signed tree head."""

    tree_size: int
    root_hash: str
    timestamp: str
    key_id: str
    signature: str

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SignedHead:
        """A head from JSON values; ValueError when a field is missing or malformed."""
        try:
            head = cls(
                int(doc["tree_size"]),
                str(doc["root_hash"]),
                str(doc["timestamp"]),
                str(doc["key_id"]),
                str(doc["signature"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a signed tree head ({error})") from None
        if head.tree_size < 0 or len(head.root_hash) != 64:
            raise ValueError("not a signed tree head (bad tree_size or root_hash)")
        try:
            bytes.fromhex(head.root_hash)
        except ValueError:
            raise ValueError("not a signed tree head (root_hash is not hex)") from None
        return head

    def to_dict(self) -> dict[str, Any]:
        """The head as JSON values."""
        return {
            "log": LOG_NAME,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "timestamp": self.timestamp,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    def payload(self) -> bytes:
        """The bytes its signature covers."""
        return head_payload(self.tree_size, self.root_hash, self.timestamp, self.key_id)

    def describe(self) -> str:
        """A short description for messages."""
        return f"head of {self.tree_size} records (root {self.root_hash[:16]}..., {self.timestamp})"

    def check_signature(self, keys: Mapping[str, bytes]) -> str | None:
        """None when signed by a key in ``keys`` (key id -> raw public key); else what is wrong."""
        public = keys.get(self.key_id)
        if public is None:
            return f"{self.describe()} is signed by key {self.key_id}, which is not trusted"
        if key_id_of(public) != self.key_id:
            return f"{self.describe()}: key id {self.key_id} does not match the trusted key"
        if not _ed25519_ok(public, self.payload(), self.signature):
            return f"{self.describe()}: the signature is not valid"
        return None


# --- verifying a whole log ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, at a record (or at 0 for the log as a whole)."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.problem}" if self.seq else self.problem


class LogChecker:
    """Streams a log's records and checks them against its signed heads and kept heads.

    Records must come in stored order; heads in the order they were stored. Keeps O(log n) state.
    """

    def __init__(
        self,
        heads: Sequence[SignedHead],
        keys: Mapping[str, bytes],
        kept: Sequence[tuple[str, SignedHead]] = (),
        *,
        workers: int | None = None,
    ) -> None:
        self.keys = keys
        self._signatures = SignatureCheck(list(heads), keys, workers)
        self.problems: list[Problem] = []
        self.heads = list(heads)
        self.kept = list(kept)
        self.frontier = Frontier()
        self.prev_hash = GENESIS
        self.last_hash = GENESIS
        self.count = 0
        self._roots: dict[int, bytes] = {}
        self._wanted = sorted({h.tree_size for h in self.heads} | {h.tree_size for _, h in self.kept})
        self._next = 0
        self._check_heads()
        self._take_root()

    def _check_heads(self) -> None:
        previous: SignedHead | None = None
        for i, head in enumerate(self.heads, 1):
            if previous is not None:
                if head.tree_size < previous.tree_size:
                    self.problems.append(
                        Problem(
                            head.tree_size,
                            f"signed head #{i} covers {head.tree_size} records, fewer than the head before "
                            f"it ({previous.tree_size}): heads were reordered or the log was rolled back",
                        )
                    )
                elif head.timestamp < previous.timestamp:
                    self.problems.append(
                        Problem(head.tree_size, f"signed head #{i} is older than the head before it")
                    )
            previous = head
        for name, head in self.kept:
            bad = head.check_signature(self.keys)
            if bad:
                self.problems.append(Problem(0, f"kept head {name}: {bad}"))

    def _take_root(self) -> None:
        while self._next < len(self._wanted) and self._wanted[self._next] == self.count:
            self._roots[self.count] = self.frontier.root()
            self._next += 1

    def add(self, record: Mapping[str, Any], stored_hash: str) -> None:
        """Check one record (JSON values; ``details`` the stored text) and add it to the tree."""
        self.count += 1
        seq = record.get("seq")
        if seq != self.count:
            if isinstance(seq, int) and seq > self.count:
                missing = (
                    f"record {self.count}" if seq == self.count + 1 else f"records {self.count} to {seq - 1}"
                )
                self.problems.append(
                    Problem(self.count, f"{missing} missing (the log jumps from {self.count - 1} to {seq})")
                )
            else:
                self.problems.append(
                    Problem(
                        self.count,
                        f"record {seq} stands where record {self.count} should: inserted or reordered",
                    )
                )
        leaf = record_leaf(record)
        computed = hashlib.sha256(leaf).hexdigest()
        if computed != stored_hash:
            self.problems.append(
                Problem(
                    self.count,
                    f"content does not match its hash (edited); stored {stored_hash}, computed {computed}",
                )
            )
        if record.get("prev_hash") != self.prev_hash:
            self.problems.append(
                Problem(
                    self.count,
                    f"does not link to the record before it (prev_hash {record.get('prev_hash')}, expected "
                    f"{self.prev_hash}): a record was removed, inserted or rewritten",
                )
            )
        self.prev_hash = stored_hash
        self.last_hash = stored_hash
        self.frontier.append(leaf_hash(leaf))
        self._take_root()

    def finish(self) -> list[Problem]:
        """Compare every head with the log; the problems found, first record first."""
        for i, (head, bad) in enumerate(zip(self.heads, self._signatures.results(), strict=True), 1):
            if bad:
                self.problems.append(Problem(head.tree_size, f"signed head #{i}: {bad}"))
        n = self.count
        for i, head in enumerate(self.heads, 1):
            if head.tree_size > n:
                self.problems.append(
                    Problem(
                        n + 1,
                        f"signed head #{i} covers {head.tree_size} records but the log holds {n}: "
                        f"records {n + 1} to {head.tree_size} were removed (truncated)",
                    )
                )
            elif self._roots.get(head.tree_size) != bytes.fromhex(head.root_hash):
                self.problems.append(
                    Problem(
                        head.tree_size,
                        f"the log's first {head.tree_size} records do not match signed head #{i} "
                        f"(root {head.root_hash[:16]}...): a record up to {head.tree_size} was changed",
                    )
                )
        last = self.heads[-1].tree_size if self.heads else 0
        if n > last:
            first = last + 1
            self.problems.append(
                Problem(
                    first,
                    f"records {first} to {n} are not covered by a signed tree head: "
                    "appended outside FundTrail"
                    if first < n
                    else f"record {first} is not covered by a signed tree head: appended outside FundTrail",
                )
            )
        for name, head in self.kept:
            why = self.extends(head)
            if why:
                self.problems.append(Problem(0, f"the log no longer extends kept head {name}: {why}"))
        self.problems.sort(key=lambda p: (p.seq == 0, p.seq))
        return self.problems

    def extends(self, head: SignedHead) -> str | None:
        """None when the log (as streamed) extends ``head``; else why not."""
        if head.tree_size > self.count:
            return (
                f"it covers {head.tree_size} records, the log holds {self.count}: "
                f"the log was truncated or rolled back"
            )
        if self._roots.get(head.tree_size) != bytes.fromhex(head.root_hash):
            return f"the log's first {head.tree_size} records differ from it: the log was forked or rewritten"
        return None

    def root(self) -> str:
        """The current root, hex."""
        return self.frontier.root().hex()


PARALLEL_FROM = 4000
"""From this many heads on, signatures are checked in worker processes while the records stream."""


def _check_chunk(heads: Sequence[SignedHead], keys: Mapping[str, bytes]) -> list[str | None]:
    return [h.check_signature(keys) for h in heads]


class SignatureCheck:
    """The signatures of many heads, checked in worker processes alongside the caller's own work."""

    def __init__(self, heads: Sequence[SignedHead], keys: Mapping[str, bytes], workers: int | None) -> None:
        import os

        self.heads = heads
        self.keys = dict(keys)
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self._futures: list[Any] = []
        self._pool: Any = None
        if self.workers > 1 and len(heads) >= PARALLEL_FROM:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: safe in a threaded server; the worker imports only this module
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            size = -(-len(heads) // (self.workers * 4))
            self._futures = [
                self._pool.submit(_check_chunk, heads[i : i + size], self.keys)
                for i in range(0, len(heads), size)
            ]

    def results(self) -> list[str | None]:
        """One entry per head: None when its signature holds, else what is wrong."""
        if self._pool is None:
            return _check_chunk(self.heads, self.keys)
        try:
            return [bad for f in self._futures for bad in f.result()]
        finally:
            self._pool.shutdown()
            self._pool = None


# --- the standalone command ---------------------------------------------------------------------


class BadInput(Exception):
    """The input cannot be read."""


def _public_keys(given: Iterable[str]) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for text in given:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise BadInput(f"--public-key {text[:20]}...: not base64") from None
        if len(raw) != 32:
            raise BadInput(f"--public-key: {len(raw)} bytes; an Ed25519 public key has 32")
        keys[key_id_of(raw)] = raw
    return keys


def _load_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError, RecursionError) as error:
        raise BadInput(f"{path}: cannot read the {what} ({error})") from None


def check_export(
    export: Mapping[str, Any], keys: Mapping[str, bytes], kept: Sequence[tuple[str, SignedHead]] = ()
) -> tuple[LogChecker, list[Problem]]:
    """Verify an audit export against trusted keys and kept heads."""
    if export.get("format") != EXPORT_FORMAT:
        raise BadInput(
            f"not a FundTrail audit export (format {export.get('format')!r}, expected {EXPORT_FORMAT})"
        )
    try:
        heads = [SignedHead.from_dict(h) for h in export.get("heads", [])]
        records = export["records"]
    except (ValueError, KeyError, TypeError) as error:
        raise BadInput(f"the export is malformed ({error})") from None
    checker = LogChecker(heads, keys, kept)
    for i, r in enumerate(records, 1):
        if not isinstance(r, dict) or any(f not in r for f in (*RECORD_FIELDS, "hash")):
            raise BadInput(f"record {i} of the export lacks a field")
        checker.add(r, str(r["hash"]))
    problems = checker.finish()
    for proof in export.get("consistency", []):
        problems.extend(_check_consistency(proof, heads, checker))
    for co in export.get("cosignatures", []):
        problems.extend(_check_cosignature(co, keys, checker))
    return checker, problems


def _check_consistency(
    proof: Mapping[str, Any], heads: Sequence[SignedHead], checker: LogChecker
) -> list[Problem]:
    try:
        old, new = int(proof["from_size"]), int(proof["to_size"])
        old_root, new_root = bytes.fromhex(proof["from_root"]), bytes.fromhex(proof["to_root"])
        path = [bytes.fromhex(p) for p in proof["proof"]]
    except (KeyError, TypeError, ValueError):
        return [Problem(0, "a consistency proof in the export is malformed")]
    if not verify_consistency(old, new, old_root, new_root, path):
        return [Problem(0, f"the consistency proof from {old} to {new} records does not hold")]
    return []


def _check_cosignature(
    co: Mapping[str, Any], keys: Mapping[str, bytes], checker: LogChecker
) -> list[Problem]:
    try:
        head = SignedHead.from_dict(co["head"])
        witness_key = str(co["witness_key_id"])
        cosig = str(co["cosignature"])
    except (KeyError, TypeError, ValueError):
        return [Problem(0, "a witness cosignature in the export is malformed")]
    public = keys.get(witness_key)
    if public is None:
        return []  # a witness the auditor was not given a key for: reported, not trusted
    if not _ed25519_ok(public, cosignature_payload(head.to_dict(), witness_key), cosig):
        return [Problem(0, f"the cosignature of witness {witness_key} on the {head.describe()} is not valid")]
    why = checker.extends(head)
    return (
        [Problem(0, f"the log no longer extends the {head.describe()} witnessed by {witness_key}: {why}")]
        if why
        else []
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Verify an audit export; exit 0 intact, 1 broken, 2 bad input."""
    parser = argparse.ArgumentParser(description="Verify a FundTrail audit export with public keys alone.")
    parser.add_argument("export", help="the file written by `fundtrail audit export`")
    parser.add_argument(
        "--public-key", action="append", default=[], required=True, help="trusted key (base64)"
    )
    parser.add_argument("--head", action="append", default=[], help="a signed tree head you kept (JSON file)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        keys = _public_keys(args.public_key)
        kept = []
        for path in args.head:
            try:
                kept.append((path, SignedHead.from_dict(_load_json(path, "kept head"))))
            except ValueError as error:
                raise BadInput(f"{path}: {error}") from None
        export = _load_json(args.export, "audit export")
        if not isinstance(export, dict):
            raise BadInput(f"{args.export}: not an audit export")
        checker, problems = check_export(export, keys, kept)
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = {
        "intact": not problems,
        "records": checker.count,
        "heads": len(checker.heads),
        "root_hash": checker.root(),
        "kept_heads": len(kept),
        "problems": [str(p) for p in problems],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    elif not problems:
        print(
            f"audit log intact: {checker.count} records, {len(checker.heads)} signed heads verified, "
            f"extends {len(kept)} kept head(s); root {checker.root()}"
        )
    for p in problems[:10]:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
