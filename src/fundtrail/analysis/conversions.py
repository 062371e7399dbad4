"""Conversion detection over the chain store: swaps, bridges and pools, stored as derived data.

:func:`detect_conversions` reads the ``logs``, ``payloads`` and ``transfers`` of every chain in the store,
applies the rules below and replaces the ``conversions`` table (derived data: recomputed, never edited).
Each rule names itself in ``rule``; its confidence is fixed per rule (:class:`ConversionParams`).

Swaps (per transaction, :func:`swaps_in_transaction`):

* ``uniswap-v2-swap`` / ``uniswap-v3-swap``: a pair's ``Swap`` event. The two tokens are read from the
  transaction's ``Transfer`` logs: the token the pair received in the amount the event says came in, the
  token it sent in the amount that went out. A ``Swap`` whose amounts no Transfer log shows is a
  look-alike and is skipped.
* ``weth-wrap`` / ``weth-unwrap``: ``Deposit``/``Withdrawal`` of a wrapped-native contract, accepted when the
  native value moved to (from) the contract in the transaction, or the contract's own token moved in it.
* ``tx-net-flow``: a transaction without swap events in which the sender sent one asset and got another
  back (aggregators, unknown DEXes).

Bridges:

* ``cbridge-transfer-id``: Celer cBridge ``Send`` on one chain and ``Relay`` on another with
  ``srcTransferId`` = ``transferId``; both must be backed by the value moving into (out of) the contract.
* ``thorchain-memo``: an inbound ``=:CHAIN.ASSET:DEST`` memo (OP_RETURN or call data) answered by an
  ``OUT:<inbound txid>`` payment to DEST.
* ``lock-mint``: value sent to an address tagged as a bridge, and on another chain the same recipient
  paid by a bridge (or minted) an amount within the fee tolerance, inside the time window; the confidence
  is divided among the candidates.

Pools (fixed-denomination, Tornado-style ``Deposit``/``Withdrawal``): a withdrawal is linked to a deposit
only by the published heuristics (Tutela; Wang et al. 2023), each a rule: ``pool-same-address``,
``pool-linked-addresses``, ``pool-unique-gas-price``, ``pool-multi-denomination``, ``pool-timing``. Every
pool link carries the anonymity set (deposits not yet withdrawn when the withdrawal happened). What no
heuristic links produces no conversion: the value stays at the pool. docs/conversions.md says what each
rule can and cannot support in court.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from fundtrail.chains.evm.events import DecodedEvent, EventName, decode_event
from fundtrail.domain.chains import NATIVE_ASSET, get_chain
from fundtrail.domain.conversions import (
    Conversion,
    ConversionKind,
    Leg,
    MemoAction,
    Skip,
    normalise_txid,
    parse_memo,
)
from fundtrail.domain.records import PayloadKind
from fundtrail.errors import InputError
from fundtrail.store import schema
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

CONVERSIONS_COLUMNS = (
    "kind VARCHAR NOT NULL, rule VARCHAR NOT NULL, confidence DOUBLE NOT NULL, candidates INTEGER NOT NULL, "
    "anonymity_set INTEGER, "
    "in_chain VARCHAR NOT NULL, in_txid VARCHAR NOT NULL, in_address VARCHAR NOT NULL, "
    "in_asset VARCHAR NOT NULL, "
    f"in_value {schema.AMOUNT} NOT NULL, in_time BIGINT, "
    "out_chain VARCHAR NOT NULL, out_txid VARCHAR NOT NULL, out_address VARCHAR NOT NULL, "
    f"out_asset VARCHAR NOT NULL, out_value {schema.AMOUNT} NOT NULL, out_time BIGINT, evidence JSON"
)
schema.register_table("conversions", CONVERSIONS_COLUMNS)

ZERO_ADDRESS = "0x" + "0" * 40
BRIDGE_CATEGORIES = ("bridge", "defi_bridge")
MAX_SKIPS_LISTED = 200


@dataclass(frozen=True, slots=True)
class ConversionParams:
    """The confidences of the rules and the windows of the matchers, as one value."""

    swap_event: float = 0.99
    swap_tolerance: float = 0.2
    weth: float = 0.99
    tx_net_flow: float = 0.8
    cbridge: float = 0.99
    memo: float = 0.99
    lock_mint: float = 0.6
    lock_mint_window: int = 6 * 3600
    lock_mint_max_fee: float = 0.05
    pool_same_address: float = 0.95
    pool_linked_addresses: float = 0.7
    pool_unique_gas_price: float = 0.6
    pool_multi_denomination: float = 0.5
    pool_timing: float = 0.5
    pool_timing_window: int = 3600
    pool_small_set: int = 3
    multi_denomination_window: int = 24 * 3600


@dataclass(slots=True)
class DetectionReport:
    """What one detection run found and refused."""

    conversions: Counter[str] = field(default_factory=Counter)  # by rule
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    skips: list[Skip] = field(default_factory=list)

    def skip(self, reason: str, chain: str, txid: str, detail: str) -> None:
        """Count a refused input and log a warning naming its transaction."""
        self.skipped[reason] += 1
        log.warning("conversions: %s skipped in %s %s: %s", reason, chain, txid, detail)
        if len(self.skips) < MAX_SKIPS_LISTED:
            self.skips.append(Skip(reason, chain, txid, detail))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "conversions": dict(sorted(self.conversions.items())),
            "total": sum(self.conversions.values()),
            "skipped": dict(sorted(self.skipped.items())),
            "skips": [s.to_dict() for s in self.skips],
        }


# --------------------------------------------------------------------------- transaction view


@dataclass(frozen=True, slots=True)
class Move:
    """A value move inside one transaction (native, internal or token transfer)."""

    kind: str
    asset: str
    from_: str | None
    to: str | None
    value: int
    index: int


@dataclass(slots=True)
class TxActivity:
    """What one EVM transaction did: its sender, moves, decoded events, time and gas price."""

    chain: str
    txid: str
    time: int = 0
    sender: str | None = None
    target: str | None = None
    moves: list[Move] = field(default_factory=list)
    events: list[tuple[int, DecodedEvent]] = field(default_factory=list)
    gas_price: int | None = None

    def received(self, address: str, asset: str | None = None) -> list[Move]:
        """Moves into ``address`` (of ``asset``; native and internal count as ``native``)."""
        return [m for m in self.moves if m.to == address and (asset is None or m.asset == asset)]

    def sent(self, address: str, asset: str | None = None) -> list[Move]:
        """Moves out of ``address``."""
        return [m for m in self.moves if m.from_ == address and (asset is None or m.asset == asset)]


def _find_token(moves: Iterable[Move], amount: int, inbound: bool, tolerance: float) -> str | None:
    """The asset of the move that carried ``amount`` among ``moves`` (None when none or ambiguous).

    An exact value first; else one within ``tolerance``: a payer may send a pool more than the event
    books (inbound), and a fee-on-transfer token delivers less than the pool paid out (outbound).
    """
    moves = list(moves)
    exact = {m.asset for m in moves if m.value == amount}
    if exact:
        return exact.pop() if len(exact) == 1 else None
    if inbound:
        near = {m.asset for m in moves if amount <= m.value <= amount * (1 + tolerance)}
    else:
        near = {m.asset for m in moves if amount * (1 - tolerance) <= m.value <= amount}
    return near.pop() if len(near) == 1 else None


def swaps_in_transaction(
    tx: TxActivity, params: ConversionParams, report: DetectionReport
) -> list[Conversion]:
    """The swaps of one transaction: Swap events (tokens from its Transfer logs) and wraps/unwraps."""
    out: list[Conversion] = []
    for log_index, ev in tx.events:
        if ev.name in (EventName.UNISWAP_V2_SWAP, EventName.UNISWAP_V3_SWAP):
            pair = ev.address
            if ev.name is EventName.UNISWAP_V2_SWAP:
                amounts_in = [a for a in (ev.int_("amount0_in"), ev.int_("amount1_in")) if a > 0]
                amounts_out = [a for a in (ev.int_("amount0_out"), ev.int_("amount1_out")) if a > 0]
                recipient = ev.str_("to")
            else:
                a0, a1 = ev.int_("amount0"), ev.int_("amount1")
                amounts_in = [a for a in (a0, a1) if a > 0]
                amounts_out = [-a for a in (a0, a1) if a < 0]
                recipient = ev.str_("recipient")
            if len(amounts_in) != 1 or len(amounts_out) != 1:
                report.skip(
                    "malformed-swap",
                    tx.chain,
                    tx.txid,
                    f"log {log_index}: {ev.name.value} without one amount in and one out",
                )
                continue
            token_in = _find_token(tx.received(pair), amounts_in[0], True, params.swap_tolerance)
            token_out = _find_token(tx.sent(pair), amounts_out[0], False, params.swap_tolerance)
            if token_in is None or token_out is None or token_in == token_out:
                report.skip(
                    "lookalike-swap",
                    tx.chain,
                    tx.txid,
                    f"log {log_index}: {ev.name.value} of {pair} not backed by its Transfer logs",
                )
                continue
            out.append(
                Conversion(
                    ConversionKind.SWAP,
                    ev.name.value,
                    params.swap_event,
                    1,
                    Leg(tx.chain, tx.txid, pair, token_in, amounts_in[0], tx.time),
                    Leg(tx.chain, tx.txid, recipient, token_out, amounts_out[0], tx.time),
                    evidence={"log_index": log_index},
                )
            )
        elif ev.name in (EventName.WETH_DEPOSIT, EventName.WETH_WITHDRAWAL):
            weth, account, wad = ev.address, ev.str_("account"), ev.int_("wad")
            wrap = ev.name is EventName.WETH_DEPOSIT
            native_moved = (
                any(m.value == wad for m in tx.received(weth, NATIVE_ASSET))
                if wrap
                else any(m.value == wad for m in tx.sent(weth, NATIVE_ASSET))
            )
            is_token = any(m.asset == weth for m in tx.moves)
            if not (native_moved or is_token):
                report.skip(
                    "lookalike-weth",
                    tx.chain,
                    tx.txid,
                    f"log {log_index}: {ev.name.value} of {weth} without the value moving",
                )
                continue
            a, b = (NATIVE_ASSET, weth) if wrap else (weth, NATIVE_ASSET)
            out.append(
                Conversion(
                    ConversionKind.SWAP,
                    "weth-wrap" if wrap else "weth-unwrap",
                    params.weth,
                    1,
                    Leg(tx.chain, tx.txid, weth, a, wad, tx.time),
                    Leg(tx.chain, tx.txid, account, b, wad, tx.time),
                    evidence={"log_index": log_index},
                )
            )
    return out


def net_flow_swap(tx: TxActivity, params: ConversionParams) -> Conversion | None:
    """``tx-net-flow``: the sender sent exactly one asset and got exactly one other asset back."""
    if tx.sender is None:
        return None
    net: dict[str, int] = defaultdict(int)
    for m in tx.moves:
        if m.from_ == m.to:
            continue
        if m.from_ == tx.sender:
            net[m.asset] -= m.value
        if m.to == tx.sender:
            net[m.asset] += m.value
    gave = [(a, -v) for a, v in net.items() if v < 0]
    got = [(a, v) for a, v in net.items() if v > 0]
    if len(gave) != 1 or len(got) != 1:
        return None
    (asset_in, value_in), (asset_out, value_out) = gave[0], got[0]
    counterparties = {m.to for m in tx.moves if m.from_ == tx.sender and m.asset == asset_in and m.to}
    into = tx.target if tx.target in counterparties else min(counterparties, default=tx.target)
    if into is None:
        return None
    return Conversion(
        ConversionKind.SWAP,
        "tx-net-flow",
        params.tx_net_flow,
        1,
        Leg(tx.chain, tx.txid, into, asset_in, value_in, tx.time),
        Leg(tx.chain, tx.txid, tx.sender, asset_out, value_out, tx.time),
    )


# --------------------------------------------------------------------------- loading


def _has_table(store: ChainStore, name: str) -> bool:
    rows = store.con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchall()
    return bool(rows[0][0])


def ensure_table(store: ChainStore) -> None:
    """Create ``conversions`` if the store was opened before this module was imported."""
    store.con.execute(f"CREATE TABLE IF NOT EXISTS conversions ({CONVERSIONS_COLUMNS})")


def _evm_chains(store: ChainStore) -> list[str]:
    return [c for c in store.chains() if not get_chain(c).is_utxo]


def load_activity(
    store: ChainStore, chain: str, report: DetectionReport, txids: Sequence[str] | None = None
) -> dict[str, TxActivity]:
    """Transactions of ``chain`` that emitted kept logs (or ``txids``), with moves, events and gas price."""
    if txids is None:
        where = "SELECT DISTINCT txid FROM logs WHERE chain = $c"
        params: dict[str, Any] = {"c": chain}
    else:
        store.con.register("_conv_txids", pa.table({"txid": pa.array(list(txids), pa.string())}))
        where = "SELECT txid FROM _conv_txids"
        params = {"c": chain}
    try:
        acts: dict[str, TxActivity] = {}
        for txid, time in store.con.execute(
            f"SELECT txid, time FROM txs WHERE chain = $c AND txid IN ({where})", params
        ).fetchall():
            acts[txid] = TxActivity(chain, txid, int(time))
        rows = store.con.execute(
            f"""SELECT txid, kind, asset, from_address, to_address, value, transfer_index FROM transfers
                WHERE chain = $c AND kind IN ('native', 'internal', 'token') AND value IS NOT NULL
                  AND txid IN ({where}) ORDER BY txid, kind, transfer_index""",
            params,
        ).fetchall()
        for txid, kind, asset, f, t, value, index in rows:
            act = acts.get(txid)
            if act is None:
                continue
            if kind == "native":
                act.sender, act.target = f, t
            if int(value) > 0:
                act.moves.append(Move(kind, asset, f, t, int(value), int(index)))
        for txid, data in store.con.execute(
            f"SELECT txid, data FROM payloads WHERE chain = $c AND kind = '{PayloadKind.GAS_PRICE.value}' "
            f"AND txid IN ({where})",
            params,
        ).fetchall():
            if txid in acts:
                acts[txid].gas_price = int(data)
        for txid, index, address, topics, data in store.con.execute(
            f"SELECT txid, log_index, address, topics, data FROM logs WHERE chain = $c AND txid IN ({where}) "
            "ORDER BY txid, log_index",
            params,
        ).fetchall():
            act = acts.get(txid)
            if act is None:
                continue
            try:
                ev = decode_event(address, topics, data)
            except InputError as error:
                report.skip("malformed-log", chain, txid, f"log {index}: {error}")
                continue
            if ev is not None:
                act.events.append((int(index), ev))
    finally:
        if txids is not None:
            store.con.unregister("_conv_txids")
    return acts


# --------------------------------------------------------------------------- bridges


def _bridge_value(
    tx: TxActivity, contract: str, token: str, amount: int, inbound: bool, party: str | None = None
) -> str | None:
    """The asset (``token`` or native) in which ``amount`` moved into (out of) ``contract``, if it did."""
    moves = tx.received(contract) if inbound else tx.sent(contract)
    if party is not None and not inbound:
        moves = [m for m in moves if m.to == party]
    for m in moves:
        if m.asset == token and m.value == amount:
            return token
    for m in moves:
        if m.asset == NATIVE_ASSET and m.value == amount:
            return NATIVE_ASSET
    if not inbound and party is not None:  # the payment may be made by another contract of the bridge
        for m in tx.received(party):
            if m.asset in (token, NATIVE_ASSET) and m.value == amount:
                return m.asset
    return None


def _tagged(store: ChainStore, categories: Sequence[str]) -> set[tuple[str, str]]:
    if not _has_table(store, "tags"):
        return set()
    marks = ", ".join("?" for _ in categories)
    return {
        (c, a)
        for c, a in store.query(
            f"SELECT DISTINCT chain, address FROM tags WHERE category IN ({marks})", list(categories)
        )
    }


def cbridge_conversions(
    acts: dict[str, dict[str, TxActivity]],
    tagged: set[tuple[str, str]],
    params: ConversionParams,
    report: DetectionReport,
) -> list[Conversion]:
    """Match cBridge ``Relay`` events to their ``Send`` by transfer id, across chains."""
    sends: dict[str, tuple[TxActivity, DecodedEvent, str]] = {}
    relays: list[tuple[TxActivity, int, DecodedEvent]] = []
    for chain_acts in acts.values():
        for tx in chain_acts.values():
            for index, ev in tx.events:
                if ev.name is EventName.CBRIDGE_SEND:
                    asset = _bridge_value(tx, ev.address, ev.str_("token"), ev.int_("amount"), True)
                    if asset is None and (tx.chain, ev.address) not in tagged:
                        report.skip(
                            "lookalike-bridge",
                            tx.chain,
                            tx.txid,
                            f"log {index}: Send of {ev.address} without the value moving into it",
                        )
                        continue
                    sends[ev.str_("transfer_id")] = (tx, ev, asset or ev.str_("token"))
                elif ev.name is EventName.CBRIDGE_RELAY:
                    relays.append((tx, index, ev))
    out: list[Conversion] = []
    for tx, index, ev in relays:
        src = sends.get(ev.str_("src_transfer_id"))
        if src is None:
            report.skip(
                "relay-without-send",
                tx.chain,
                tx.txid,
                f"log {index}: Relay of transfer {ev.str_('src_transfer_id')} has no Send in the store",
            )
            continue
        asset = _bridge_value(tx, ev.address, ev.str_("token"), ev.int_("amount"), False, ev.str_("receiver"))
        if asset is None and (tx.chain, ev.address) not in tagged:
            report.skip(
                "lookalike-bridge",
                tx.chain,
                tx.txid,
                f"log {index}: Relay of {ev.address} without the value reaching the receiver",
            )
            continue
        stx, sev, sasset = src
        out.append(
            Conversion(
                ConversionKind.BRIDGE,
                "cbridge-transfer-id",
                params.cbridge,
                1,
                Leg(stx.chain, stx.txid, sev.address, sasset, sev.int_("amount"), stx.time),
                Leg(
                    tx.chain,
                    tx.txid,
                    ev.str_("receiver"),
                    asset or ev.str_("token"),
                    ev.int_("amount"),
                    tx.time,
                ),
                evidence={"transfer_id": sev.str_("transfer_id"), "dst_chain_id": sev.int_("dst_chain_id")},
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class _Payment:
    chain: str
    txid: str
    time: int
    to: str
    asset: str
    value: int


def _memo_payments(store: ChainStore, chain: str, txid: str) -> tuple[int, list[_Payment], set[str]]:
    """(time, payments, paying addresses) of a transaction, for memo matching."""
    row = store.query("SELECT time FROM txs WHERE chain = ? AND txid = ?", [chain, txid])
    time = int(row[0][0]) if row else 0
    if get_chain(chain).is_utxo:
        pays = [
            _Payment(chain, txid, time, a, NATIVE_ASSET, int(v))
            for a, v in store.query(
                "SELECT address, value FROM outputs WHERE chain = ? AND txid = ? AND address IS NOT NULL "
                "ORDER BY n",
                [chain, txid],
            )
        ]
        payers = {
            a
            for (a,) in store.query(
                "SELECT DISTINCT address FROM inputs WHERE chain = ? AND txid = ? AND address IS NOT NULL",
                [chain, txid],
            )
        }
        return time, [p for p in pays if p.to not in payers], payers
    rows = store.query(
        "SELECT kind, asset, from_address, to_address, value FROM transfers WHERE chain = ? "
        "AND txid = ? AND kind IN ('native', 'internal', 'token') AND value > 0 "
        "ORDER BY transfer_index",
        [chain, txid],
    )
    sender = next((f for k, _, f, _, _ in rows if k == "native"), None)
    pays = [_Payment(chain, txid, time, t, a, int(v)) for _, a, _, t, v in rows if t is not None]
    return time, pays, {sender} if sender else set()


def memo_conversions(
    store: ChainStore, params: ConversionParams, report: DetectionReport
) -> list[Conversion]:
    """THORChain-style memos: inbound ``=:CHAIN.ASSET:DEST`` answered by ``OUT:<inbound txid>``."""
    inbound: dict[str, tuple[str, str, Any]] = {}
    outs: list[tuple[str, str, str]] = []
    for chain, txid, kind, data in store.query(
        "SELECT chain, txid, kind, data FROM payloads WHERE kind IN (?, ?) ORDER BY chain, height, txid, n",
        [PayloadKind.OP_RETURN.value, PayloadKind.MEMO.value],
    ):
        text = data if kind == PayloadKind.MEMO.value else _hex_text(data)
        if text is None or ":" not in text:
            continue
        head = text.split(":", 1)[0].strip().upper()
        if head not in ("=", "S", "SWAP", "OUT"):
            continue
        try:
            memo = parse_memo(text)
        except InputError as error:
            report.skip("bad-memo", chain, txid, str(error))
            continue
        if memo.action is MemoAction.OUT:
            assert memo.inbound is not None
            outs.append((chain, txid, memo.inbound))
        else:
            inbound[normalise_txid(txid)] = (chain, txid, memo)
    result: list[Conversion] = []
    for chain, txid, ref in outs:
        found = inbound.get(ref)
        if found is None:
            report.skip("out-without-inbound", chain, txid, f"OUT memo answers {ref}, not in the store")
            continue
        in_chain, in_txid, memo = found
        if memo.chain != chain:
            report.skip(
                "memo-chain-mismatch", chain, txid, f"OUT on {chain} answers a memo asking for {memo.chain}"
            )
            continue
        in_time, in_pays, _ = _memo_payments(store, in_chain, in_txid)
        out_time, out_pays, _ = _memo_payments(store, chain, txid)
        paid = [p for p in out_pays if p.to == memo.address and p.asset == memo.asset]
        if not in_pays or not paid:
            report.skip("memo-unpaid", chain, txid, f"OUT does not pay {memo.address} the memo's asset")
            continue
        vault = max(in_pays, key=lambda p: p.value)
        result.append(
            Conversion(
                ConversionKind.BRIDGE,
                "thorchain-memo",
                params.memo,
                1,
                Leg(in_chain, in_txid, vault.to, vault.asset, vault.value, in_time),
                Leg(
                    chain,
                    txid,
                    memo.address or "",
                    memo.asset or NATIVE_ASSET,
                    sum(p.value for p in paid),
                    out_time,
                ),
                evidence={"memo_asset": memo.asset},
            )
        )
    return result


def _hex_text(data: str) -> str | None:
    try:
        raw = bytes.fromhex(data)
    except ValueError:
        return None
    if not raw or any(b < 0x20 or b > 0x7E for b in raw):
        return None
    return raw.decode("ascii")


def lock_mint_conversions(
    store: ChainStore, tagged: set[tuple[str, str]], matched: set[tuple[str, str]], params: ConversionParams
) -> list[Conversion]:
    """Generic bridges: a lock into a tagged bridge matched to a release (or mint) to the same recipient on
    another chain, within the fee tolerance and the time window; confidence divided among candidates."""
    bridges = {(c, a) for c, a in tagged if not get_chain(c).is_utxo}
    if not bridges:
        return []
    store.con.register(
        "_conv_bridges", pa.table({"chain": [c for c, _ in bridges], "address": [a for _, a in bridges]})
    )
    try:
        locks = store.query(
            """SELECT t.chain, t.txid, t.time, t.from_address, t.to_address, t.asset, t.value FROM transfers t
               JOIN _conv_bridges b ON b.chain = t.chain AND b.address = t.to_address
               WHERE t.kind IN ('native', 'internal', 'token') AND t.value > 0
               ORDER BY t.chain, t.time, t.txid"""
        )
        releases = store.query(
            """SELECT t.chain, t.txid, t.time, t.to_address, t.asset, t.value, t.from_address FROM transfers t
               WHERE t.kind IN ('native', 'internal', 'token') AND t.value > 0 AND t.to_address IS NOT NULL
                 AND (t.from_address = ? OR EXISTS (SELECT 1 FROM _conv_bridges b WHERE b.chain = t.chain
                                                    AND b.address = t.from_address))""",
            [ZERO_ADDRESS],
        )
    finally:
        store.con.unregister("_conv_bridges")
    by_recipient: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for r in releases:
        by_recipient[r[3]].append(r)
    out: list[Conversion] = []
    for chain, txid, time, sender, bridge, asset, value in locks:
        if (chain, txid) in matched or sender is None:
            continue
        low = int(value) * (1 - params.lock_mint_max_fee)
        cands = [
            r
            for r in by_recipient.get(sender, ())
            if r[0] != chain
            and time <= r[2] <= time + params.lock_mint_window
            and low <= int(r[5]) <= int(value)
        ]
        if not cands:
            continue
        best = min(cands, key=lambda r: (r[2], r[1]))
        out.append(
            Conversion(
                ConversionKind.BRIDGE,
                "lock-mint",
                round(params.lock_mint / len(cands), 4),
                len(cands),
                Leg(chain, txid, bridge, asset, int(value), int(time)),
                Leg(best[0], best[1], best[3], best[4], int(best[5]), int(best[2])),
            )
        )
    return out


# --------------------------------------------------------------------------- pools


@dataclass(frozen=True, slots=True)
class _Deposit:
    pool: str
    txid: str
    time: int
    depositor: str | None
    gas_price: int | None
    value: int
    asset: str


@dataclass(frozen=True, slots=True)
class _Withdrawal:
    pool: str
    txid: str
    time: int
    to: str
    relayer: str
    fee: int
    sender: str | None
    gas_price: int | None


def pool_conversions(
    store: ChainStore,
    chain: str,
    acts: dict[str, TxActivity],
    params: ConversionParams,
    report: DetectionReport,
) -> list[Conversion]:
    """Link pool withdrawals to deposits by the published heuristics (see the module docstring)."""
    deposits: dict[str, list[_Deposit]] = defaultdict(list)
    raw_withdrawals: list[tuple[TxActivity, int, DecodedEvent]] = []
    for tx in sorted(acts.values(), key=lambda t: (t.time, t.txid)):
        for index, ev in tx.events:
            if ev.name is EventName.POOL_DEPOSIT:
                moved = tx.received(ev.address)
                if len(moved) != 1:
                    report.skip(
                        "lookalike-pool",
                        chain,
                        tx.txid,
                        f"log {index}: Deposit of {ev.address} without one value moving into it",
                    )
                    continue
                deposits[ev.address].append(
                    _Deposit(
                        ev.address, tx.txid, tx.time, tx.sender, tx.gas_price, moved[0].value, moved[0].asset
                    )
                )
            elif ev.name is EventName.POOL_WITHDRAWAL:
                raw_withdrawals.append((tx, index, ev))
    denomination: dict[str, tuple[str, int]] = {}
    for pool, deps in list(deposits.items()):
        values = {(d.asset, d.value) for d in deps}
        if len(values) != 1:
            for d in deps:
                report.skip(
                    "lookalike-pool",
                    chain,
                    d.txid,
                    f"{pool} takes deposits of different values: not a fixed-denomination pool",
                )
            del deposits[pool]
            continue
        denomination[pool] = values.pop()
    withdrawals: list[_Withdrawal] = []
    for tx, index, ev in raw_withdrawals:
        if ev.address not in denomination:
            report.skip(
                "lookalike-pool",
                chain,
                tx.txid,
                f"log {index}: Withdrawal of {ev.address}, which took no fixed-denomination deposits",
            )
            continue
        withdrawals.append(
            _Withdrawal(
                ev.address,
                tx.txid,
                tx.time,
                ev.str_("to"),
                ev.str_("relayer"),
                ev.int_("fee"),
                tx.sender,
                tx.gas_price,
            )
        )
    if not withdrawals:
        return []
    linked_pairs = _linked_pairs(
        store,
        chain,
        {d.depositor for ds in deposits.values() for d in ds if d.depositor},
        {w.to for w in withdrawals} | {w.sender for w in withdrawals if w.sender},
    )
    gas_counts: dict[str, Counter[int]] = {
        p: Counter(d.gas_price for d in ds if d.gas_price) for p, ds in deposits.items()
    }
    out: list[Conversion] = []
    done_before: Counter[str] = Counter()
    for w in sorted(withdrawals, key=lambda w: (w.time, w.txid)):
        asset, value = denomination[w.pool]
        prior = [d for d in deposits[w.pool] if (d.time, d.txid) <= (w.time, w.txid)]
        anonymity = max(len(prior) - done_before[w.pool], 1)
        done_before[w.pool] += 1
        relayed = w.relayer != ZERO_ADDRESS and w.sender != w.to

        def link(
            rule: str,
            confidence: float,
            deps: list[_Deposit],
            w: _Withdrawal = w,
            asset: str = asset,
            value: int = value,
            anonymity: int = anonymity,
        ) -> None:
            d = max(deps, key=lambda x: (x.time, x.txid))
            out.append(
                Conversion(
                    ConversionKind.POOL,
                    rule,
                    round(confidence / len(deps), 4),
                    len(deps),
                    Leg(chain, d.txid, w.pool, asset, value, d.time),
                    Leg(chain, w.txid, w.to, asset, value - w.fee, w.time),
                    anonymity_set=anonymity,
                    evidence={"depositor": d.depositor, "relayer": w.relayer, "fee": str(w.fee)},
                )
            )

        same = [d for d in prior if d.depositor in (w.to, w.sender if not relayed else None)]
        if same:
            link("pool-same-address", params.pool_same_address, same)
        linked = [
            d
            for d in prior
            if d.depositor
            and (
                (d.depositor, w.to) in linked_pairs
                or (not relayed and (d.depositor, w.sender) in linked_pairs)
            )
        ]
        if linked:
            link("pool-linked-addresses", params.pool_linked_addresses, linked)
        if not relayed and w.gas_price and gas_counts[w.pool][w.gas_price] == 1 and w.gas_price % 10**9:
            unique = [d for d in prior if d.gas_price == w.gas_price]
            if unique:
                link("pool-unique-gas-price", params.pool_unique_gas_price, unique)
        recent = [d for d in prior if w.time - d.time <= params.pool_timing_window]
        if 0 < len(recent) <= params.pool_small_set and anonymity <= params.pool_small_set:
            link("pool-timing", params.pool_timing, recent)
    out.extend(_multi_denomination(chain, deposits, withdrawals, denomination, params))
    return out


def _linked_pairs(
    store: ChainStore, chain: str, depositors: set[str], others: set[str]
) -> set[tuple[str, str]]:
    """(depositor, other) pairs that transacted directly with each other (either direction)."""
    if not depositors or not others:
        return set()
    store.con.register("_conv_dep", pa.table({"a": pa.array(sorted(depositors), pa.string())}))
    store.con.register("_conv_oth", pa.table({"a": pa.array(sorted(others), pa.string())}))
    try:
        rows = store.query(
            """SELECT DISTINCT t.from_address, t.to_address FROM transfers t
               WHERE t.chain = ? AND t.kind IN ('native', 'token') AND t.from_address <> t.to_address
                 AND ((t.from_address IN (SELECT a FROM _conv_dep)
                       AND t.to_address IN (SELECT a FROM _conv_oth))
                   OR (t.to_address IN (SELECT a FROM _conv_dep)
                       AND t.from_address IN (SELECT a FROM _conv_oth)))""",
            [chain],
        )
    finally:
        store.con.unregister("_conv_dep")
        store.con.unregister("_conv_oth")
    pairs: set[tuple[str, str]] = set()
    for f, t in rows:
        if f in depositors:
            pairs.add((f, t))
        if t in depositors:
            pairs.add((t, f))
    return pairs


def _multi_denomination(
    chain: str,
    deposits: dict[str, list[_Deposit]],
    withdrawals: list[_Withdrawal],
    denomination: dict[str, tuple[str, int]],
    params: ConversionParams,
) -> list[Conversion]:
    """A recipient whose withdrawals across pools repeat exactly one depositor's mix of denominations
    (two or more pools), within the window after the deposits."""
    by_depositor: dict[str, list[_Deposit]] = defaultdict(list)
    for ds in deposits.values():
        for d in ds:
            if d.depositor:
                by_depositor[d.depositor].append(d)
    by_recipient: dict[str, list[_Withdrawal]] = defaultdict(list)
    for w in withdrawals:
        by_recipient[w.to].append(w)
    signature = {who: Counter(d.pool for d in ds) for who, ds in by_depositor.items()}
    out: list[Conversion] = []
    for to, ws in by_recipient.items():
        mix = Counter(w.pool for w in ws)
        if len(mix) < 2:
            continue
        matches = [who for who, sig in signature.items() if sig == mix and who != to]
        if len(matches) != 1:
            continue
        deps = by_depositor[matches[0]]
        last_dep, first_w = max(d.time for d in deps), min(w.time for w in ws)
        if not 0 <= first_w - last_dep <= params.multi_denomination_window:
            continue
        for w in ws:
            d = max((d for d in deps if d.pool == w.pool), key=lambda x: (x.time, x.txid))
            asset, value = denomination[w.pool]
            out.append(
                Conversion(
                    ConversionKind.POOL,
                    "pool-multi-denomination",
                    params.pool_multi_denomination,
                    1,
                    Leg(chain, d.txid, w.pool, asset, value, d.time),
                    Leg(chain, w.txid, w.to, asset, value - w.fee, w.time),
                    anonymity_set=len(deposits[w.pool]),
                    evidence={"depositor": d.depositor, "pools": len(mix)},
                )
            )
    return out


# --------------------------------------------------------------------------- service


def detect_conversions(store: ChainStore, params: ConversionParams | None = None) -> DetectionReport:
    """Recompute every conversion in the store (all chains: bridges join them) and replace the table."""
    params = params or ConversionParams()
    ensure_table(store)
    report = DetectionReport()
    found: list[Conversion] = []
    acts: dict[str, dict[str, TxActivity]] = {}
    for chain in _evm_chains(store):
        acts[chain] = load_activity(store, chain, report)
        with_events = set()
        for tx in acts[chain].values():
            swaps = swaps_in_transaction(tx, params, report)
            found.extend(swaps)
            if any(
                ev.name
                in (
                    EventName.UNISWAP_V2_SWAP,
                    EventName.UNISWAP_V3_SWAP,
                    EventName.WETH_DEPOSIT,
                    EventName.WETH_WITHDRAWAL,
                )
                for _, ev in tx.events
            ):
                with_events.add(tx.txid)
        found.extend(_net_flow_swaps(store, chain, with_events, params))
        found.extend(pool_conversions(store, chain, acts[chain], params, report))
    tagged = _tagged(store, BRIDGE_CATEGORIES)
    bridges = cbridge_conversions(acts, tagged, params, report)
    bridges += memo_conversions(store, params, report)
    matched = {(c.in_.chain, c.in_.txid) for c in bridges}
    bridges += lock_mint_conversions(store, tagged, matched, params)
    found.extend(bridges)
    _store(store, found)
    for c in found:
        report.conversions[c.rule] += 1
    log.info("conversions: %d found, %d inputs skipped", len(found), sum(report.skipped.values()))
    return report


def _net_flow_swaps(
    store: ChainStore, chain: str, exclude: set[str], params: ConversionParams
) -> list[Conversion]:
    """``tx-net-flow`` over transactions whose sender both sent and received value of different assets."""
    rows = store.con.execute(
        """WITH s AS (SELECT txid, from_address AS sender FROM transfers
                      WHERE chain = $c AND kind = 'native'),
                m AS (SELECT t.txid, count(DISTINCT t.asset) FILTER (WHERE t.from_address = s.sender) AS gave,
                             count(DISTINCT t.asset) FILTER (WHERE t.to_address = s.sender) AS got
                      FROM transfers t JOIN s ON s.txid = t.txid
                      WHERE t.chain = $c AND t.kind IN ('native', 'internal', 'token') AND t.value > 0
                        AND t.from_address IS DISTINCT FROM t.to_address
                      GROUP BY t.txid)
           SELECT txid FROM m WHERE gave >= 1 AND got >= 1""",
        {"c": chain},
    ).fetchall()
    txids = [t for (t,) in rows if t not in exclude]
    if not txids:
        return []
    acts = load_activity(store, chain, DetectionReport(), txids)
    return [c for tx in acts.values() if (c := net_flow_swap(tx, params)) is not None]


def _store(store: ChainStore, found: list[Conversion]) -> None:
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM conversions")
        if found:
            tbl = pa.table(
                {
                    "kind": [c.kind.value for c in found],
                    "rule": [c.rule for c in found],
                    "confidence": pa.array([c.confidence for c in found], pa.float64()),
                    "candidates": pa.array([c.candidates for c in found], pa.int32()),
                    "anonymity_set": pa.array([c.anonymity_set for c in found], pa.int32()),
                    **{
                        f"{side}_{k}": v
                        for side, legs in (("in", [c.in_ for c in found]), ("out", [c.out for c in found]))
                        for k, v in (
                            ("chain", [x.chain for x in legs]),
                            ("txid", [x.txid for x in legs]),
                            ("address", [x.address for x in legs]),
                            ("asset", [x.asset for x in legs]),
                            ("value", pa.array([str(x.value) for x in legs], pa.string())),
                            ("time", pa.array([x.time for x in legs], pa.int64())),
                        )
                    },
                    "evidence": [
                        json.dumps(c.evidence, sort_keys=True) if c.evidence else None for c in found
                    ],
                }
            )
            con.register("_stage_conversions", tbl)
            try:
                con.execute(
                    f"""INSERT INTO conversions SELECT kind, rule, confidence, candidates, anonymity_set,
                           in_chain, in_txid, in_address, in_asset, in_value::{schema.AMOUNT}, in_time,
                           out_chain, out_txid, out_address, out_asset, out_value::{schema.AMOUNT}, out_time,
                           evidence::JSON FROM _stage_conversions"""
                )
            finally:
                con.unregister("_stage_conversions")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def list_conversions(
    store: ChainStore,
    chain: str | None = None,
    kind: ConversionKind | None = None,
    min_confidence: float = 0.0,
) -> list[Conversion]:
    """Stored conversions touching ``chain`` (in or out), of ``kind``, at least ``min_confidence``."""
    if not _has_table(store, "conversions"):
        return []
    sql = (
        "SELECT kind, rule, confidence, candidates, anonymity_set, in_chain, in_txid, in_address, in_asset, "
        "in_value, in_time, out_chain, out_txid, out_address, out_asset, out_value, out_time, evidence "
        "FROM conversions WHERE confidence >= ?"
    )
    args: list[Any] = [min_confidence]
    if chain is not None:
        sql += " AND (in_chain = ? OR out_chain = ?)"
        args += [chain, chain]
    if kind is not None:
        sql += " AND kind = ?"
        args.append(kind.value)
    sql += " ORDER BY in_chain, in_time, in_txid, kind, rule, out_chain, out_txid, out_address"
    return [_conversion_of_row(r) for r in store.query(sql, args)]


def _conversion_of_row(r: Sequence[Any]) -> Conversion:
    return Conversion(
        ConversionKind(r[0]),
        r[1],
        float(r[2]),
        int(r[3]),
        Leg(r[5], r[6], r[7], r[8], int(r[9]), r[10]),
        Leg(r[11], r[12], r[13], r[14], int(r[15]), r[16]),
        anonymity_set=None if r[4] is None else int(r[4]),
        evidence=json.loads(r[17]) if r[17] else {},
    )


def conversions_into(
    store: ChainStore, chain: str, addresses: Iterable[str], min_confidence: float = 0.0
) -> list[Conversion]:
    """Stored conversions whose in side is one of ``addresses`` on ``chain`` (what a trace may follow)."""
    wanted = sorted(set(addresses))
    if not wanted or not _has_table(store, "conversions"):
        return []
    sql = (
        "SELECT kind, rule, confidence, candidates, anonymity_set, in_chain, in_txid, in_address, in_asset, "
        "in_value, in_time, out_chain, out_txid, out_address, out_asset, out_value, out_time, evidence "
        "FROM conversions WHERE confidence >= ? AND in_chain = ? AND in_address IN (SELECT unnest(?)) "
        "ORDER BY in_time, in_txid, in_address, in_asset, kind, rule, out_chain, out_txid, out_address"
    )
    return [_conversion_of_row(r) for r in store.query(sql, [min_confidence, chain, wanted])]


def pool_addresses(store: ChainStore, chain: str) -> set[str]:
    """The pools of ``chain`` that conversions name (where unlinked value stays)."""
    if not _has_table(store, "conversions"):
        return set()
    rows = store.query(
        "SELECT DISTINCT in_address FROM conversions WHERE in_chain = ? AND kind = ?",
        [chain, ConversionKind.POOL.value],
    )
    return {r[0] for r in rows}
