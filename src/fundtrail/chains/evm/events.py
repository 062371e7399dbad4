"""Pure decoding of the EVM events that conversions are read from: swaps, wraps, bridges and pools.

Each event is named by its Solidity signature; its topic0 is the keccak-256 of that signature, computed
here (with pycryptodome, through :func:`fundtrail.domain.addresses.keccak256`), never copied as a constant.
Decoding checks the shape the ABI gives the event (the number of topics, the length of the data, the
zero padding of addresses); a log that has the topic but not the shape raises
:class:`~fundtrail.errors.InputError` (a malformed log, counted and skipped by the caller). A log with a
topic0 that is none of these decodes to ``None``.

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from fundtrail.chains.evm.decode import TRANSFER_TOPIC, parse_address
from fundtrail.domain.addresses import keccak256
from fundtrail.errors import InputError


def event_topic(signature: str) -> str:
    """topic0 of an event: ``0x`` + keccak-256 of its canonical signature."""
    return "0x" + keccak256(signature.encode("ascii")).hex()


class EventName(StrEnum):
    """The events conversion detection decodes, by the protocol that emits them."""

    UNISWAP_V2_SWAP = "uniswap-v2-swap"
    UNISWAP_V3_SWAP = "uniswap-v3-swap"
    WETH_DEPOSIT = "weth-deposit"
    WETH_WITHDRAWAL = "weth-withdrawal"
    CBRIDGE_SEND = "cbridge-send"
    CBRIDGE_RELAY = "cbridge-relay"
    POOL_DEPOSIT = "pool-deposit"
    POOL_WITHDRAWAL = "pool-withdrawal"


SIGNATURES: dict[EventName, str] = {
    EventName.UNISWAP_V2_SWAP: "Swap(address,uint256,uint256,uint256,uint256,address)",
    EventName.UNISWAP_V3_SWAP: "Swap(address,address,int256,int256,uint160,uint128,int24)",
    EventName.WETH_DEPOSIT: "Deposit(address,uint256)",
    EventName.WETH_WITHDRAWAL: "Withdrawal(address,uint256)",
    EventName.CBRIDGE_SEND: "Send(bytes32,address,address,address,uint256,uint64,uint64,uint32)",
    EventName.CBRIDGE_RELAY: "Relay(bytes32,address,address,address,uint256,uint64,bytes32)",
    EventName.POOL_DEPOSIT: "Deposit(bytes32,uint32,uint256)",
    EventName.POOL_WITHDRAWAL: "Withdrawal(address,bytes32,address,uint256)",
}
"""Canonical signatures (Tornado Cash's pool events are the ``POOL_*`` ones)."""

TOPICS: dict[str, EventName] = {event_topic(sig): name for name, sig in SIGNATURES.items()}
"""Event name by topic0."""

TOPIC_OF: dict[EventName, str] = {name: topic for topic, name in TOPICS.items()}
"""topic0 by event name."""

# (topics including topic0, 32-byte words of data) that the ABI gives each event
_SHAPES: dict[EventName, tuple[int, int]] = {
    EventName.UNISWAP_V2_SWAP: (3, 4),   # sender, to indexed; amount0In, amount1In, amount0Out, amount1Out
    EventName.UNISWAP_V3_SWAP: (3, 5),   # sender, recipient indexed; amount0, amount1, price, liquidity, tick
    EventName.WETH_DEPOSIT: (2, 1),      # dst indexed; wad
    EventName.WETH_WITHDRAWAL: (2, 1),   # src indexed; wad
    EventName.CBRIDGE_SEND: (1, 8),      # nothing indexed
    EventName.CBRIDGE_RELAY: (1, 7),
    EventName.POOL_DEPOSIT: (2, 2),      # commitment indexed; leafIndex, timestamp
    EventName.POOL_WITHDRAWAL: (2, 3),   # relayer indexed; to, nullifierHash, fee
}

KEPT_TOPICS: frozenset[str] = frozenset(TOPICS)
"""topic0 of the logs ingest keeps in the ``logs`` table (``Transfer`` logs become token transfers)."""

_HEX = frozenset("0123456789abcdef")
_INT256_HALF = 2**255


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    """One decoded event log. ``fields`` holds the ABI values: ints, lower-case hex addresses and
    ``0x`` hex for ``bytes32``."""

    name: EventName
    address: str
    fields: dict[str, int | str]

    def int_(self, key: str) -> int:
        """An integer field."""
        value = self.fields[key]
        assert isinstance(value, int)
        return value

    def str_(self, key: str) -> str:
        """An address or bytes32 field."""
        value = self.fields[key]
        assert isinstance(value, str)
        return value


def _words(data: str, count: int, name: EventName) -> list[str]:
    text = (data or "0x").strip().lower()
    text = text[2:] if text.startswith("0x") else text
    if not _HEX.issuperset(text):
        raise InputError(f"{name.value}: data is not hex")
    if len(text) != 64 * count:
        raise InputError(f"{name.value}: data has {len(text) // 2} bytes where the event has {32 * count}")
    return [text[i:i + 64] for i in range(0, len(text), 64)]


def _topic_word(topic: str, name: EventName) -> str:
    text = str(topic).strip().lower()
    text = text[2:] if text.startswith("0x") else text
    if len(text) != 64 or not _HEX.issuperset(text):
        raise InputError(f"{name.value}: topic {topic!r} is not 32 bytes of hex")
    return text


def _address(word: str, name: EventName, what: str) -> str:
    if word[:24] != "0" * 24:
        raise InputError(f"{name.value}: {what} is not an address (high bytes set)")
    return "0x" + word[24:]


def _uint(word: str, bits: int, name: EventName, what: str) -> int:
    value = int(word, 16)
    if value >= 1 << bits:
        raise InputError(f"{name.value}: {what} does not fit uint{bits}")
    return value


def _int256(word: str) -> int:
    value = int(word, 16)
    return value - (1 << 256) if value >= _INT256_HALF else value


def event_name(topics: Sequence[str]) -> EventName | None:
    """The event a log's topic0 names, if it is one decoded here."""
    return TOPICS.get(str(topics[0]).strip().lower()) if topics else None


def decode_event(address: str, topics: Sequence[str], data: str) -> DecodedEvent | None:
    """Decode a log; ``None`` when its topic0 is not one of :data:`SIGNATURES` (or is ``Transfer``).

    Raises InputError when the log has the topic but not the event's shape.
    """
    name = event_name(topics)
    if name is None:
        return None
    n_topics, n_words = _SHAPES[name]
    if len(topics) != n_topics:
        raise InputError(f"{name.value}: {len(topics)} topics where the event has {n_topics}")
    emitter = parse_address(address, "log address")
    t = [_topic_word(x, name) for x in topics[1:]]
    w = _words(data, n_words, name)
    f: dict[str, int | str]
    if name is EventName.UNISWAP_V2_SWAP:
        f = {"sender": _address(t[0], name, "sender"), "to": _address(t[1], name, "to"),
             "amount0_in": int(w[0], 16), "amount1_in": int(w[1], 16),
             "amount0_out": int(w[2], 16), "amount1_out": int(w[3], 16)}
    elif name is EventName.UNISWAP_V3_SWAP:
        f = {"sender": _address(t[0], name, "sender"), "recipient": _address(t[1], name, "recipient"),
             "amount0": _int256(w[0]), "amount1": _int256(w[1]),
             "sqrt_price_x96": _uint(w[2], 160, name, "sqrtPriceX96"),
             "liquidity": _uint(w[3], 128, name, "liquidity")}
    elif name in (EventName.WETH_DEPOSIT, EventName.WETH_WITHDRAWAL):
        f = {"account": _address(t[0], name, "account"), "wad": int(w[0], 16)}
    elif name is EventName.CBRIDGE_SEND:
        f = {"transfer_id": "0x" + w[0], "sender": _address(w[1], name, "sender"),
             "receiver": _address(w[2], name, "receiver"), "token": _address(w[3], name, "token"),
             "amount": int(w[4], 16), "dst_chain_id": _uint(w[5], 64, name, "dstChainId"),
             "nonce": _uint(w[6], 64, name, "nonce"), "max_slippage": _uint(w[7], 32, name, "maxSlippage")}
    elif name is EventName.CBRIDGE_RELAY:
        f = {"transfer_id": "0x" + w[0], "sender": _address(w[1], name, "sender"),
             "receiver": _address(w[2], name, "receiver"), "token": _address(w[3], name, "token"),
             "amount": int(w[4], 16), "src_chain_id": _uint(w[5], 64, name, "srcChainId"),
             "src_transfer_id": "0x" + w[6]}
    elif name is EventName.POOL_DEPOSIT:
        f = {"commitment": "0x" + t[0], "leaf_index": _uint(w[0], 32, name, "leafIndex"),
             "timestamp": int(w[1], 16)}
    else:
        f = {"relayer": _address(t[0], name, "relayer"), "to": _address(w[0], name, "to"),
             "nullifier_hash": "0x" + w[1], "fee": int(w[2], 16)}
    return DecodedEvent(name, emitter, f)


def is_transfer_topic(topics: Sequence[str]) -> bool:
    """True for logs with the ERC-20/721 ``Transfer`` topic."""
    return bool(topics) and str(topics[0]).strip().lower() == TRANSFER_TOPIC


_MEMO_PREFIXES = ("=:", "SWAP:", "s:", "S:", "OUT:", "out:", "REFUND:")


def memo_in_call_data(data: str | bytes) -> str | None:
    """A cross-chain memo (``=:ETH.ETH:0x...``, ``OUT:<txid>``) that call data carries, as raw text or as
    the string argument of a router call (zero-padded ABI), else ``None``."""
    raw = data if isinstance(data, bytes) else _call_bytes(data)
    if not raw:
        return None
    text = raw.decode("latin-1")
    best: str | None = None
    for prefix in _MEMO_PREFIXES:
        at = text.find(prefix)
        while at >= 0:
            end = at
            while end < len(text) and 0x20 <= ord(text[end]) < 0x7F:
                end += 1
            candidate = text[at:end]
            if (at == 0 or not (0x20 <= ord(text[at - 1]) < 0x7F)) and len(candidate) > len(prefix):
                if best is None or len(candidate) > len(best):
                    best = candidate
            at = text.find(prefix, at + 1)
    return best


def _call_bytes(data: str) -> bytes:
    text = (data or "").strip()
    text = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""
