"""Look-ups on the chain store: an address's activity and a transaction's detail."""

from __future__ import annotations

from typing import Any

from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.chains import get_chain
from fundtrail.errors import NotFoundError
from fundtrail.store.chainstore import ChainStore


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def address_activity(store: ChainStore, chain: str, address: str) -> dict[str, Any]:
    """Balance, received, sent, first/last seen and transaction count of an address, per asset.

    Values are strings of base units. An address never seen on the chain has zero activity.
    """
    params = get_chain(chain)
    address = canonical_address(chain, address)
    if params.is_utxo:
        row = store.con.execute(
            """WITH rx AS (SELECT txid, height, value FROM outputs WHERE chain = $c AND address = $a),
                    tx AS (SELECT txid, height, value FROM inputs WHERE chain = $c AND address = $a),
                    ids AS (SELECT txid, height FROM rx UNION SELECT txid, height FROM tx)
               SELECT (SELECT coalesce(sum(value), 0) FROM rx), (SELECT coalesce(sum(value), 0) FROM tx),
                      (SELECT count(*) FROM ids),
                      (SELECT min(t.time) FROM ids JOIN txs t ON t.chain = $c AND t.txid = ids.txid
                              AND t.height = ids.height),
                      (SELECT max(t.time) FROM ids JOIN txs t ON t.chain = $c AND t.txid = ids.txid
                              AND t.height = ids.height),
                      (SELECT count(*) FROM rx), (SELECT count(*) FROM tx)""",
            {"c": chain, "a": address}).fetchone()
        assert row is not None
        received, sent = _int(row[0]), _int(row[1])
        assets = [{"asset": "native", "received": str(received), "sent": str(sent),
                   "balance": str(received - sent)}]
        return {"chain": chain, "address": address, "balance": str(received - sent),
                "received": str(received), "sent": str(sent), "tx_count": int(row[2]),
                "first_seen": row[3], "last_seen": row[4], "outputs_received": int(row[5]),
                "outputs_spent": int(row[6]), "assets": assets}
    rows = store.con.execute(
        """SELECT asset,
                  coalesce(sum(value) FILTER (WHERE to_address = $a), 0) AS received,
                  coalesce(sum(value) FILTER (WHERE from_address = $a), 0) AS sent
           FROM transfers WHERE chain = $c AND (from_address = $a OR to_address = $a)
             AND (to_address IS DISTINCT FROM from_address)
           GROUP BY asset ORDER BY asset = 'native' DESC, asset""",
        {"c": chain, "a": address}).fetchall()
    meta = store.con.execute(
        """SELECT count(DISTINCT txid), min(time), max(time) FROM transfers
           WHERE chain = $c AND (from_address = $a OR to_address = $a)""",
        {"c": chain, "a": address}).fetchone()
    assert meta is not None
    assets = [{"asset": a, "received": str(_int(r)), "sent": str(_int(s)), "balance": str(_int(r) - _int(s))}
              for a, r, s in rows]
    native = next((x for x in assets if x["asset"] == "native"),
                  {"asset": "native", "received": "0", "sent": "0", "balance": "0"})
    return {"chain": chain, "address": address, "balance": native["balance"], "received": native["received"],
            "sent": native["sent"], "tx_count": int(meta[0]), "first_seen": meta[1], "last_seen": meta[2],
            "assets": assets}


def transaction_detail(store: ChainStore, chain: str, txid: str) -> dict[str, Any]:
    """A transaction with its block, inputs and outputs (UTXO) or transfers (account chains)."""
    params = get_chain(chain)
    txid = txid.strip().lower()
    if not params.is_utxo and not txid.startswith("0x"):
        txid = "0x" + txid
    row = store.con.execute(
        """SELECT t.txid, t.height, b.hash, t.time, t.tx_index, t.fee, t.coinbase, t.size, t.vsize,
                  t.version, t.locktime, t.segwit, t.status
           FROM txs t LEFT JOIN blocks b ON b.chain = t.chain AND b.height = t.height
           WHERE t.chain = ? AND t.txid = ? ORDER BY t.height DESC LIMIT 1""", [chain, txid]).fetchone()
    if row is None:
        raise NotFoundError(f"{chain} transaction", txid)
    keys = ("txid", "height", "block_hash", "time", "tx_index", "fee", "coinbase", "size", "vsize",
            "version", "locktime", "segwit", "status")
    doc: dict[str, Any] = {"chain": chain, **dict(zip(keys, row, strict=True))}
    doc["fee"] = None if row[5] is None else str(int(row[5]))
    height = row[1]
    if params.is_utxo:
        doc["inputs"] = [
            {"n": n, "prev_txid": p, "prev_n": pn, "address": a, "value": None if v is None else str(int(v))}
            for n, p, pn, a, v in store.con.execute(
                "SELECT n, prev_txid, prev_n, address, value FROM inputs WHERE chain = ? AND txid = ? "
                "AND height = ? ORDER BY n", [chain, txid, height]).fetchall()]
        doc["outputs"] = [
            {"n": n, "address": a, "value": str(int(v)), "script_type": s}
            for n, a, v, s in store.con.execute(
                "SELECT n, address, value, script_type FROM outputs WHERE chain = ? AND txid = ? "
                "AND height = ? ORDER BY n", [chain, txid, height]).fetchall()]
        doc["total_output"] = str(sum(int(o["value"]) for o in doc["outputs"]))
    else:
        doc["transfers"] = [
            {"index": i, "kind": k, "asset": a, "from": f, "to": t,
             "value": vt if v is None else str(int(v))}
            for i, k, a, f, t, v, vt in store.con.execute(
                """SELECT transfer_index, kind, asset, from_address, to_address, value, value_text
                   FROM transfers WHERE chain = ? AND txid = ? ORDER BY kind, transfer_index""",
                [chain, txid]).fetchall()]
    return doc
