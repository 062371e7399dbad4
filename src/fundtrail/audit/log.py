"""The audit log in the case database: a Merkle transparency log with a signed tree head per transaction.

Appends happen inside the operation's own transaction, so an operation and its audit records are
written together or not at all. Appends are serialised through the one-row ``audit_head`` table:
PostgreSQL locks it (``SELECT ... FOR UPDATE``) until the transaction ends; SQLite transactions hold
the database write lock from their start (``BEGIN IMMEDIATE``, see :mod:`fundtrail.cases.db`).

Every transaction that appends records also stores, just before it commits, a signed tree head (size,
root, time, key id) made with the agency key (:func:`_seal`), so nothing unsigned ever trails the newest
head. Before a transaction extends the log, the stored state must match the newest signed head: a log
that was shortened, extended or rewritten behind FundTrail's back is never signed over. After the commit,
the newest head is also kept in the home (``HOME/audit/last-head.json``, outside the database), so that a
truncation of the tail together with its heads is caught by :func:`verify`.

:func:`append_many` appends many records at once under one lock of the head (one signed head for the
whole transaction): the group commit of :mod:`fundtrail.audit.batch` writes the records of many
concurrent reads that way, each read's records made ready before (:func:`prepare`: their fields but
their place in the log), so that the head stays locked only for the hash chain, the Merkle frontier and
the insert.

Verification (:func:`verify`, :func:`prove_record`, :func:`export`) only reads, and trusts only keys
pinned in the home's configuration (:mod:`fundtrail.audit.trust`), never a key listed in the database.
The tree, heads and proofs are those of :mod:`fundtrail.audit.verifier`, which auditors run alone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import Table, event, func, select, text
from sqlalchemy.orm import Session

from fundtrail.audit import trust
from fundtrail.audit.chain import RecordData, details_text
from fundtrail.audit.keys import AgencyKey
from fundtrail.audit.models import AuditCosignature, AuditHead, AuditRecord, AuditTreeHead
from fundtrail.audit.verifier import (
    EXPORT_FORMAT,
    RECORD_FIELDS,
    Frontier,
    LogChecker,
    Problem,
    SignedHead,
    Tree,
    cosignature_payload,
    head_payload,
    leaf_hash,
    record_leaf,
)
from fundtrail.errors import InputError, IntegrityError

log = logging.getLogger(__name__)

_PENDING = "fundtrail.audit.pending"
_SEALED = "fundtrail.audit.sealed"
_KEEP_LATER = "fundtrail.audit.keep-later"
LAST_HEAD_FILE = Path("audit") / "last-head.json"


def timestamp(when: datetime | None = None) -> str:
    """An audit timestamp: UTC, ISO 8601 with microseconds."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lock_head(session: Session) -> AuditHead:
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if head is None:
        raise IntegrityError("the audit log's head row is missing from the case database")
    return head


@dataclass
class _Pending:
    """What one transaction appended: the key that will sign its head and the grown tree."""

    key: AgencyKey
    frontier: Frontier
    head: AuditHead
    """The locked head row of this transaction."""


_verified: dict[tuple[str, str], tuple[int, str, str]] = {}
"""The newest head each process last checked, per database and key: (size, root, signature)."""


def _newest_head(session: Session) -> AuditTreeHead | None:
    return session.execute(
        select(AuditTreeHead).order_by(AuditTreeHead.id.desc()).limit(1)
    ).scalar_one_or_none()


def _as_signed(row: AuditTreeHead) -> SignedHead:
    return SignedHead(row.tree_size, row.root_hash, row.timestamp, row.key_id, row.signature)


