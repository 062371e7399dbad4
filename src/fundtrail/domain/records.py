"""The normalised chain model that every reader produces and the chain store keeps.

Readers yield *batches*: columnar, append-only containers of complete blocks. A batch never holds
part of a block, so the store can write it, skip it or roll it back block by block. Amounts are
exact Python ints in base units (satoshi, wei). Addresses are canonical strings
(base58 as is, bech32 lower case, EVM lower-case hex) or ``None`` for scripts without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ScriptType(StrEnum):
    """Output script templates. Only the address-bearing ones carry an address."""

    P2PK = "p2pk"
    P2PKH = "p2pkh"
    P2SH = "p2sh"
    P2WPKH = "p2wpkh"
    P2WSH = "p2wsh"
    P2TR = "p2tr"
    WITNESS_UNKNOWN = "witness_unknown"
    MULTISIG = "multisig"
    NULLDATA = "nulldata"
    NONSTANDARD = "nonstandard"


class TransferKind(StrEnum):
    """What moved value on an account chain."""

    NATIVE = "native"        # the value of a top-level transaction
    INTERNAL = "internal"    # a value-carrying call inside a transaction (trace)
    TOKEN = "token"          # an ERC-20 Transfer log
    FEE = "fee"              # gas paid by the sender (to = None)
    REWARD = "reward"        # block and uncle rewards (from = None)
    WITHDRAWAL = "withdrawal"  # beacon-chain withdrawals (from = None)
    GENESIS = "genesis"      # genesis allocations and irregular state changes (from = None)


class PayloadKind(StrEnum):
    """What a ``payloads`` row holds (``data`` is text: hex for bytes, decimal for numbers)."""

    OP_RETURN = "op_return"  # the bytes of an OP_RETURN output (``n`` is the output), hex
    MEMO = "memo"            # call data that reads as a text memo (``=:ETH.ETH:0x...``), UTF-8 text
    GAS_PRICE = "gas_price"  # the gas price a transaction paid (wei), decimal; for pool heuristics


@dataclass(slots=True)
class PayloadColumns:
    """Rows of the ``payloads`` table: ``(txid, height, n, kind, data)``."""

    txid: list[str] = field(default_factory=list)
    height: list[int] = field(default_factory=list)
    n: list[int] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)

    def add(self, txid: str, height: int, n: int, kind: PayloadKind, data: str) -> None:
        """Append one payload row."""
        self.txid.append(txid)
        self.height.append(height)
        self.n.append(n)
        self.kind.append(kind.value)
        self.data.append(data)

    def __len__(self) -> int:
        return len(self.txid)


@dataclass(slots=True)
class LogColumns:
    """Rows of the ``logs`` table: event logs as the node gives them (lower-case hex)."""

    txid: list[str] = field(default_factory=list)
    height: list[int] = field(default_factory=list)
    log_index: list[int] = field(default_factory=list)
    address: list[str] = field(default_factory=list)
    topics: list[list[str]] = field(default_factory=list)
    data: list[str] = field(default_factory=list)

    def add(self, txid: str, height: int, log_index: int, address: str, topics: list[str], data: str) -> None:
        """Append one log row."""
        self.txid.append(txid)
        self.height.append(height)
        self.log_index.append(log_index)
        self.address.append(address)
        self.topics.append(topics)
        self.data.append(data)

    def __len__(self) -> int:
        return len(self.txid)


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """A block header as the store keeps it. ``time`` is Unix seconds (UTC)."""

    chain: str
    height: int
    hash: str
    prev_hash: str | None
    time: int
    tx_count: int


@dataclass(slots=True)
class UtxoBatch:
    """Complete blocks of a UTXO chain, as columns.

    Input ``address``/``value`` are ``None`` when the source does not carry the spent output;
    the store resolves them from the spent output it holds.
    """

    chain: str
    blocks: list[BlockRecord] = field(default_factory=list)
    # txs
    tx_txid: list[str] = field(default_factory=list)
    tx_height: list[int] = field(default_factory=list)
    tx_time: list[int] = field(default_factory=list)
    tx_index: list[int] = field(default_factory=list)
    tx_fee: list[int | None] = field(default_factory=list)
    tx_coinbase: list[bool] = field(default_factory=list)
    tx_size: list[int | None] = field(default_factory=list)
    tx_vsize: list[int | None] = field(default_factory=list)
    tx_version: list[int | None] = field(default_factory=list)
    tx_locktime: list[int | None] = field(default_factory=list)
    tx_segwit: list[bool] = field(default_factory=list)
    # outputs
    out_txid: list[str] = field(default_factory=list)
    out_n: list[int] = field(default_factory=list)
    out_address: list[str | None] = field(default_factory=list)
    out_value: list[int] = field(default_factory=list)
    out_script_type: list[str] = field(default_factory=list)
    # inputs (coinbase inputs are not recorded)
    in_txid: list[str] = field(default_factory=list)
    in_n: list[int] = field(default_factory=list)
    in_prev_txid: list[str] = field(default_factory=list)
    in_prev_n: list[int] = field(default_factory=list)
    in_sequence: list[int | None] = field(default_factory=list)
    in_address: list[str | None] = field(default_factory=list)
    in_value: list[int | None] = field(default_factory=list)
    # payloads: data a transaction carries besides value (OP_RETURN bytes), see :class:`PayloadKind`
    payloads: PayloadColumns = field(default_factory=lambda: PayloadColumns())

    def add_tx(self, txid: str, height: int, time: int, index: int, *, fee: int | None = None,
               coinbase: bool = False, size: int | None = None, vsize: int | None = None,
               version: int | None = None, locktime: int | None = None, segwit: bool = False) -> None:
        """Append one transaction row."""
        self.tx_txid.append(txid)
        self.tx_height.append(height)
        self.tx_time.append(time)
        self.tx_index.append(index)
        self.tx_fee.append(fee)
        self.tx_coinbase.append(coinbase)
        self.tx_size.append(size)
        self.tx_vsize.append(vsize)
        self.tx_version.append(version)
        self.tx_locktime.append(locktime)
        self.tx_segwit.append(segwit)

    def add_output(self, txid: str, n: int, address: str | None, value: int, script_type: str) -> None:
        """Append one output row."""
        self.out_txid.append(txid)
        self.out_n.append(n)
        self.out_address.append(address)
        self.out_value.append(value)
        self.out_script_type.append(script_type)

    def add_input(self, txid: str, n: int, prev_txid: str, prev_n: int, *, sequence: int | None = None,
                  address: str | None = None, value: int | None = None) -> None:
        """Append one input row (the spent output is ``prev_txid:prev_n``)."""
        self.in_txid.append(txid)
        self.in_n.append(n)
        self.in_prev_txid.append(prev_txid)
        self.in_prev_n.append(prev_n)
        self.in_sequence.append(sequence)
        self.in_address.append(address)
        self.in_value.append(value)

    @property
    def tx_count(self) -> int:
        """Number of transactions in the batch."""
        return len(self.tx_txid)

    def __len__(self) -> int:
        return len(self.tx_txid)


@dataclass(slots=True)
class AccountBatch:
    """Complete blocks of an account chain (EVM), as columns of transfers.

    ``index`` orders transfers inside a transaction: the log index for tokens, the position of
    the call in the trace for internal transfers, 0 for the native value and the fee. ``from`` and
    ``to`` are lower-case hex or ``None`` (fees have no receiver; rewards have no sender).
    ``asset`` is ``"native"`` or the token contract. ``status`` false marks a failed transaction,
    whose value did not move (its fee did).
    """

    chain: str
    blocks: list[BlockRecord] = field(default_factory=list)
    # txs: one row per transaction, as for UTXO chains
    tx_txid: list[str] = field(default_factory=list)
    tx_height: list[int] = field(default_factory=list)
    tx_time: list[int] = field(default_factory=list)
    tx_index: list[int] = field(default_factory=list)
    tx_fee: list[int | None] = field(default_factory=list)
    tx_status: list[bool | None] = field(default_factory=list)
    # transfers
    tr_txid: list[str | None] = field(default_factory=list)
    tr_height: list[int] = field(default_factory=list)
    tr_time: list[int] = field(default_factory=list)
    tr_index: list[int] = field(default_factory=list)
    tr_kind: list[str] = field(default_factory=list)
    tr_asset: list[str] = field(default_factory=list)
    tr_from: list[str | None] = field(default_factory=list)
    tr_to: list[str | None] = field(default_factory=list)
    tr_value: list[int] = field(default_factory=list)
    # logs of the events conversions are decoded from (not every log: see chains.evm.events.KEPT_TOPICS)
    logs: LogColumns = field(default_factory=lambda: LogColumns())
    # payloads: call-data memos and gas prices, see :class:`PayloadKind`
    payloads: PayloadColumns = field(default_factory=lambda: PayloadColumns())

    def add_tx(self, txid: str, height: int, time: int, index: int, *, fee: int | None,
               status: bool | None) -> None:
        """Append one transaction row."""
        self.tx_txid.append(txid)
        self.tx_height.append(height)
        self.tx_time.append(time)
        self.tx_index.append(index)
        self.tx_fee.append(fee)
        self.tx_status.append(status)

    def add_transfer(self, txid: str | None, height: int, time: int, index: int, kind: str,
                     asset: str, from_: str | None, to: str | None, value: int) -> None:
        """Append one transfer row."""
        self.tr_txid.append(txid)
        self.tr_height.append(height)
        self.tr_time.append(time)
        self.tr_index.append(index)
        self.tr_kind.append(kind)
        self.tr_asset.append(asset)
        self.tr_from.append(from_)
        self.tr_to.append(to)
        self.tr_value.append(value)

    @property
    def tx_count(self) -> int:
        """Number of transactions in the batch."""
        return len(self.tx_txid)

    def __len__(self) -> int:
        return len(self.tx_txid)


Batch = UtxoBatch | AccountBatch
