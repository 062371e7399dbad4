"""Sanctioned-address lists (OFAC SDN "Digital Currency Address" lists and the like).

A list file is ``sanctioned_addresses_<ASSET>.txt`` (one address a line) or ``.json`` (an array); the
asset code comes from the file name (``XBT`` is Bitcoin). Each address is filed under the FundTrail
chain of its asset; assets that live on several chains (``USDT``, ``USDC``) are routed address by
address to the chain whose format fits (EVM hex, Tron base58, Bitcoin/Omni). An address that is not
valid for its chain (OFAC files one Tron address under XBT) is kept, flagged, and reported.

Every import is a *snapshot* keyed by (list name, asset code, list date): re-importing the same snapshot
replaces it, other snapshots stay, so that an address can be checked against the list as it stood on
a date. The list date comes from ``--date``, else from the list itself (a ``# ... YYYY-MM-DD`` comment
line of a text list, the ``date`` of a JSON list written as ``{"date": ..., "addresses": [...]}``), else
from a ``YYYY-MM-DD`` in the file name, else from a leading one in the name of the file's folder (history
snapshots), else it is the day of the import (the earliest day FundTrail itself saw the address listed;
never the file's modification time, which a copy changes); the row says which.

Tron addresses are kept in base58 (``T...``); the hex form (``41`` + 20 bytes, with or without ``0x``)
is accepted wherever an address is screened.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from fundtrail.domain.addresses import b58check_decode, b58check_encode, canonical_address
from fundtrail.domain.chains import CHAINS
from fundtrail.errors import InputError, InvalidAddressError, ParseError
from fundtrail.store import schema
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

schema.register_table(
    "sanctions",
    "chain VARCHAR NOT NULL, address VARCHAR NOT NULL, list_name VARCHAR NOT NULL, "
    "asset_code VARCHAR NOT NULL, source VARCHAR, listed_on DATE NOT NULL, imported_at TIMESTAMP NOT NULL, "
    "address_as_listed VARCHAR, is_valid BOOLEAN, problem VARCHAR, date_basis VARCHAR",
)

DEFAULT_LIST_NAME = "OFAC SDN"

ASSET_CHAINS: dict[str, str] = {
    "XBT": "btc", "BTC": "btc", "ETH": "eth", "LTC": "ltc", "BCH": "bch", "DASH": "dash", "ZEC": "zec",
    "DOGE": "doge", "ETC": "etc", "BSC": "bsc", "ARB": "arb", "MATIC": "polygon", "AVAX": "avax",
    "TRX": "trx", "XMR": "xmr", "XRP": "xrp", "BSV": "bsv", "BTG": "btg", "XVG": "xvg",
}
"""Asset codes of the lists mapped to FundTrail chains (chains FundTrail does not model keep their code)."""

MULTI_CHAIN_ASSETS = frozenset({"USDT", "USDC"})
"""Tokens issued on several chains: each address goes to the chain its format fits."""

_FILE_NAME = re.compile(r"sanctioned_addresses_([A-Za-z0-9]+)(?:[_-]\d{4}-\d{2}-\d{2})?\.(txt|json)$")
_DATED_FOLDER = re.compile(r"^(\d{4}-\d{2}-\d{2})")
_DATE_IN_TEXT = re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2})(?!\d)")
_TRON_HEX = re.compile(r"^(0x)?41[0-9a-fA-F]{40}$")
_JSON_DATE_KEYS = ("date", "listed_on", "published", "publish_date")


def is_evm(chain: str) -> bool:
    """True for the EVM chains FundTrail knows (addresses compare case-insensitively); not TRON."""
    params = CHAINS.get(chain)
    return params is not None and params.has_hex_addresses


def is_tron_address(text: str) -> bool:
    """True for a Tron base58 address (version byte 0x41, 20-byte account, valid checksum)."""
    if not text.startswith("T"):
        return False
    try:
        payload = b58check_decode(text)
    except InputError:
        return False
    return len(payload) == 21 and payload[0] == 0x41


def tron_address(text: str) -> str | None:
    """A Tron address in base58 (``T...``) from base58 or hex (``41``/``0x41`` + 20 bytes), else None."""
    text = text.strip()
    if is_tron_address(text):
        return text
    if _TRON_HEX.match(text):
        return b58check_encode(bytes.fromhex(text[2:] if text.lower().startswith("0x") else text))
    return None


def asset_of_file(path: Path) -> str:
    """The asset code in a list file's name (``sanctioned_addresses_XBT.txt`` -> ``XBT``)."""
    match = _FILE_NAME.search(Path(path).name)
    if not match:
        raise InputError(f"{path}: cannot tell the asset from the file name "
                         f"(expected sanctioned_addresses_<ASSET>.txt or .json); give --asset")
    return match.group(1).upper()