def _check_state(session: Session, head: AuditHead, key: AgencyKey) -> Frontier:
    """The stored tree, once it is shown to match the newest signed head; IntegrityError otherwise."""
    try:
        frontier = Frontier.load(head.seq, head.frontier)
    except ValueError as error:
        raise IntegrityError(
            f"the audit log's state is damaged ({error}): run `fundtrail audit verify`"
        ) from None
    newest = _newest_head(session)
    if newest is None:
        if head.seq == 0 or head.signed_seq == -1:
            return frontier  # an empty log, or records from before signed heads: the first head covers them
        raise IntegrityError(
            f"the audit log holds {head.seq} records but no signed tree head: it was tampered with; "
            "nothing more is appended until `fundtrail audit verify` is clean"
        )
    cache_key = (str(session.get_bind().engine.url), key.key_id)
    seen = (newest.tree_size, newest.root_hash, newest.signature)
    bad = None
    if _verified.get(cache_key) != seen:  # a head this process signed or checked needs no second check
        bad = _as_signed(newest).check_signature(_agency_keys(key, newest.key_id))
    if bad or newest.tree_size != head.seq or newest.root_hash != frontier.root().hex():
        raise IntegrityError(
            "the audit log does not match its newest signed tree head "
            f"({bad or f'{head.seq} records stored, {newest.tree_size} signed'}): it was changed outside "
            "FundTrail; nothing more is appended until `fundtrail audit verify` is clean"
        )
    _verified[cache_key] = seen
    return frontier


def _agency_keys(key: AgencyKey, wanted: str) -> dict[str, bytes]:
    keys = {key.key_id: key.public_raw}
    if key.home is not None and wanted != key.key_id:
        for k in trust.owned_by(trust.load(key.home), trust.AGENCY):
            keys.setdefault(k.key_id, k.raw)
    return keys


_RECORDS = cast(Table, AuditRecord.__table__)


@dataclass(frozen=True)
class Entry:
    """One record to append (its sequence number, time-stamp text and hashes are given when appended)."""

    actor: str
    action: str
    object_type: str
    object_id: str | int | None = None
    case_number: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] | None = None
    at: datetime | None = None


def _placeless(entry: Entry, at: str | None = None) -> dict[str, Any]:
    """The stored fields of ``entry`` but those of its place in the log (``seq``, ``prev_hash``);
    ``at``: its timestamp text, when already made."""
    return {
        "at": timestamp(entry.at) if at is None else at,
        "actor": entry.actor,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": None if entry.object_id is None else str(entry.object_id),
        "case_number": entry.case_number,
        "reason": entry.reason,
        "details": details_text(entry.details),
    }


def _fields(seq: int, prev_hash: str, placeless: Mapping[str, Any]) -> dict[str, Any]:
    """The stored fields of record ``seq`` (after the record whose hash is ``prev_hash``)."""
    return {"seq": seq, **placeless, "prev_hash": prev_hash}


