"""The SQL that tracing and path search share: id lists as relations, address texts, transfers, degrees."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fundtrail.analysis.graph import COINJOIN_PATTERNS, catalog, has_patterns
from fundtrail.errors import NotFoundError
from fundtrail.store.chainstore import ChainStore


def with_ids(store: ChainStore, ids: Iterable[int], sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` with ``{ids}`` naming a one-column (id) relation of the given ids (a list parameter)."""
    wanted = sorted({int(i) for i in ids if i is not None and int(i) >= 0})
    if not wanted:
        return []
    return store.con.execute("WITH _ft_ids AS (SELECT unnest(?::BIGINT[]) AS id) "
                             + sql.replace("{ids}", "_ft_ids"), [wanted, *params]).fetchall()


def with_txids(store: ChainStore, txids: Iterable[str], sql: str,
               params: list[Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` with ``{txids}`` naming a one-column (txid) relation of the given txids."""
    wanted = sorted(set(txids))
    if not wanted:
        return []
    return store.con.execute("WITH _ft_txids AS (SELECT unnest(?::VARCHAR[]) AS txid) "
                             + sql.replace("{txids}", "_ft_txids"), [wanted, *params]).fetchall()


def address_texts(store: ChainStore, chain: str, ids: Iterable[int]) -> dict[int, str]:
    """Address strings of interned ids."""
    rows = with_ids(store, ids, "SELECT a.id, a.address FROM addresses a JOIN {ids} i ON a.id = i.id "
                                "WHERE a.chain = ?", [chain])
    return {int(i): a for i, a in rows}


def address_id(store: ChainStore, chain: str, address: str) -> int:
    """The interned id of an address; raises NotFoundError when the store has never seen it."""
    aid = store.address_id(chain, address)
    if aid is None:
        raise NotFoundError(f"{chain} address", address)
    return int(aid)


def tx_exists(store: ChainStore, chain: str, txid: str) -> bool:
    """Whether the store holds a transaction."""
    return bool(store.con.execute("SELECT 1 FROM txs WHERE chain = ? AND txid = ? LIMIT 1",
                                  [chain, txid]).fetchall())


def address_degrees(store: ChainStore, chain: str, ids: Iterable[int]) -> dict[int, int]:
    """Account chains: transfers each address takes part in, sent or received (absent ids: none)."""
    rows = with_ids(store, ids, """
        SELECT id, sum(c) FROM (
          SELECT t.from_id AS id, count(*) AS c FROM transfers t JOIN {ids} i ON t.from_id = i.id
          WHERE t.chain = ? GROUP BY 1
          UNION ALL
          SELECT t.to_id AS id, count(*) AS c FROM transfers t JOIN {ids} i ON t.to_id = i.id
          WHERE t.chain = ? GROUP BY 1) GROUP BY id""", [chain, chain])
    return {int(a): int(c) for a, c in rows}


def coinjoin_txids(store: ChainStore, chain: str, txids: Sequence[str]) -> set[str]:
    """Which of ``txids`` are CoinJoin transactions (``tx_patterns``)."""
    if not txids or not has_patterns(catalog(store, ("tx_patterns",))):
        return set()
    marks = ", ".join(f"'{p}'" for p in COINJOIN_PATTERNS)
    rows = with_txids(store, txids, "SELECT DISTINCT p.txid FROM tx_patterns p JOIN {txids} t "
                                    "ON t.txid = p.txid WHERE p.chain = ? "
                                    f"AND lower(p.pattern) IN ({marks})", [chain])
    return {r[0] for r in rows}


# ------------------------------------------------------------------------------------ transfers


KIND_RANK = {"fee": 0, "native": 1, "internal": 2, "token": 3}
"""Order of transfer kinds inside one transaction: the fee first."""
LAST_POS = 2**31 - 1

STATUS_OK = "(t.kind = 'fee' OR x.status IS DISTINCT FROM false)"
"""Transfers that happened: fees always, the rest unless their transaction failed."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """One transfer row with its place in time order (``src``/``dst`` -1 where there is none)."""

    row: int
    txid: str | None
    height: int
    time: int
    pos: int
    kind: str
    index: int
    asset: str
    src: int
    dst: int
    value: int

    @property
    def key(self) -> tuple[int, int, int, int, int, int, int, int]:
        """Time order: block, position in block, kind (fee first), index, then ids for ties."""
        return (self.height, self.pos, KIND_RANK.get(self.kind, 4), self.index, self.src, self.dst,
                self.value, self.row)


TRANSFER_COLUMNS = """t.rowid, t.txid, t.height, t.time, coalesce(x.tx_index, 2147483647), t.kind,
    t.transfer_index, t.asset, coalesce(t.from_id, -1), coalesce(t.to_id, -1), t.value"""


def transfers(store: ChainStore, chain: str, where: str, params: list[Any], join: str = "",
              prefix: str = "", prefix_params: Sequence[Any] = ()) -> list[Transfer]:
    """The transfers of ``chain`` that happened and match ``where`` (``t``: transfers, ``x``: txs)."""
    rows = store.con.execute(
        f"""{prefix} SELECT {TRANSFER_COLUMNS} FROM transfers t {join}
            LEFT JOIN txs x ON x.chain = t.chain AND x.txid = t.txid AND x.height = t.height
            WHERE t.chain = ? AND t.value IS NOT NULL AND {STATUS_OK} AND {where}""",
        [*prefix_params, chain, *params]).fetchall()
    return [Transfer(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), r[5], int(r[6]), r[7], int(r[8]),
                     int(r[9]), int(r[10])) for r in rows]
