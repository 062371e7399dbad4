"""The ledger of a generated world: coins, wallets, and transactions assembled into blocks.

Rules the ledger enforces (a generator bug raises :class:`LedgerError`):

* an input spends an existing, confirmed, unspent coin, exactly once; outputs never exceed inputs (the
  difference is the fee, which the block's coinbase collects);
* coins become spendable in the block after the one that made them; coinbase coins after
  ``COINBASE_MATURITY`` blocks, as on Bitcoin.

Transactions are serialised as Bitcoin does without witnesses, so the txid is the double SHA-256 of real
bytes and the sizes are exact for the stripped part (witness sizes are those of one signature and key).
Each block is handed to a sink as bitcoin-etl ``transaction`` rows (enriched inputs), coinbase first.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from fundtrail.scenarios.dice import Dice
from fundtrail.scenarios.groundtruth import AddressRole, Entity, PathStep
from fundtrail.scenarios.keys import KIND_SPECS, Key, KeyFactory, ScriptKind, redeem_script

COIN = 100_000_000
"""Satoshi per bitcoin."""
DUST = 546
"""Outputs below this many satoshi are not made; the value goes to the fee."""
COINBASE_MATURITY = 100
SEQUENCE_FINAL = 0xFFFFFFFF
SEQUENCE_RBF = 0xFFFFFFFD


class LedgerError(RuntimeError):
    """A transaction that breaks the ledger's rules (a bug in the generator, never bad user input)."""


class ChangePolicy(StrEnum):
    """Where a wallet sends its change."""

    FRESH = "fresh"
    INPUT = "input"
    STATIC = "static"


class Selection(StrEnum):
    """How a wallet picks the coins it spends."""

    LARGEST = "largest"
    RANDOM = "random"
    OLDEST = "oldest"


class Coin:
    """An output of a transaction, owned by a wallet until spent."""

    __slots__ = ("uid", "txid", "n", "value", "key", "wallet", "height", "spent")

    def __init__(
        self, uid: int, txid: str, n: int, value: int, key: Key, wallet: Wallet | None, height: int
    ) -> None:
        self.uid = uid
        self.txid = txid
        self.n = n
        self.value = value
        self.key = key
        self.wallet = wallet
        self.height = height
        self.spent = False

    def __repr__(self) -> str:
        return f"Coin({self.txid[:8]}:{self.n} {self.value} {self.key.address})"


class Pay(NamedTuple):
    """An output to make: ``value`` to ``key`` (credited to ``wallet``), or an OP_RETURN with ``data``."""

    key: Key | None
    value: int
    wallet: Wallet | None
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Tx:
    """A transaction the ledger accepted: its id, the coins it made (None for OP_RETURN), its fee."""

    txid: str
    outputs: tuple[Coin | None, ...]
    fee: int
    height: int
    change: Coin | None = None

    def coin_for(self, key: Key) -> Coin:
        """The coin this transaction paid to ``key``."""
        for coin in self.outputs:
            if coin is not None and coin.key is key:
                return coin
        raise LedgerError(f"{self.txid} pays nothing to {key.address}")