def prepare(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """What can be made of ``entries`` before the head is locked (for :func:`append_prepared`): their
    stored fields but ``seq`` and ``prev_hash``, one timestamp text per distinct time. Raises the
    error of details that cannot be stored (TypeError, ValueError)."""
    stamps: dict[datetime, str] = {}
    out: list[dict[str, Any]] = []
    for entry in entries:
        at = None
        if entry.at is not None:
            at = stamps.get(entry.at)
            if at is None:
                at = stamps[entry.at] = timestamp(entry.at)
        out.append(_placeless(entry, at))
    return out


def _begin_append(session: Session, key: AgencyKey) -> tuple[AuditHead, _Pending]:
    head = _lock_head(session)
    pending: _Pending | None = session.info.get(_PENDING)
    if pending is None:
        pending = _Pending(key, _check_state(session, head, key), head)
        session.info[_PENDING] = pending
    return head, pending


def append_many(session: Session, entries: Sequence[Entry], *, key: AgencyKey) -> int:
    """Append ``entries`` in order, as :func:`append` would one by one, with one lock of the head and
    one insert; their head is signed at commit. Returns the sequence number of the last one."""
    return append_prepared(session, prepare(entries), key=key)


def append_prepared(session: Session, prepared: Sequence[Mapping[str, Any]], *, key: AgencyKey) -> int:
    """:func:`append_many` for entries made ready by :func:`prepare`, so that the work done while the
    head is locked is only what depends on the place in the log: sequence numbers, the hash chain and
    the Merkle frontier. Returns the sequence number of the last record."""
    head, pending = _begin_append(session, key)
    rows: list[tuple[Any, ...]] = []
    seq, prev = head.seq, head.hash
    frontier = pending.frontier
    for placeless in prepared:
        seq += 1
        fields = _fields(seq, prev, placeless)
        leaf = record_leaf(fields)
        prev = hashlib.sha256(leaf).hexdigest()
        rows.append((*(fields[name] for name in RECORD_FIELDS), prev))
        frontier.append(leaf_hash(leaf))
    if rows:
        head.seq, head.hash = seq, prev
        _insert_records(session, rows)
    session.flush()
    return head.seq


_INSERT_COLUMNS = (*RECORD_FIELDS, "hash")
_PARAMETER_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric_dollar": "${}", "numeric": ":{}"}


def _insert_records(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """Insert records given as tuples of :data:`_INSERT_COLUMNS`, in one statement run for every row by
    the database driver itself (plain strings and integers: nothing to convert per row)."""
    connection = session.connection()
    mark = _PARAMETER_MARKS[connection.dialect.paramstyle]
    marks = ", ".join(mark.format(i + 1) for i in range(len(_INSERT_COLUMNS)))
    connection.exec_driver_sql(
        f"INSERT INTO {_RECORDS.name} ({', '.join(_INSERT_COLUMNS)}) VALUES ({marks})", rows)


def append(
    session: Session,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    *,
    case_number: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    key: AgencyKey,
) -> AuditRecord:
    """Append one record (actor, action, object, case, reason, details); its head is signed at commit."""
    head, pending = _begin_append(session, key)
    seq = head.seq + 1
    entry = Entry(actor, action, object_type, object_id, case_number, reason, details, at)
    fields = _fields(seq, head.hash, _placeless(entry))
    leaf = record_leaf(fields)
    record = AuditRecord(**fields, hash=hashlib.sha256(leaf).hexdigest())
    session.add(record)
    pending.frontier.append(leaf_hash(leaf))
    head.seq, head.hash = seq, record.hash
    session.flush()
    return record


def _seal(session: Session) -> None:
    """Sign the tree head of what this transaction appended (called just before it commits)."""
    pending: _Pending | None = session.info.pop(_PENDING, None)
    if pending is None:
        return
    head = pending.head
    root = pending.frontier.root().hex()
    when = timestamp()
    key = pending.key
    row = AuditTreeHead(
        tree_size=head.seq,
        root_hash=root,
        timestamp=when,
        key_id=key.key_id,
        signature=key.sign(head_payload(head.seq, root, when, key.key_id)),
    )
    session.add(row)
    head.frontier = pending.frontier.dump()
    head.signed_seq = head.seq
    session.flush()
    signed = _as_signed(row)
    _verified[(str(session.get_bind().engine.url), key.key_id)] = (
        signed.tree_size,
        signed.root_hash,
        signed.signature,
    )
    if key.home is not None:
        session.info[_SEALED] = (key.home, signed)


def keep_head_later(session: Session) -> list[tuple[Path, SignedHead]]:
    """Leave the home's copy of the head ``session``'s transaction signs to the caller: after the commit
    it is in the list returned, for :func:`remember_head` once the caller has released its locks (a
    crash in between leaves the home's copy one head behind, as a crash just after any commit does)."""
    later: list[tuple[Path, SignedHead]] = []
    session.info[_KEEP_LATER] = later
    return later


def _sealed(session: Session) -> None:
    sealed = session.info.pop(_SEALED, None)
    later = session.info.pop(_KEEP_LATER, None)
    if sealed is not None and later is not None:
        later.append(sealed)
    elif sealed is not None:
        home, head = sealed
        try:
            remember_head(home, head)
        except OSError as error:  # the commit stands; the home copy only helps catch truncation
            log.warning("could not keep the newest audit head in the home: %s", error)


def _discard(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_SEALED, None)


event.listen(Session, "before_commit", _seal)
event.listen(Session, "after_commit", _sealed)
event.listen(Session, "after_rollback", _discard)


# --- the newest head as this home last saw it -------------------------------------------------------


def last_head_path(home: Path) -> Path:
    """Where the home keeps the newest head it saw signed."""
    return Path(home) / LAST_HEAD_FILE


def read_last_head(home: Path) -> SignedHead | None:
    """The newest head this home saw signed, or None."""
    path = last_head_path(home)
    if not path.is_file():
        return None
    try:
        return SignedHead.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, OSError) as error:
        raise IntegrityError(f"{path}: not a signed tree head ({error})") from None


def remember_head(home: Path, head: SignedHead) -> None:
    """Keep ``head`` in the home when it is newer (larger) than the one kept."""
    path = last_head_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".last-head.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = read_last_head(home)
        except IntegrityError:
            current = None
        if current is not None and current.tree_size >= head.tree_size:
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".last-head-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(head.to_dict(), fh)
        os.replace(tmp, path)


# --- reading ---------------------------------------------------------------------------------------

_COLUMNS = (
    AuditRecord.seq,
    AuditRecord.at,
    AuditRecord.actor,
    AuditRecord.action,
    AuditRecord.object_type,
    AuditRecord.object_id,
    AuditRecord.case_number,
    AuditRecord.reason,
    AuditRecord.details,
    AuditRecord.prev_hash,
    AuditRecord.hash,
)
_NAMES = RECORD_FIELDS


_SELECT_ROWS = text(
    "SELECT seq, at, actor, action, object_type, object_id, case_number, reason, details, prev_hash, hash "
    "FROM audit_records WHERE seq > :after AND seq <= :upto ORDER BY seq LIMIT :batch"
)


def _rows(session: Session, *, upto: int | None = None, batch: int = 20000) -> Iterator[tuple[Any, ...]]:
    """Every record as a plain tuple, in sequence order, in batches (plain SQL: verification reads a lot)."""
    after = -(2**31)
    connection = session.connection()
    limit = 2**62 if upto is None else upto
    while True:
        rows = connection.execute(_SELECT_ROWS, {"after": after, "upto": limit, "batch": batch}).fetchall()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def heads(session: Session) -> list[SignedHead]:
    """Every stored signed tree head, in the order stored."""
    return [
        _as_signed(r) for r in session.execute(select(AuditTreeHead).order_by(AuditTreeHead.id)).scalars()
    ]


def newest_head(session: Session) -> SignedHead | None:
    """The newest stored signed tree head."""
    row = _newest_head(session)
    return None if row is None else _as_signed(row)


def trusted_raw(keys: Mapping[str, trust.TrustedKey], owner: str | None = None) -> dict[str, bytes]:
    """Raw public keys by key id, of one owner (or all)."""
    return {k.key_id: k.raw for k in keys.values() if owner is None or k.owner == owner}


@dataclass(frozen=True)
class Witnessed:
    """A head of ours a partner countersigned, and whether the log still extends it."""

    witness: str
    head: SignedHead
    witnessed_at: str
    trusted: bool
    extends: bool

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "witness": self.witness,
            "tree_size": self.head.tree_size,
            "root_hash": self.head.root_hash,
            "timestamp": self.head.timestamp,
            "witnessed_at": self.witnessed_at,
            "cosignature_trusted": self.trusted,
            "extended": self.extends,
        }


