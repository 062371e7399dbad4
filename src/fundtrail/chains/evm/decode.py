"""Pure decoding of EVM data: quantities, ERC-20 ``Transfer`` logs, call traces and fees.

Nothing here does I/O. Inputs are the JSON shapes nodes answer (hex strings) or the decimal strings of
ethereum-etl exports; outputs are exact ints and lower-case hex addresses. Bad input raises
:class:`~fundtrail.errors.InputError`; readers re-raise it as a ``ParseError`` naming where it came from.

Internal transfers follow one rule for both trace formats (Geth ``callTracer`` frames and Parity
``trace_block`` flat traces): a frame moves value when it carries value > 0, is not the transaction's
top-level call (that value is the transaction's own), and neither it nor any frame above it failed
(a failed frame's effects, its sub-calls included, are reverted). ``DELEGATECALL`` and ``STATICCALL``
move nothing; ``CALLCODE`` runs foreign code in the caller's context, so its value goes from the caller
to itself; ``CREATE``/``CREATE2`` move value to the new contract; ``SELFDESTRUCT`` moves the contract's
balance to its beneficiary.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fundtrail.domain.addresses import to_checksum_address
from fundtrail.errors import InputError

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
"""keccak256("Transfer(address,address,uint256)"), topic0 of ERC-20 and ERC-721 transfers."""

GWEI = 10**9
_HEX = frozenset("0123456789abcdef")


# --------------------------------------------------------------------------- scalars


def parse_quantity(value: Any, what: str = "quantity") -> int:
    """An exact non-negative int from a JSON-RPC hex quantity (``"0x1a"``), a decimal string or an int.

    Floats and float-looking strings (``"1e18"``) are refused: money must stay exact.
    """
    if isinstance(value, bool):
        raise InputError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InputError(f"{what}: negative value {value}")
        return value
    if not isinstance(value, str):
        raise InputError(f"{what}: expected an integer, got {type(value).__name__} {value!r}")
    text = value.strip()
    try:
        if text[:2] in ("0x", "0X"):
            digits = text[2:]
            return int(digits, 16) if digits else 0
        if text.isdigit():
            return int(text)
    except ValueError:
        pass
    raise InputError(f"{what}: {value!r} is not an integer")


def parse_optional_quantity(value: Any, what: str = "quantity") -> int | None:
    """Like :func:`parse_quantity`, with ``None`` and ``""`` meaning absent."""
    if value is None or value == "":
        return None
    return parse_quantity(value, what)


def parse_address(value: Any, what: str = "address") -> str:
    """A 20-byte EVM address in canonical lower-case hex; raises InputError otherwise.

    A mixed-case address must carry a valid EIP-55 checksum.
    """
    if not isinstance(value, str):
        raise InputError(f"{what}: expected a hex address, got {value!r}")
    given = value.strip()
    text = given.lower()
    if len(text) != 42 or not text.startswith("0x") or not _HEX.issuperset(text[2:]):
        raise InputError(f"{what}: {value!r} is not a 20-byte hex address")
    body = given[2:]
    if body != text[2:] and body != body.upper() and to_checksum_address(text)[2:] != body:
        raise InputError(f"{what}: {value!r} has a bad EIP-55 checksum")
    return text


def parse_optional_address(value: Any, what: str = "address") -> str | None:
    """Like :func:`parse_address`, with ``None`` and ``""`` meaning absent."""
    if value is None or value == "":
        return None
    return parse_address(value, what)


def parse_hash(value: Any, what: str = "hash") -> str:
    """A 32-byte hash in lower-case hex."""
    if not isinstance(value, str):
        raise InputError(f"{what}: expected a hex hash, got {value!r}")
    text = value.strip().lower()
    if len(text) != 66 or not text.startswith("0x") or not _HEX.issuperset(text[2:]):
        raise InputError(f"{what}: {value!r} is not a 32-byte hex hash")
    return text


def _hex_bytes(value: Any, what: str) -> str:
    """The hex digits of a ``0x`` byte string, lower case, validated."""
    if not isinstance(value, str):
        raise InputError(f"{what}: expected hex data, got {value!r}")
    text = value.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if len(text) % 2 or not _HEX.issuperset(text):
        raise InputError(f"{what}: {value[:80]!r} is not hex data")
    return text


# --------------------------------------------------------------------------- ERC-20 logs


class TransferLogKind(StrEnum):
    """What a log with the ``Transfer`` topic turned out to be."""

    ERC20 = "erc20"            # 3 topics (topic0, from, to) and a 32-byte value in data
    ERC721 = "erc721"          # 4 topics (the token id indexed): moves an NFT, not an amount
    MALFORMED = "malformed"    # the Transfer topic with any other shape
    OTHER = "other"            # another event


@dataclass(frozen=True, slots=True)
class TokenTransfer:
    """An ERC-20 ``Transfer``: ``value`` base units of ``token`` from ``from_`` to ``to``."""

    token: str
    from_: str
    to: str
    value: int
    log_index: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None


def _topic_address(topic: str, what: str) -> str:
    digits = _hex_bytes(topic, what)
    if len(digits) != 64:
        raise InputError(f"{what}: {topic!r} is not a 32-byte topic")
    return "0x" + digits[24:]


def classify_transfer_log(topics: Sequence[str], data: str) -> TransferLogKind:
    """The kind of a log from its topics and data (only the shape is looked at)."""
    if not topics or str(topics[0]).lower() != TRANSFER_TOPIC:
        return TransferLogKind.OTHER
    digits = _hex_bytes(data or "0x", "data")
    if len(topics) == 3 and len(digits) == 64:
        return TransferLogKind.ERC20
    if len(topics) == 4 and not digits:
        return TransferLogKind.ERC721
    return TransferLogKind.MALFORMED


def decode_erc20_transfer(token: str, topics: Sequence[str], data: str, *, log_index: int | None = None,
                          tx_hash: str | None = None,
                          block_number: int | None = None) -> TokenTransfer | None:
    """The ERC-20 transfer a log records, or ``None`` when the log is not one (see ``classify_transfer_log``).

    ``from`` and ``to`` are the low 20 bytes of topics 1 and 2, as Solidity encodes indexed addresses.
    """
    if classify_transfer_log(topics, data) is not TransferLogKind.ERC20:
        return None
    return TokenTransfer(
        token=parse_address(token, "log address"),
        from_=_topic_address(topics[1], "topic 1"),
        to=_topic_address(topics[2], "topic 2"),
        value=int(_hex_bytes(data, "data"), 16),
        log_index=log_index, tx_hash=tx_hash, block_number=block_number,
    )


@dataclass(slots=True)
class LogDecodeStats:
    """Counts of what a run of log decoding met (reported, never silently dropped)."""

    erc20: int = 0
    erc721_skipped: int = 0
    malformed_skipped: int = 0
    other: int = 0

    def count(self, kind: TransferLogKind) -> None:
        """Count one log of ``kind``."""
        if kind is TransferLogKind.ERC20:
            self.erc20 += 1
        elif kind is TransferLogKind.ERC721:
            self.erc721_skipped += 1
        elif kind is TransferLogKind.MALFORMED:
            self.malformed_skipped += 1
        else:
            self.other += 1


def split_topics(value: Any) -> list[str]:
    """Topics as a list: JSON lists as they are, ethereum-etl CSV's comma-joined string split."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    return [str(t) for t in value]