class Wallet:
    """Coins and keys of one entity, with its habits: script kind, address reuse, coin selection."""

    __slots__ = (
        "entity",
        "kind",
        "keys",
        "dice",
        "coins",
        "balance",
        "change",
        "selection",
        "static",
        "static_receive",
        "sequence",
        "bip69",
        "journal",
        "role",
    )

    def __init__(
        self,
        entity: Entity,
        kind: ScriptKind,
        keys: KeyFactory,
        dice: Dice,
        *,
        role: AddressRole = AddressRole.RECEIVE,
        static_keys: int = 0,
        static_receive: bool = False,
        change: ChangePolicy = ChangePolicy.FRESH,
        selection: Selection = Selection.LARGEST,
        rbf: bool = False,
        bip69: bool = False,
        journal: list[PathStep] | None = None,
    ) -> None:
        self.entity = entity
        self.kind = kind
        self.keys = keys
        self.dice = dice
        self.role = role
        self.coins: dict[int, Coin] = {}
        self.balance = 0
        self.static = [keys.new(kind, entity, role) for _ in range(static_keys)]
        self.static_receive = static_receive
        self.change = change
        self.selection = selection
        self.sequence = SEQUENCE_RBF if rbf else SEQUENCE_FINAL
        self.bip69 = bip69
        self.journal = journal

    def fresh(self, role: AddressRole | None = None) -> Key:
        """A never-used key of this wallet."""
        return self.keys.new(self.kind, self.entity, role or self.role)

    def receive(self) -> Key:
        """The key to give a payer: the wallet's static address, or a fresh one."""
        if self.static_receive:
            if not self.static:
                self.static.append(self.fresh())
            return self.static[0]
        return self.fresh()

    def change_key(self, inputs: Sequence[Coin]) -> Key:
        """The key change goes to, by the wallet's change policy."""
        if self.change is ChangePolicy.INPUT and inputs:
            return inputs[0].key
        if self.change is ChangePolicy.STATIC and self.static:
            return self.dice.choice(self.static)
        return self.fresh(AddressRole.CHANGE if self.role is AddressRole.RECEIVE else self.role)

    def add(self, coin: Coin) -> None:
        """Credit a confirmed coin."""
        self.coins[coin.uid] = coin
        self.balance += coin.value

    def remove(self, coin: Coin) -> None:
        """Debit a coin being spent."""
        del self.coins[coin.uid]
        self.balance -= coin.value

    def ordered(self) -> list[Coin]:
        """The coins in the order the wallet's selection strategy tries them."""
        coins = list(self.coins.values())
        if self.selection is Selection.LARGEST:
            coins.sort(key=lambda c: (-c.value, c.uid))
        elif self.selection is Selection.RANDOM:
            self.dice.shuffle(coins)
        return coins

    def select(
        self, amount: int, out_kinds: Sequence[ScriptKind], feerate: float, *, max_inputs: int = 60
    ) -> list[Coin] | None:
        """Coins that pay ``amount`` plus the fee of a transaction with these outputs and change."""
        if self.balance < amount:
            return None
        picked: list[Coin] = []
        total = 0
        kinds = [*out_kinds, self.kind]
        for coin in self.ordered():
            picked.append(coin)
            total += coin.value
            if total >= amount + fee_for([c.key.kind for c in picked], kinds, feerate):
                return picked
            if len(picked) >= max_inputs:
                break
        return None


def vsize_estimate(
    in_kinds: Iterable[ScriptKind],
    out_kinds: Iterable[ScriptKind],
    data_outputs: int = 0,
    data_bytes: int = 0,
) -> float:
    """Virtual size of a transaction with these inputs and outputs (one signature per input)."""
    ins = list(in_kinds)
    segwit = any(KIND_SPECS[k].witness_bytes for k in ins)
    return (
        (10.5 if segwit else 10.0)
        + sum(KIND_SPECS[k].input_vbytes for k in ins)
        + sum(KIND_SPECS[k].output_vbytes for k in out_kinds)
        + data_outputs * 11
        + data_bytes
    )


def fee_for(
    in_kinds: Iterable[ScriptKind],
    out_kinds: Iterable[ScriptKind],
    feerate: float,
    data_outputs: int = 0,
    data_bytes: int = 0,
) -> int:
    """Fee in satoshi at ``feerate`` sat/vB."""
    return math.ceil(vsize_estimate(in_kinds, out_kinds, data_outputs, data_bytes) * feerate)


def _varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    return b"\xfe" + n.to_bytes(4, "little")


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def merkle_root(txids: Sequence[str]) -> str:
    """The merkle root of a block's txids (hex, display order), as Bitcoin computes it."""
    level = [bytes.fromhex(t)[::-1] for t in txids]
    if not level:
        return "00" * 32
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [_sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0][::-1].hex()


def _nonstandard(script_hex: str) -> str:
    """bitcoin-etl's made-up address for an output without one."""
    return "nonstandard" + hashlib.sha256(bytes.fromhex(script_hex)).hexdigest()[:40]


BlockSink = Callable[[list[dict[str, Any]]], None]
"""Receives each finished block as bitcoin-etl transaction rows, coinbase first."""


