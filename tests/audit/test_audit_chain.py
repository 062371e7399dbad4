"""The audit chain's rules without a database: any sequence of appends verifies; any single edit,
deletion, insertion or swap is found, and the first bad record named (hypothesis)."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from fundtrail.audit.chain import GENESIS, CheckpointData, RecordData, details_text, record_hash, verify_chain

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
entries = st.lists(
    st.tuples(texts, texts, st.none() | texts, st.dictionaries(texts, st.integers() | texts, max_size=3)),
    min_size=1,
    max_size=12,
)


def build(items: list[tuple]) -> list[RecordData]:
    """A chain of records as the audit log appends them."""
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


def verify(records: list[RecordData], head: tuple[int, str] | None = None, checkpoints=(), ok=True):
    if head is None:
        head = (records[-1].seq, records[-1].hash) if records else (0, GENESIS)
    return verify_chain(records, head, list(checkpoints), lambda cp: ok)


@given(entries)
def test_any_sequence_of_appends_verifies(items) -> None:
    records = build(items)
    result = verify(records)
    assert result.intact and result.records == len(items)


@given(entries, st.data())
def test_an_edited_record_is_named(items, data) -> None:
    records = build(items)
    i = data.draw(st.integers(0, len(records) - 1))
    field = data.draw(st.sampled_from(["actor", "action", "at", "details", "object_id"]))
    value = getattr(records[i], field)
    new = (value or "") + "x"
    edited = records[:i] + [dataclasses.replace(records[i], **{field: new})] + records[i + 1 :]
    # the original chain head is known (the head row), so the edit is found even at the end
    result = verify(edited, head=(records[-1].seq, records[-1].hash))
    assert not result.intact and result.first_bad.seq == i + 1
    assert "edited" in result.first_bad.problem


@given(entries, st.data())
def test_an_edited_record_with_a_recomputed_hash_breaks_the_next_link(items, data) -> None:
    records = build(items)
    i = data.draw(st.integers(0, len(records) - 1))
    r = dataclasses.replace(records[i], actor=records[i].actor + "!")
    r = dataclasses.replace(r, hash=r.computed_hash())
    edited = records[:i] + [r] + records[i + 1 :]
    result = verify(edited, head=(records[-1].seq, records[-1].hash))
    assert not result.intact
    assert result.first_bad.seq == (i + 2 if i + 1 < len(records) else i + 1)


@given(entries, st.data())
def test_a_deleted_record_is_named(items, data) -> None:
    records = build(items)
    i = data.draw(st.integers(0, len(records) - 1))
    result = verify(records[:i] + records[i + 1 :], head=(records[-1].seq, records[-1].hash))
    assert not result.intact and result.first_bad.seq == i + 1
    assert "missing" in result.first_bad.problem


@given(entries.filter(lambda x: len(x) >= 2), st.data())
def test_swapped_sequence_numbers_are_found(items, data) -> None:
    records = build(items)
    i = data.draw(st.integers(0, len(records) - 2))
    a, b = records[i], records[i + 1]
    swapped = (
        records[:i]
        + [dataclasses.replace(b, seq=a.seq), dataclasses.replace(a, seq=b.seq)]
        + records[i + 2 :]
    )
    result = verify(swapped, head=(records[-1].seq, records[-1].hash))
    assert not result.intact and result.first_bad.seq == i + 1


@given(entries, st.data())
def test_a_record_appended_behind_the_logs_back_is_found(items, data) -> None:
    records = build(items)
    forged = build(items + [("mallory", "case.read", None, {})])[-1]  # a valid-looking record
    result = verify(records + [forged], head=(records[-1].seq, records[-1].hash))
    assert not result.intact and result.first_bad.seq == len(records) + 1
    assert "beyond the chain head" in result.first_bad.problem


def test_checkpoints_must_verify_and_match() -> None:
    records = build([("a", "x", None, {}), ("b", "y", None, {})])
    good = CheckpointData(1, 2, records[1].hash, "t", "k", "sig")
    assert verify(records, checkpoints=[good]).intact
    assert verify(records, checkpoints=[good], ok=False).first_bad.seq == 2
    stale = dataclasses.replace(good, hash="0" * 64)
    assert "signed checkpoint" in verify(records, checkpoints=[stale]).first_bad.problem