def decode_rpc_log(log: Mapping[str, Any], stats: LogDecodeStats | None = None) -> TokenTransfer | None:
    """Decode one log object as JSON-RPC answers it (``eth_getLogs``, receipts); ``None`` if not ERC-20.

    Logs flagged ``removed`` (dropped by a reorg) are not transfers.
    """
    if log.get("removed"):
        return None
    topics = split_topics(log.get("topics"))
    data = log.get("data") or "0x"
    kind = classify_transfer_log(topics, data)
    if stats is not None:
        stats.count(kind)
    if kind is not TransferLogKind.ERC20:
        return None
    return decode_erc20_transfer(
        log["address"], topics, data,
        log_index=parse_optional_quantity(log.get("logIndex"), "logIndex"),
        tx_hash=parse_hash(log["transactionHash"], "transactionHash") if log.get("transactionHash") else None,
        block_number=parse_optional_quantity(log.get("blockNumber"), "blockNumber"))


def decode_logs(logs: Iterable[Mapping[str, Any]]) -> tuple[list[TokenTransfer], LogDecodeStats]:
    """Every ERC-20 transfer among ``logs`` (JSON-RPC shape), with counts of what was skipped."""
    stats = LogDecodeStats()
    out = [t for log in logs if (t := decode_rpc_log(log, stats)) is not None]
    return out, stats


# --------------------------------------------------------------------------- traces


@dataclass(frozen=True, slots=True)
class InternalTransfer:
    """A value move inside a transaction (``kind`` ``call``, ``create`` or ``selfdestruct``).

    ``position`` is the frame's place in the transaction's call tree, depth first, the top-level call
    being 0 (the same numbering for Geth and Parity traces).
    """

    tx_index: int
    position: int
    kind: str
    from_: str
    to: str
    value: int
    tx_hash: str | None = None


@dataclass(frozen=True, slots=True)
class RewardTransfer:
    """A block or uncle reward that a Parity-style trace reports (``from`` is nobody)."""

    position: int
    reward_type: str
    to: str
    value: int