class Ledger:
    """Builds the chain block by block; see the module docstring for the rules it keeps."""

    def __init__(
        self, dice: Dice, sink: BlockSink, *, start_height: int, prev_hash: str, subsidy: int
    ) -> None:
        self.dice = dice
        self.sink = sink
        self.height = start_height - 1
        self.time = 0
        self.feerate = 1.0
        self.prev_hash = prev_hash
        self.subsidy = subsidy
        self.tx_count = 0
        self.block_count = 0
        self.first_height = start_height
        self._uid = 0
        self._rows: list[dict[str, Any]] = []
        self._txids: list[str] = []
        self._fees = 0
        self._pending: list[Coin] = []
        self._maturing: deque[tuple[int, Coin]] = deque()

    # ------------------------------------------------------------------ blocks

    def begin_block(self, height: int, time: int, feerate: float) -> None:
        """Start block ``height``: coinbase coins that reached maturity become spendable."""
        if height != self.height + 1:
            raise LedgerError(f"block {height} does not follow {self.height}")
        self.height = height
        self.time = time
        self.feerate = feerate
        while self._maturing and self._maturing[0][0] <= height:
            _, coin = self._maturing.popleft()
            if coin.wallet is not None:
                coin.wallet.add(coin)

    def end_block(self, miner: Wallet, miner_key: Key, tag: bytes) -> None:
        """Close the block: the coinbase pays subsidy and fees to ``miner_key``; the rows go to the sink."""
        height = self.height
        reward = self.subsidy + self._fees
        commitment = b"\xaa\x21\xa9\xed" + self.dice.bytes(32)
        script_sig = (
            b"\x03" + height.to_bytes(3, "little") + b"\x08" + self.dice.bytes(8) + bytes((len(tag),)) + tag
        )
        outputs = [Pay(miner_key, reward, miner), Pay(None, 0, None, commitment)]
        raw = b"".join(
            [
                (2).to_bytes(4, "little"),
                b"\x01",
                b"\x00" * 32,
                b"\xff\xff\xff\xff",
                _varint(len(script_sig)),
                script_sig,
                b"\xff\xff\xff\xff",
                self._outputs_raw(outputs),
                (0).to_bytes(4, "little"),
            ]
        )
        txid = _sha256d(raw)[::-1].hex()
        witness = 2 + 1 + 1 + 32  # marker, flag, the witness reserved value
        size = len(raw) + witness
        coins, out_rows = self._make_outputs(txid, outputs)
        coin = coins[0]
        assert coin is not None
        self._maturing.append((height + COINBASE_MATURITY, coin))
        row = {
            "type": "transaction",
            "hash": txid,
            "size": size,
            "virtual_size": math.ceil((len(raw) * 4 + witness) / 4),
            "version": 2,
            "lock_time": 0,
            "block_number": height,
            "block_hash": None,
            "block_timestamp": self.time,
            "is_coinbase": True,
            "index": 0,
            "inputs": [],
            "outputs": out_rows,
            "input_count": 0,
            "output_count": len(out_rows),
            "input_value": 0,
            "output_value": reward,
            "fee": 0,
            "item_id": f"transaction_{txid}",
        }
        rows = [row, *self._rows]
        txids = [txid, *self._txids]
        root = merkle_root(txids)
        header = b"".join(
            [
                (0x20000000).to_bytes(4, "little"),
                bytes.fromhex(self.prev_hash)[::-1],
                bytes.fromhex(root)[::-1],
                self.time.to_bytes(4, "little"),
                (0x17034219).to_bytes(4, "little"),
                self.dice.bytes(4),
            ]
        )
        block_hash = _sha256d(header)[::-1].hex()
        for i, r in enumerate(rows):
            r["block_hash"] = block_hash
            r["index"] = i
        self.sink(rows)
        for c in self._pending:
            if c.wallet is not None:
                c.wallet.add(c)
        self.tx_count += len(rows)
        self.block_count += 1
        self.prev_hash = block_hash
        self._rows = []
        self._txids = []
        self._pending = []
        self._fees = 0

    # ------------------------------------------------------------------ transactions

    def _outputs_raw(self, outputs: Sequence[Pay]) -> bytes:
        parts = [_varint(len(outputs))]
        for p in outputs:
            script = p.key.script if p.key is not None else b"\x6a" + bytes((len(p.data),)) + p.data
            parts += [p.value.to_bytes(8, "little"), _varint(len(script)), script]
        return b"".join(parts)

    def _make_outputs(
        self, txid: str, outputs: Sequence[Pay]
    ) -> tuple[list[Coin | None], list[dict[str, Any]]]:
        coins: list[Coin | None] = []
        rows: list[dict[str, Any]] = []
        height = self.height
        for n, p in enumerate(outputs):
            key = p.key
            if key is None:
                script_hex = "6a" + bytes((len(p.data),)).hex() + p.data.hex()
                rows.append(
                    {
                        "index": n,
                        "script_asm": "OP_RETURN " + p.data.hex(),
                        "script_hex": script_hex,
                        "required_signatures": None,
                        "type": "nonstandard",
                        "addresses": [_nonstandard(script_hex)],
                        "value": p.value,
                    }
                )
                coins.append(None)
                continue
            rows.append(
                {
                    "index": n,
                    "script_asm": key.script_asm,
                    "script_hex": key.script_hex,
                    "required_signatures": 1,
                    "type": KIND_SPECS[key.kind].etl_type,
                    "addresses": [key.address],
                    "value": p.value,
                }
            )
            self._uid += 1
            coins.append(Coin(self._uid, txid, n, p.value, key, p.wallet, height))
        return coins, rows

    def _script_sig(self, coin: Coin) -> tuple[bytes, str]:
        kind = coin.key.kind
        if kind is ScriptKind.P2PKH:
            rnd = bytearray(self.dice.bytes(64))
            rnd[0] &= 0x7F
            rnd[32] &= 0x7F
            der = b"\x30\x44\x02\x20" + bytes(rnd[:32]) + b"\x02\x20" + bytes(rnd[32:])
            pubkey = coin.key.pubkey
            return (b"\x47" + der + b"\x01" + b"\x21" + pubkey, f"{der.hex()}[ALL] {pubkey.hex()}")
        if kind is ScriptKind.P2SH_P2WPKH:
            redeem = redeem_script(coin.key)
            return b"\x16" + redeem, redeem.hex()
        return b"", ""

    def transact(
        self,
        inputs: Sequence[Coin],
        outputs: Sequence[Pay],
        *,
        label: str | None = None,
        sequence: int = SEQUENCE_FINAL,
        version: int = 2,
        locktime: int = 0,
        change_index: int | None = None,
    ) -> Tx:
        """Add a transaction spending ``inputs`` into ``outputs`` to the current block."""
        if not inputs:
            raise LedgerError("a transaction needs inputs")
        total_in = 0
        for c in inputs:
            if c.spent:
                raise LedgerError(f"{c} is already spent")
            if c.height >= self.height:
                raise LedgerError(f"{c} is not confirmed yet at height {self.height}")
            total_in += c.value
        total_out = sum(p.value for p in outputs)
        if total_out > total_in:
            raise LedgerError(f"outputs ({total_out}) exceed inputs ({total_in})")
        if any(p.key is not None and p.value < DUST for p in outputs):
            raise LedgerError("an output below the dust limit")
        parts = [version.to_bytes(4, "little"), _varint(len(inputs))]
        in_rows = []
        witness = 0
        legacy_inputs = 0
        seq = sequence.to_bytes(4, "little")
        for i, c in enumerate(inputs):
            c.spent = True
            if c.wallet is not None:
                c.wallet.remove(c)
            script_sig, asm = self._script_sig(c)
            parts += [
                bytes.fromhex(c.txid)[::-1],
                c.n.to_bytes(4, "little"),
                _varint(len(script_sig)),
                script_sig,
                seq,
            ]
            spec = KIND_SPECS[c.key.kind]
            if spec.witness_bytes:
                witness += spec.witness_bytes
            else:
                legacy_inputs += 1
            in_rows.append(
                {
                    "index": i,
                    "spent_transaction_hash": c.txid,
                    "spent_output_index": c.n,
                    "script_asm": asm,
                    "script_hex": script_sig.hex(),
                    "sequence": sequence,
                    "required_signatures": 1,
                    "type": spec.etl_type,
                    "addresses": [c.key.address],
                    "value": c.value,
                }
            )
        parts.append(self._outputs_raw(outputs))
        parts.append(locktime.to_bytes(4, "little"))
        raw = b"".join(parts)
        txid = _sha256d(raw)[::-1].hex()
        if witness:
            witness += 2 + legacy_inputs
        coins, out_rows = self._make_outputs(txid, outputs)
        fee = total_in - total_out
        self._fees += fee
        self._pending.extend(c for c in coins if c is not None)
        self._txids.append(txid)
        self._rows.append(
            {
                "type": "transaction",
                "hash": txid,
                "size": len(raw) + witness,
                "virtual_size": math.ceil((len(raw) * 4 + witness) / 4),
                "version": version,
                "lock_time": locktime,
                "block_number": self.height,
                "block_hash": None,
                "block_timestamp": self.time,
                "is_coinbase": False,
                "index": None,
                "inputs": in_rows,
                "outputs": out_rows,
                "input_count": len(in_rows),
                "output_count": len(out_rows),
                "input_value": total_in,
                "output_value": total_out,
                "fee": fee,
                "item_id": f"transaction_{txid}",
            }
        )
        self._journal(txid, label, inputs, outputs)
        return Tx(
            txid, tuple(coins), fee, self.height, coins[change_index] if change_index is not None else None
        )

    def _journal(self, txid: str, label: str | None, inputs: Sequence[Coin], outputs: Sequence[Pay]) -> None:
        step = PathStep(txid, label or "transfer", self.height)
        for w in [c.wallet for c in inputs] + [p.wallet for p in outputs]:
            if w is not None and w.journal is not None and (not w.journal or w.journal[-1].txid != txid):
                w.journal.append(step)

    # ------------------------------------------------------------------ wallet operations

    def pay(
        self,
        wallet: Wallet,
        payments: Sequence[Pay],
        *,
        coins: Sequence[Coin] | None = None,
        label: str | None = None,
        change_key: Key | None = None,
        max_inputs: int = 60,
    ) -> Tx | None:
        """Pay ``payments`` from ``wallet`` (its coins, or the given ones), with change; None if it cannot."""
        amount = sum(p.value for p in payments)
        out_kinds = [p.key.kind for p in payments if p.key is not None]
        data = [p for p in payments if p.key is None]
        data_bytes = sum(len(p.data) for p in data)
        if coins is None:
            picked = wallet.select(
                amount + fee_for((), (), self.feerate, len(data), data_bytes),
                out_kinds,
                self.feerate,
                max_inputs=max_inputs,
            )
            if picked is None:
                return None
        else:
            picked = list(coins)
        total = sum(c.value for c in picked)
        in_kinds = [c.key.kind for c in picked]
        fee = fee_for(in_kinds, [*out_kinds, wallet.kind], self.feerate, len(data), data_bytes)
        change = total - amount - fee
        outputs = list(payments)
        if change < DUST:
            fee = fee_for(in_kinds, out_kinds, self.feerate, len(data), data_bytes)
            if total - amount < fee:
                return None
            change_pay = None
        else:
            change_pay = Pay(change_key or wallet.change_key(picked), change, wallet)
            outputs.append(change_pay)
        if wallet.bip69:
            outputs.sort(key=lambda p: (p.value, p.key.script if p.key else b""))
        else:
            self.dice.shuffle(outputs)
        change_index = next((i for i, p in enumerate(outputs) if p is change_pay), None)
        return self.transact(
            picked, outputs, label=label, sequence=wallet.sequence, change_index=change_index
        )

    def sweep(
        self,
        coins: Sequence[Coin],
        key: Key,
        wallet: Wallet | None,
        *,
        label: str | None = None,
        sequence: int = SEQUENCE_FINAL,
    ) -> Tx | None:
        """Move all of ``coins`` to one output (minus the fee); None when that would be dust."""
        total = sum(c.value for c in coins)
        fee = fee_for([c.key.kind for c in coins], [key.kind], self.feerate)
        if total - fee < DUST:
            return None
        return self.transact(coins, [Pay(key, total - fee, wallet)], label=label, sequence=sequence)

    def fee(
        self,
        in_kinds: Iterable[ScriptKind],
        out_kinds: Iterable[ScriptKind],
        data_outputs: int = 0,
        data_bytes: int = 0,
    ) -> int:
        """The fee of such a transaction at the current block's fee rate."""
        return fee_for(in_kinds, out_kinds, self.feerate, data_outputs, data_bytes)