@dataclass(frozen=True)
class Verification:
    """What verifying the log found."""

    records: int
    root_hash: str
    heads: int
    newest: SignedHead | None
    kept: tuple[tuple[str, SignedHead, str | None], ...]
    witnessed: tuple[Witnessed, ...]
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def intact(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def first_bad(self) -> Problem | None:
        """The first problem (lowest record first)."""
        return self.problems[0] if self.problems else None

    @property
    def newest_witnessed(self) -> Witnessed | None:
        """The largest head a trusted partner countersigned."""
        good = [w for w in self.witnessed if w.trusted]
        return max(good, key=lambda w: w.head.tree_size) if good else None

    def to_dict(self) -> dict[str, Any]:
        """The verification as JSON values."""
        first = self.first_bad
        witnessed = self.newest_witnessed
        return {
            "intact": self.intact,
            "records": self.records,
            "root_hash": self.root_hash,
            "signed_heads": self.heads,
            "newest_head": None if self.newest is None else self.newest.to_dict(),
            "kept_heads": [
                {
                    "name": name,
                    "tree_size": h.tree_size,
                    "root_hash": h.root_hash,
                    "extended": why is None,
                    "problem": why,
                }
                for name, h, why in self.kept
            ],
            "newest_witnessed_head": None if witnessed is None else witnessed.to_dict(),
            "witnessed_heads": [w.to_dict() for w in self.witnessed],
            "first_bad_record": None if first is None or not first.seq else first.seq,
            "problem": None if first is None else str(first),
            "problems": [{"seq": p.seq or None, "problem": p.problem} for p in self.problems],
        }


def verify(
    session: Session,
    keys: Mapping[str, trust.TrustedKey],
    *,
    kept: Sequence[tuple[str, SignedHead]] = (),
    home: Path | None = None,
) -> Verification:
    """Check every record, every signed head, their consistency, kept heads and witnessed heads.

    Reads only. Heads must be signed by an agency key in ``keys``; witness cosignatures by the key
    pinned for that partner. The newest head the home saw (``home``) is checked like a kept head.
    """
    agency = trusted_raw(keys, trust.AGENCY) | trusted_raw(keys, trust.USER_GIVEN)
    all_kept = list(kept)
    if home is not None:
        last = read_last_head(home)
        if last is not None:
            all_kept.append((f"last seen by this home ({last_head_path(home)})", last))
    cosigs = list(session.execute(select(AuditCosignature).order_by(AuditCosignature.id)).scalars())
    witnessed_heads = [
        (c, SignedHead(c.tree_size, c.root_hash, c.timestamp, c.key_id, c.signature)) for c in cosigs
    ]
    stored = heads(session)
    checker = LogChecker(
        stored,
        agency,
        [*all_kept, *((f"witnessed by {c.witness}", h) for c, h in witnessed_heads)],
    )
    for row in _rows(session):
        checker.add(dict(zip(_NAMES, row[:10], strict=True)), row[10])
    problems = checker.finish()
    state = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one_or_none()
    if state is None:
        problems.append(Problem(0, "the audit log's head row is missing"))
    elif state[0] != checker.count or (checker.count and state[1] != checker.last_hash):
        problems.append(
            Problem(
                min(state[0], checker.count) + 1 if state[0] != checker.count else checker.count,
                f"the log's head row says {state[0]} records (hash {state[1][:16]}...), the log holds "
                f"{checker.count}: records were added or removed outside FundTrail",
            )
        )
    witnessed: list[Witnessed] = []
    for c, h in witnessed_heads:
        partner_keys = trusted_raw(keys, trust.partner_owner(c.witness))
        public = partner_keys.get(c.witness_key_id)
        trusted = public is not None and _cosignature_ok(public, h, c.witness_key_id, c.cosignature)
        if not trusted:
            problems.append(
                Problem(
                    0,
                    f"the cosignature of witness {c.witness} (key {c.witness_key_id}) on the {h.describe()} "
                    "is not by a key pinned for that partner",
                )
            )
        witnessed.append(Witnessed(c.witness, h, c.witnessed_at, trusted, checker.extends(h) is None))
    kept_results = tuple((name, h, checker.extends(h)) for name, h in all_kept)
    problems.sort(key=lambda p: (p.seq == 0, p.seq))
    return Verification(
        checker.count,
        checker.root(),
        len(stored),
        stored[-1] if stored else None,
        kept_results,
        tuple(witnessed),
        tuple(problems),
    )


class LogDatabase(Protocol):
    """What :func:`verify_database` needs of a case database (:class:`fundtrail.cases.db.CaseDB` is one)."""

    @property
    def home(self) -> Path:
        """The FundTrail home, holding the trust file and the last head seen."""
        ...

    def reading(self) -> AbstractContextManager[Session]:
        """A transaction that is always rolled back."""
        ...


def verify_database(
    db: LogDatabase, *, kept: Sequence[tuple[str, SignedHead]] = (), given: Sequence[str] = ()
) -> Verification:
    """:func:`verify` the log of ``db`` with the keys pinned in its home, in a transaction of its own."""
    keys = trust.load(db.home, given)
    with db.reading() as session:
        return verify(session, keys, kept=kept, home=db.home)


def _cosignature_ok(public: bytes, head: SignedHead, witness_key_id: str, cosignature: str) -> bool:
    from fundtrail.audit.verifier import _ed25519_ok

    return _ed25519_ok(public, cosignature_payload(head.to_dict(), witness_key_id), cosignature)


def prove_record(session: Session, seq: int, keys: Mapping[str, trust.TrustedKey]) -> str | None:
    """None when record ``seq``, as stored, lies under the newest head signed by a trusted agency key.

    Otherwise a sentence saying what is wrong. Reads only.
    """
    agency = trusted_raw(keys, trust.AGENCY) | trusted_raw(keys, trust.USER_GIVEN)
    newest: SignedHead | None = None
    for h in reversed(heads(session)):
        if h.check_signature(agency) is None:
            newest = h
            break
    if newest is None:
        return "no tree head of the audit log is signed by a trusted key"
    if seq > newest.tree_size:
        return f"audit record {seq} is not under a signed tree head"
    checker = LogChecker([newest], agency)
    for row in _rows(session, upto=newest.tree_size):
        checker.add(dict(zip(_NAMES, row[:10], strict=True)), row[10])
    problems = checker.finish()
    if problems:
        return f"audit record {seq} is not proven by the signed log: {problems[0]}"
    return None


def export(session: Session, kept: Sequence[SignedHead] = ()) -> dict[str, Any]:
    """The whole log for an independent auditor: records, signed heads, cosignatures and proofs.

    Consistency proofs (RFC 9162) run between consecutive signed heads and from every kept head to
    the newest, so an auditor holding only heads can check that each extends the one before.
    """
    records: list[dict[str, Any]] = []
    leaves: list[bytes] = []
    for row in _rows(session):
        rec = dict(zip(_NAMES, row[:10], strict=True))
        leaves.append(leaf_hash(record_leaf(rec)))
        records.append({**rec, "hash": row[10]})
    stored = heads(session)
    tree = Tree(leaves)
    proofs: list[dict[str, Any]] = []

    def prove(old: SignedHead, new: SignedHead) -> None:
        if 0 < old.tree_size < new.tree_size <= tree.size:
            proofs.append(
                {
                    "from_size": old.tree_size,
                    "from_root": old.root_hash,
                    "to_size": new.tree_size,
                    "to_root": new.root_hash,
                    "proof": [p.hex() for p in tree.consistency_proof(old.tree_size, new.tree_size)],
                }
            )

    for a, b in zip(stored, stored[1:], strict=False):
        prove(a, b)
    if stored:
        for k in kept:
            prove(k, stored[-1])
    cosigs = [
        {
            "witness": c.witness,
            "witness_key_id": c.witness_key_id,
            "cosignature": c.cosignature,
            "witnessed_at": c.witnessed_at,
            "head": SignedHead(c.tree_size, c.root_hash, c.timestamp, c.key_id, c.signature).to_dict(),
        }
        for c in session.execute(select(AuditCosignature).order_by(AuditCosignature.id)).scalars()
    ]
    return {
        "format": EXPORT_FORMAT,
        "records": records,
        "heads": [h.to_dict() for h in stored],
        "consistency": proofs,
        "cosignatures": cosigs,
    }


def consistency_proof(session: Session, old: int, new: int) -> list[bytes]:
    """An RFC 9162 consistency proof between the log's trees of ``old`` and ``new`` records."""
    leaves = [
        leaf_hash(record_leaf(dict(zip(_NAMES, r[:10], strict=True)))) for r in _rows(session, upto=new)
    ]
    if len(leaves) < new:
        raise IntegrityError(f"the audit log holds {len(leaves)} records, fewer than {new}")
    return Tree(leaves).consistency_proof(old, new)


def load_kept_head(path: Path) -> SignedHead:
    """A signed tree head an auditor kept (``fundtrail audit head --format json``); InputError if bad."""
    if path.is_dir():
        raise InputError(f"{path}: a directory, not a signed tree head file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the kept head ({error})") from None
    if len(text) > 65536:
        raise InputError(f"{path}: too large for a signed tree head")
    try:
        doc = json.loads(text)
        if isinstance(doc, dict) and "head" in doc and isinstance(doc["head"], dict):
            doc = doc["head"]
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return SignedHead.from_dict(doc)
    except ValueError as error:
        raise InputError(f"{path}: {error}") from None


def records(
    session: Session,
    *,
    case_number: str | None = None,
    actor: str | None = None,
    object_type: str | None = None,
    since_seq: int = 0,
    limit: int = 100,
) -> list[RecordData]:
    """Records in sequence order, filtered; the last ``limit`` of them."""
    q = select(*_COLUMNS).where(AuditRecord.seq > since_seq)
    if case_number:
        q = q.where(AuditRecord.case_number == case_number)
    if actor:
        q = q.where(AuditRecord.actor == actor)
    if object_type:
        q = q.where(AuditRecord.object_type == object_type)
    rows = session.execute(q.order_by(AuditRecord.seq.desc()).limit(limit)).all()
    return [RecordData(*r) for r in reversed(rows)]


def count(session: Session) -> int:
    """How many records the log holds."""
    return int(session.execute(select(func.count()).select_from(AuditRecord)).scalar_one())