@dataclass(slots=True)
class TraceResult:
    """What a block's traces yield: internal transfers, rewards, failed transactions and skipped frames."""

    transfers: list[InternalTransfer] = field(default_factory=list)
    rewards: list[RewardTransfer] = field(default_factory=list)
    failed_txs: set[int] = field(default_factory=set)
    created: dict[int, str] = field(default_factory=dict)  # contract created by a transaction, by index
    tx_hashes: dict[int, str] = field(default_factory=dict)
    unresolved_selfdestructs: int = 0
    reverted_frames: int = 0


_NO_VALUE_CALLS = frozenset({"delegatecall", "staticcall"})


def _frame_error(frame: Mapping[str, Any]) -> bool:
    return bool(frame.get("error"))


def flatten_geth_traces(block_traces: Sequence[Mapping[str, Any]],
                        tx_hashes: Sequence[str] | None = None) -> TraceResult:
    """Internal transfers from ``debug_traceBlockByNumber`` with ``callTracer``: one entry per transaction.

    Each entry is ``{"result": frame}`` (newer nodes add ``"txHash"``) or a bare frame. ``tx_hashes`` are the
    block's transaction hashes in order; when the node names them, they must agree.
    """
    out = TraceResult()
    for tx_index, entry in enumerate(block_traces):
        if not isinstance(entry, Mapping):
            raise InputError(f"trace of transaction {tx_index}: not a call frame")
        if "result" in entry:
            frame = entry["result"]
        elif "type" in entry:
            frame = entry  # a bare frame
        else:  # the node could not trace this transaction
            raise InputError(f"trace of transaction {tx_index}: {entry.get('error', 'no result')}")
        if not isinstance(frame, Mapping):
            raise InputError(f"trace of transaction {tx_index}: not a call frame")
        tx_hash = entry.get("txHash")
        if tx_hash is not None:
            tx_hash = parse_hash(tx_hash, "txHash")
        if tx_hashes is not None:
            if tx_index >= len(tx_hashes):
                raise InputError(f"{len(block_traces)} traces for {len(tx_hashes)} transactions")
            expected = tx_hashes[tx_index].lower()
            if tx_hash is not None and tx_hash != expected:
                raise InputError(f"trace {tx_index} is for {tx_hash}, the block has {expected} there")
            tx_hash = expected
        if tx_hash is not None:
            out.tx_hashes[tx_index] = tx_hash
        if _frame_error(frame):
            out.failed_txs.add(tx_index)
            continue
        if str(frame.get("type", "")).upper() in ("CREATE", "CREATE2") and frame.get("to"):
            out.created[tx_index] = parse_address(frame["to"], "created address")
        for position, child, reverted in _walk_frames(frame.get("calls") or []):
            if reverted:
                out.reverted_frames += 1
                continue
            transfer = _geth_frame_transfer(child, tx_index, position, tx_hash, out)
            if transfer is not None:
                out.transfers.append(transfer)
    if tx_hashes is not None and len(block_traces) != len(tx_hashes):
        raise InputError(f"{len(block_traces)} traces for {len(tx_hashes)} transactions")
    return out


def _walk_frames(calls: Sequence[Mapping[str, Any]]) -> Iterator[tuple[int, Mapping[str, Any], bool]]:
    """Frames below a top-level call, depth first, with their position (1, 2, ...) and whether they were
    reverted (they failed, or a frame above them did)."""
    position = 0
    stack: list[tuple[Mapping[str, Any], bool]] = [(c, False) for c in reversed(calls)]
    while stack:
        frame, reverted = stack.pop()
        position += 1
        reverted = reverted or _frame_error(frame)
        yield position, frame, reverted
        stack.extend((c, reverted) for c in reversed(frame.get("calls") or []))


def _geth_frame_transfer(frame: Mapping[str, Any], tx_index: int, position: int, tx_hash: str | None,
                         result: TraceResult) -> InternalTransfer | None:
    kind = str(frame.get("type", "")).lower()
    if kind in _NO_VALUE_CALLS:
        return None
    if kind == "selfdestruct":
        if frame.get("from") is None or frame.get("to") is None or frame.get("value") is None:
            # older callTracer versions recorded SELFDESTRUCT without beneficiary or amount
            result.unresolved_selfdestructs += 1
            return None
        kind = "selfdestruct"
    value = parse_optional_quantity(frame.get("value"), "value") or 0
    if value == 0:
        return None
    from_ = parse_address(frame.get("from"), "from")
    if kind == "callcode":
        to = from_
        kind = "call"
    else:
        to = parse_address(frame.get("to"), "to")
        if kind in ("create", "create2"):
            kind = "create"
        elif kind != "selfdestruct":
            kind = "call"
    return InternalTransfer(tx_index=tx_index, position=position, kind=kind, from_=from_, to=to, value=value,
                            tx_hash=tx_hash)