def read_list(path: Path) -> list[str]:
    """The addresses of a list file, in file order, blank and ``#`` comment lines skipped."""
    return _read_list_file(path)[0]


def _read_list_file(path: Path) -> tuple[list[str], date | None]:
    """The addresses of a list file and the date the list gives itself (None when it gives none)."""
    path = Path(path)
    if path.is_dir():
        raise ParseError(str(path), None, "is a folder, not a list file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ParseError(str(path), f"line {line}",
                         f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParseError(str(path), f"line {exc.lineno}", f"not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise ParseError(str(path), None, "not valid JSON: nested too deeply") from None
        own: date | None = None
        if isinstance(data, Mapping):
            stated = next((str(data[k]) for k in _JSON_DATE_KEYS if data.get(k)), None)
            own = _date_in(stated) if stated else None
            if stated and own is None:
                raise ParseError(str(path), None, f"the list's date {stated!r} is not a date YYYY-MM-DD")
            data = data.get("addresses")
        if not isinstance(data, list) or not all(isinstance(a, str) for a in data):
            raise ParseError(str(path), None, "expected a JSON array of address strings (or an object with "
                                              "\"addresses\" and \"date\")")
        return [a.strip() for a in data if a.strip()], own
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    comments = [line for line in lines if line.startswith("#")]
    own = next((d for d in map(_date_in, comments) if d is not None), None)
    return [line for line in lines if not line.startswith("#")], own


def _date_in(text: str) -> date | None:
    """The first valid ``YYYY-MM-DD`` date in ``text``, else None."""
    for match in _DATE_IN_TEXT.finditer(text):
        try:
            return date.fromisoformat(match.group(1))
        except ValueError:
            continue
    return None


@dataclass(frozen=True, slots=True)
class ListedAddress:
    """One address of a list, filed under a chain, canonical when valid."""

    chain: str
    address: str
    as_listed: str
    is_valid: bool
    problem: str | None


def file_address(asset_code: str, text: str) -> ListedAddress:
    """File a listed address under its chain; invalid addresses are kept with the problem named."""
    asset = asset_code.upper()
    text = text.strip()
    if asset in MULTI_CHAIN_ASSETS:
        if text.lower().startswith("0x"):
            chain = "eth"
        elif is_tron_address(text):
            return ListedAddress("trx", text, text, True, None)
        else:
            chain = "btc"  # Omni-layer USDT lives on Bitcoin addresses
    else:
        chain = ASSET_CHAINS.get(asset, asset.lower())
    if chain == "trx":
        tron = tron_address(text)
        return ListedAddress(chain, tron or text, text, tron is not None,
                             None if tron else f"{text!r} is not a valid Tron address")
    if chain not in CHAINS:
        return ListedAddress(chain, text, text, True, None)  # a chain FundTrail does not model: kept as is
    try:
        return ListedAddress(chain, canonical_address(chain, text), text, True, None)
    except InvalidAddressError as exc:
        fallback = text.lower() if text.lower().startswith("0x") else text
        return ListedAddress(chain, fallback, text, False, str(exc))


@dataclass(frozen=True, slots=True)
class ListDate:
    """The date of a list snapshot and where it was taken from."""

    day: date
    basis: str


IMPORT_DAY = "import day (the list carries no date; give --date)"
"""The date basis of a list that names no date anywhere: the day it was imported."""


def list_date(path: Path, given: date | None = None, *, own: date | None = None,
              today: date | None = None) -> ListDate:
    """The list date: ``given``, else the list's ``own`` date (read from inside it), else a date in the file
    name, else a dated folder name, else the day of the import (``today``, UTC)."""
    if given is not None:
        return ListDate(given, "option")
    if own is not None:
        return ListDate(own, "list")
    named = _date_in(Path(path).name)
    if named is not None:
        return ListDate(named, "file name")
    match = _DATED_FOLDER.match(Path(path).resolve().parent.name)
    if match:
        try:
            return ListDate(date.fromisoformat(match.group(1)), "folder name")
        except ValueError:
            pass
    return ListDate(today or datetime.now(UTC).date(), IMPORT_DAY)


@dataclass(frozen=True, slots=True)
class SanctionsImport:
    """What importing one list file did."""

    file: str
    list_name: str
    asset_code: str
    listed_on: date
    date_basis: str
    addresses: int
    chains: Mapping[str, int]
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary."""
        out = asdict(self)
        out["listed_on"] = self.listed_on.isoformat()
        out["chains"] = dict(self.chains)
        out["warnings"] = list(self.warnings)
        return out


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """A list file read and filed, ready to store."""

    path: Path
    asset: str
    when: ListDate
    entries: list[ListedAddress]
    warnings: tuple[str, ...]


def _read_snapshot(path: Path, listed_on: date | None, asset_code: str | None) -> _Snapshot:
    path = Path(path)
    asset = (asset_code or asset_of_file(path)).upper()
    addresses, own = _read_list_file(path)
    when = list_date(path, listed_on, own=own)
    entries = [file_address(asset, a) for a in addresses]
    warnings = tuple(f"{asset}: {e.as_listed}: {e.problem} (kept, flagged invalid)" for e in entries
                     if not e.is_valid)
    return _Snapshot(path, asset, when, entries, warnings)


def _refuse_emptying(store: ChainStore, snapshot: _Snapshot, list_name: str) -> None:
    """InputError when a list without one valid address would empty a list that holds some."""
    if any(e.is_valid for e in snapshot.entries):
        return
    row = store.con.execute(
        "SELECT count(DISTINCT (chain, address)), max(listed_on) FROM sanctions "
        "WHERE list_name = ? AND asset_code = ? AND is_valid IS NOT FALSE",
        [list_name, snapshot.asset]).fetchone()
    held, latest = row if row is not None else (0, None)
    if held:
        raise InputError(
            f"{snapshot.path}: holds no valid address ({len(snapshot.entries)} entries); importing it would "
            f"empty the {list_name} {snapshot.asset} list ({held} addresses, latest snapshot {latest}); "
            "nothing was imported; give --replace to import it anyway")


def import_lists(store: ChainStore, paths: Sequence[Path], *, list_name: str = DEFAULT_LIST_NAME,
                 listed_on: date | None = None, asset_code: str | None = None, source: str | None = None,
                 replace: bool = False) -> list[SanctionsImport]:
    """Import list files as snapshots (each replacing the same list, asset and date), all in one transaction.

    Every file is read and checked before anything is stored: a file that cannot be read, or one
    without a single valid address that would empty a list holding some (unless ``replace``), refuses
    the whole import and leaves the stored lists as they were.
    """
    snapshots_read = [_read_snapshot(p, listed_on, asset_code) for p in paths]
    if not replace:
        for snapshot in snapshots_read:
            _refuse_emptying(store, snapshot, list_name)
    now = datetime.now(UTC).replace(tzinfo=None)
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        for snapshot in snapshots_read:
            _store_snapshot(store, snapshot, list_name, source or str(snapshot.path.resolve()), now)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    results = []
    for snapshot in snapshots_read:
        entries = snapshot.entries
        for w in snapshot.warnings:
            log.info("%s: %s", snapshot.path, w)
        results.append(SanctionsImport(
            file=str(snapshot.path), list_name=list_name, asset_code=snapshot.asset,
            listed_on=snapshot.when.day, date_basis=snapshot.when.basis,
            addresses=len({(e.chain, e.address) for e in entries}),
            chains=dict(Counter(e.chain for e in entries)), warnings=snapshot.warnings))
    return results


def _store_snapshot(store: ChainStore, snapshot: _Snapshot, list_name: str, source: str,
                    now: datetime) -> None:
    """Replace the snapshot's (list, asset, date) rows; inside the caller's transaction."""
    entries = snapshot.entries
    table = pa.table({
        "chain": pa.array([e.chain for e in entries], pa.string()),
        "address": pa.array([e.address for e in entries], pa.string()),
        "address_as_listed": pa.array([e.as_listed for e in entries], pa.string()),
        "is_valid": pa.array([e.is_valid for e in entries], pa.bool_()),
        "problem": pa.array([e.problem for e in entries], pa.string()),
    })
    con = store.con
    con.execute("DELETE FROM sanctions WHERE list_name = ? AND asset_code = ? AND listed_on = ?",
                [list_name, snapshot.asset, snapshot.when.day])
    con.register("_stage_sanctions", table)
    try:
        con.execute(
            """INSERT INTO sanctions SELECT DISTINCT s.chain, s.address, $list, $asset, $source, $day,
                      $now, s.address_as_listed, s.is_valid, s.problem, $basis FROM _stage_sanctions s""",
            {"list": list_name, "asset": snapshot.asset, "source": source, "day": snapshot.when.day,
             "now": now, "basis": snapshot.when.basis})
    finally:
        con.unregister("_stage_sanctions")


def import_list(store: ChainStore, path: Path, *, list_name: str = DEFAULT_LIST_NAME,
                listed_on: date | None = None, asset_code: str | None = None,
                source: str | None = None, replace: bool = False) -> SanctionsImport:
    """Import one list file as a snapshot (replacing the same list, asset and date), in one transaction.

    A file without one valid address that would empty a list holding some is refused unless ``replace``.
    """
    return import_lists(store, [path], list_name=list_name, listed_on=listed_on, asset_code=asset_code,
                        source=source, replace=replace)[0]


def list_files(paths: Iterable[Path]) -> list[Path]:
    """List files among ``paths``; a folder gives its ``sanctioned_addresses_*`` files (``.txt`` first)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            out.append(p)
            continue
        found: dict[str, Path] = {}
        for q in sorted(p.iterdir()):
            match = _FILE_NAME.search(q.name)
            if match and (match.group(1).upper() not in found or q.suffix == ".txt"):
                found[match.group(1).upper()] = q
        out.extend(found[k] for k in sorted(found))
    return out


# ------------------------------------------------------------------------------------------------
# Screening


@dataclass(frozen=True, slots=True)
class SanctionHit:
    """An address found on a list: when it was first and last seen listed, and whether it still is."""

    chain: str
    address: str
    address_as_listed: str | None
    list_name: str
    asset_code: str
    source: str | None
    first_listed_on: date
    last_listed_on: date
    latest_snapshot: date
    is_listed: bool
    is_valid: bool
    problem: str | None
    same_chain: bool = True
    """False when the match is the same EVM address listed for another EVM chain."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping (dates as ISO text)."""
        out = asdict(self)
        for key in ("first_listed_on", "last_listed_on", "latest_snapshot"):
            out[key] = getattr(self, key).isoformat()
        return out


def _evm_chains(chain: str) -> list[str]:
    return sorted({chain, *(c for c in CHAINS if is_evm(c))})


def _key(chain: str, address: str) -> tuple[str, str]:
    """(chain, address) as stored for matching: canonical when valid, EVM in lower case."""
    address = address.strip()
    if chain == "trx":
        return chain, tron_address(address) or address
    if chain in CHAINS:
        try:
            return chain, canonical_address(chain, address)
        except InvalidAddressError:
            pass
    return chain, address.lower() if address.lower().startswith("0x") else address


_HITS_SQL = """
    WITH latest AS (SELECT list_name, asset_code, max(listed_on) AS latest FROM sanctions GROUP BY ALL),
         m AS (SELECT * FROM sanctions s WHERE {match})
    SELECT m.chain, m.address, any_value(m.address_as_listed), m.list_name, m.asset_code, any_value(m.source),
           min(m.listed_on), max(m.listed_on), any_value(l.latest), max(m.listed_on) = any_value(l.latest),
           bool_and(m.is_valid), any_value(m.problem)
    FROM m JOIN latest l USING (list_name, asset_code)
    GROUP BY m.chain, m.address, m.list_name, m.asset_code
    ORDER BY m.list_name, m.asset_code, m.chain"""


def _hit(row: tuple[Any, ...], chain: str) -> SanctionHit:
    return SanctionHit(chain=row[0], address=row[1], address_as_listed=row[2], list_name=row[3],
                       asset_code=row[4], source=row[5], first_listed_on=row[6], last_listed_on=row[7],
                       latest_snapshot=row[8], is_listed=bool(row[9]), is_valid=bool(row[10]),
                       problem=row[11], same_chain=row[0] == chain)


def check_address(store: ChainStore, chain: str, address: str, *,
                  on: date | None = None) -> list[SanctionHit]:
    """The lists an address is (or was) on. EVM addresses match case-insensitively, on any EVM chain.

    ``on`` restricts to snapshots dated on or before that day (was it listed at a transaction's date?).
    """
    chain, key = _key(chain, address)
    params: dict[str, Any] = {"chain": chain, "address": key}
    if is_evm(chain) or key.startswith("0x"):
        match = "lower(s.address) = lower($address) AND s.chain IN (SELECT unnest($evm))"
        params = {"address": key, "evm": _evm_chains(chain)}
    else:
        match = "s.chain = $chain AND s.address = $address"
    if on is not None:
        match += " AND s.listed_on <= $on"
        params["on"] = on
    rows = store.con.execute(_HITS_SQL.format(match=match), params).fetchall()
    hits = [_hit(r, chain) for r in rows]
    if on is not None:  # "listed" then means: in the latest snapshot dated on or before that day
        latest = dict(store.con.execute(
            "SELECT list_name || '/' || asset_code, max(listed_on) FROM sanctions WHERE listed_on <= ? "
            "GROUP BY 1", [on]).fetchall())
        hits = [replace(h, latest_snapshot=latest[f"{h.list_name}/{h.asset_code}"],
                        is_listed=h.last_listed_on == latest[f"{h.list_name}/{h.asset_code}"]) for h in hits]
    return hits


def sanctioned_among(store: ChainStore, chain: str, addresses: Iterable[str]) -> dict[str, list[SanctionHit]]:
    """The currently listed addresses among ``addresses`` (canonical text -> hits)."""
    keys = sorted({_key(chain, a)[1] for a in addresses})
    if not keys:
        return {}
    if is_evm(chain):
        match = "lower(s.address) IN (SELECT lower(unnest($addrs))) AND s.chain IN (SELECT unnest($evm))"
        params: dict[str, Any] = {"addrs": keys, "evm": _evm_chains(chain)}
    else:
        match = "s.chain = $chain AND s.address IN (SELECT unnest($addrs))"
        params = {"chain": chain, "addrs": keys}
    out: dict[str, list[SanctionHit]] = {}
    for row in store.con.execute(_HITS_SQL.format(match=match), params).fetchall():
        hit = _hit(row, chain)
        if hit.is_listed:
            out.setdefault(hit.address.lower() if is_evm(chain) else hit.address, []).append(hit)
    return out


def snapshots(store: ChainStore) -> list[dict[str, Any]]:
    """The imported snapshots: list, asset, date, date basis, addresses, invalid addresses."""
    rows = store.con.execute(
        """SELECT list_name, asset_code, listed_on, any_value(date_basis), count(*),
                  count(*) FILTER (WHERE NOT is_valid), any_value(source)
           FROM sanctions GROUP BY list_name, asset_code, listed_on ORDER BY 1, 2, 3""").fetchall()
    return [{"list_name": r[0], "asset_code": r[1], "listed_on": r[2].isoformat(), "date_basis": r[3],
             "addresses": r[4], "invalid": r[5], "source": r[6]} for r in rows]


# ------------------------------------------------------------------------------------------------
# Diff of two snapshots


@dataclass(frozen=True, slots=True)
class ListDiff:
    """What changed for one asset between two snapshots."""

    asset_code: str
    old_count: int
    new_count: int
    added: tuple[str, ...] = field(default_factory=tuple)
    removed: tuple[str, ...] = field(default_factory=tuple)
    recased: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """(old spelling, new spelling) of EVM addresses listed in both snapshots with other letter case."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping."""
        return {"asset_code": self.asset_code, "old_count": self.old_count, "new_count": self.new_count,
                "added": list(self.added), "removed": list(self.removed),
                "recased": [{"old": o, "new": n} for o, n in self.recased]}


def _by_asset(paths: Sequence[Path]) -> dict[str, dict[tuple[str, str], str]]:
    out: dict[str, dict[tuple[str, str], str]] = {}
    for path in list_files(paths):
        asset = asset_of_file(path)
        entries = out.setdefault(asset, {})
        for text in read_list(path):
            e = file_address(asset, text)
            entries[(e.chain, e.address.lower() if is_evm(e.chain) else e.address)] = e.as_listed
    return out


def diff_lists(old: Sequence[Path], new: Sequence[Path]) -> list[ListDiff]:
    """Added and removed addresses per asset between two snapshots (files or folders of list files).

    Addresses compare as the chain keeps them: EVM case-insensitively (a change of letter case only is
    reported as ``recased``), others by canonical form.
    Assets present in only one snapshot are left out.
    """
    before, after = _by_asset(old), _by_asset(new)
    out = []
    for asset in sorted(set(before) & set(after)):
        b, a = before[asset], after[asset]
        recased = tuple(sorted((b[k], a[k]) for k in a.keys() & b.keys() if a[k] != b[k]))
        out.append(ListDiff(asset, len(b), len(a), added=tuple(sorted(a[k] for k in a.keys() - b.keys())),
                            removed=tuple(sorted(b[k] for k in b.keys() - a.keys())), recased=recased))
    return out
