"""The log's Merkle tree without a database (hypothesis): roots agree with an independent RFC 9162
implementation (pymerkle), every inclusion and consistency proof verifies and a wrong one does not, and
any single edit, deletion, insertion or swap of records is found against the signed heads."""

from __future__ import annotations

import base64
import dataclasses

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from fundtrail.audit.chain import GENESIS, RecordData, details_text, record_hash
from fundtrail.audit.verifier import (
    Frontier,
    LogChecker,
    SignedHead,
    Tree,
    head_payload,
    key_id_of,
    leaf_hash,
    record_leaf,
    verify_consistency,
    verify_inclusion,
)

leaves = st.lists(st.binary(min_size=0, max_size=40), min_size=1, max_size=70)
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
entries = st.lists(
    st.tuples(texts, texts, st.none() | texts, st.dictionaries(texts, st.integers() | texts, max_size=3)),
    min_size=2,
    max_size=12,
)

KEY = Ed25519PrivateKey.generate()
RAW = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
KEY_ID = key_id_of(RAW)


@given(leaves)
def test_roots_agree_with_pymerkle_at_every_size(data: list[bytes]) -> None:
    reference = InmemoryTree(algorithm="sha256")
    frontier = Frontier()
    tree = Tree(leaf_hash(d) for d in data)
    for n, d in enumerate(data, 1):
        reference.append_entry(d)
        frontier.append(leaf_hash(d))
        assert frontier.root() == tree.root(n) == reference.get_root(n)
        assert Frontier.load(n, frontier.dump()).root() == frontier.root()


@given(leaves, st.data())
def test_proofs_verify_and_wrong_ones_do_not(data: list[bytes], draw: st.DataObject) -> None:
    tree = Tree(leaf_hash(d) for d in data)
    n = len(data)
    new = draw.draw(st.integers(1, n))
    old = draw.draw(st.integers(1, new))
    proof = tree.consistency_proof(old, new)
    assert verify_consistency(old, new, tree.root(old), tree.root(new), proof)
    if old < new:
        assert not verify_consistency(old, new, leaf_hash(b"forged"), tree.root(new), proof)
        assert not verify_consistency(old, new, tree.root(old), leaf_hash(b"forged"), proof)
        assert not verify_consistency(old, new, tree.root(old), tree.root(new), proof[:-1])
    index = draw.draw(st.integers(0, new - 1))
    path = tree.inclusion_proof(index, new)
    assert verify_inclusion(index, new, leaf_hash(data[index]), path, tree.root(new))
    assert not verify_inclusion(index, new, leaf_hash(data[index] + b"x"), path, tree.root(new))


def build(items: list[tuple]) -> list[RecordData]:
    """Records as the audit log appends them."""
    out, prev = [], GENESIS
    for seq, (actor, action, object_id, details) in enumerate(items, start=1):
        fields = dict(
            seq=seq,
            at=f"2026-01-01T00:00:{seq % 60:02d}.000000Z",
            actor=actor,
            action=action,
            object_type="case",
            object_id=object_id,
            case_number=None,
            reason=None,
            details=details_text(details),
            prev_hash=prev,
        )
        h = record_hash(**fields)
        out.append(RecordData(**fields, hash=h))
        prev = h
    return out


def sign_heads(records: list[RecordData], sizes: list[int]) -> list[SignedHead]:
    tree = Tree(leaf_hash(record_leaf(r.fields())) for r in records)
    heads = []
    for i, n in enumerate(sizes):
        ts = f"2026-01-01T00:01:{i:02d}.000000Z"
        root = tree.root(n).hex()
        sig = base64.b64encode(KEY.sign(head_payload(n, root, ts, KEY_ID))).decode()
        heads.append(SignedHead(n, root, ts, KEY_ID, sig))
    return heads


def check(records: list[RecordData], heads: list[SignedHead]) -> list:
    checker = LogChecker(heads, {KEY_ID: RAW})
    for r in records:
        checker.add(r.fields(), r.hash)
    return checker.finish()


@given(entries, st.data())
def test_any_log_with_its_heads_verifies_and_any_single_change_is_found(items, draw) -> None:
    records = build(items)
    n = len(records)
    sizes = sorted(set(draw.draw(st.lists(st.integers(1, n), max_size=4)) + [n]))
    heads = sign_heads(records, sizes)
    assert check(records, heads) == []
    i = draw.draw(st.integers(0, n - 1))
    change = draw.draw(st.sampled_from(["edit", "delete", "swap", "duplicate", "truncate"]))
    changed = list(records)
    if change == "edit":
        changed[i] = dataclasses.replace(changed[i], actor=changed[i].actor + "!")
    elif change == "delete":
        del changed[i]
    elif change == "swap":
        j = (i + 1) % n
        changed[i], changed[j] = changed[j], changed[i]
    elif change == "duplicate":
        changed.insert(i, changed[i])
    else:
        changed = changed[:i]
    problems = check(changed, heads)
    assert problems, change
    assert problems[0].seq <= i + 2  # a duplicate of record i+1 shows where record i+2 should be


def test_a_head_signed_by_another_key_is_not_trusted() -> None:
    records = build([("a", "b", None, {}), ("c", "d", None, {})])
    head = sign_heads(records, [2])[0]
    other = Ed25519PrivateKey.generate()
    raw = other.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    checker = LogChecker([head], {key_id_of(raw): raw})
    for r in records:
        checker.add(r.fields(), r.hash)
    problems = checker.finish()
    assert problems and "not trusted" in problems[0].problem