def flatten_parity_traces(traces: Iterable[Mapping[str, Any]],
                          tx_hashes: Sequence[str] | None = None) -> TraceResult:
    """Internal transfers and rewards from Parity-style ``trace_block`` output (a flat list, depth first)."""
    out = TraceResult()
    failed_prefixes: dict[int, list[tuple[int, ...]]] = {}
    positions: dict[int, int] = {}
    reward_position = 0
    for trace in traces:
        ttype = str(trace.get("type", "")).lower()
        action = trace.get("action") or {}
        if ttype == "reward":
            out.rewards.append(RewardTransfer(
                position=reward_position, reward_type=str(action.get("rewardType", "block")),
                to=parse_address(action.get("author"), "author"),
                value=parse_quantity(action.get("value", 0), "reward value")))
            reward_position += 1
            continue
        tx_pos = trace.get("transactionPosition")
        if tx_pos is None:
            continue  # other block-level entries (genesis, irregular changes) are not a transaction's
        tx_index = parse_quantity(tx_pos, "transactionPosition")
        tx_hash = trace.get("transactionHash")
        if tx_hash is not None:
            tx_hash = parse_hash(tx_hash, "transactionHash")
        if tx_hashes is not None:
            if tx_index >= len(tx_hashes):
                raise InputError(f"trace for transaction position {tx_index}, the block has {len(tx_hashes)}")
            expected = tx_hashes[tx_index].lower()
            if tx_hash is not None and tx_hash != expected:
                raise InputError(f"trace at position {tx_index} is for {tx_hash}, the block has {expected}")
            tx_hash = expected
        if tx_hash is not None:
            out.tx_hashes[tx_index] = tx_hash
        position = positions.get(tx_index, 0)
        positions[tx_index] = position + 1
        address = tuple(int(i) for i in trace.get("traceAddress") or ())
        failed = failed_prefixes.setdefault(tx_index, [])
        if any(address[:len(p)] == p for p in failed):
            out.reverted_frames += 1
            continue
        if trace.get("error"):
            failed.append(address)
            if not address:
                out.failed_txs.add(tx_index)
            else:
                out.reverted_frames += 1
            continue
        if not address:  # the top-level call: its value is the transaction's native transfer
            if ttype == "create" and (trace.get("result") or {}).get("address"):
                out.created[tx_index] = parse_address(trace["result"]["address"], "created address")
            continue
        transfer = _parity_transfer(ttype, action, trace.get("result") or {}, tx_index, position, tx_hash)
        if transfer is not None:
            out.transfers.append(transfer)
    return out


def _parity_transfer(ttype: str, action: Mapping[str, Any], result: Mapping[str, Any], tx_index: int,
                     position: int, tx_hash: str | None) -> InternalTransfer | None:
    if ttype == "call":
        call_type = str(action.get("callType", "call")).lower()
        if call_type in _NO_VALUE_CALLS:
            return None
        value = parse_quantity(action.get("value", 0), "value")
        if value == 0:
            return None
        from_ = parse_address(action.get("from"), "from")
        to = from_ if call_type == "callcode" else parse_address(action.get("to"), "to")
        return InternalTransfer(tx_index, position, "call", from_, to, value, tx_hash)
    if ttype == "create":
        value = parse_quantity(action.get("value", 0), "value")
        if value == 0:
            return None
        return InternalTransfer(tx_index, position, "create", parse_address(action.get("from"), "from"),
                                parse_address(result.get("address"), "created address"), value, tx_hash)
    if ttype in ("suicide", "selfdestruct"):
        value = parse_quantity(action.get("balance", 0), "balance")
        if value == 0:
            return None
        return InternalTransfer(tx_index, position, "selfdestruct",
                                parse_address(action.get("address"), "address"),
                                parse_address(action.get("refundAddress"), "refundAddress"), value, tx_hash)
    return None


# --------------------------------------------------------------------------- fees


def transaction_fee(gas_used: int | None, effective_gas_price: int | None, gas_price: int | None = None, *,
                    l1_fee: int | None = None, blob_gas_used: int | None = None,
                    blob_gas_price: int | None = None) -> int | None:
    """What the sender paid: ``gasUsed x effectiveGasPrice`` (``gasPrice`` before EIP-1559 receipts had it).

    Blob gas (EIP-4844) and an L2's L1 data fee (OP Stack receipts' ``l1Fee``) are paid by the sender too.
    ``None`` when the receipt data needed is missing.
    """
    price = effective_gas_price if effective_gas_price is not None else gas_price
    if gas_used is None or price is None:
        return None
    fee = gas_used * price
    if blob_gas_used and blob_gas_price:
        fee += blob_gas_used * blob_gas_price
    if l1_fee:
        fee += l1_fee
    return fee


def withdrawal_wei(amount_gwei: int) -> int:
    """Beacon-chain withdrawal amounts are in Gwei; the store keeps wei."""
    return amount_gwei * GWEI
