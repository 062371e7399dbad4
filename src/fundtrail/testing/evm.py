"""Builders of synthetic EVM chains: ABI-encoded event logs and account batches the store ingests.

The logs are encoded the way Solidity encodes events (indexed values in topics, the rest as 32-byte words
in data), with topic0 computed from the signatures (:data:`~fundtrail.chains.evm.events.TOPIC_OF`). The
same shapes as the builders of ``tests/analysis/test_conversions.py``, for generated worlds and benchmarks.
"""

from __future__ import annotations

from fundtrail.chains.evm.events import TOPIC_OF, EventName
from fundtrail.domain.records import AccountBatch, BlockRecord, PayloadKind

ZERO = "0x" + "0" * 40


def word(value: int | str) -> str:
    """One 32-byte ABI word: an int (two's complement when negative), an address or a bytes32."""
    if isinstance(value, int):
        return f"{value % 2**256:064x}"
    return value.lower().removeprefix("0x").rjust(64, "0")


def topic(value: int | str) -> str:
    """An indexed value as a topic."""
    return "0x" + word(value)


def data(*values: int | str) -> str:
    """Non-indexed values as log data."""
    return "0x" + "".join(word(v) for v in values)


class EvmBuilder:
    """One EVM chain built transaction by transaction, with a clock (seconds) and unique hashes.

    Each transaction starts a new block when the clock moved since the last one. Hashes are
    ``0x<salt><counter>`` so two builders with different salts never collide.
    """

    def __init__(self, chain: str, start_time: int, salt: int) -> None:
        self.batch = AccountBatch(chain=chain)
        self.chain = chain
        self.clock = start_time
        self.salt = salt
        self.height = 0
        self.block_time = -1
        self.n = 0

    def _hash(self, kind: int) -> str:
        return f"0x{self.salt:08x}{kind:02x}{self.n:054x}"

    def tx(
        self,
        sender: str,
        to: str,
        value: int = 0,
        *,
        wait: int = 12,
        gas_price: int = 0,
        memo: str | None = None,
    ) -> str:
        """A transaction paying ``value`` native from ``sender`` to ``to``, ``wait`` s after the last."""
        self.clock += wait
        if self.clock != self.block_time:
            self.height += 1
            self.block_time = self.clock
            self.batch.blocks.append(
                BlockRecord(
                    self.chain, self.height, f"0x{self.salt:08x}ff{self.height:054x}", None, self.clock, 1
                )
            )
        self.n += 1
        h = self._hash(0)
        self.batch.add_tx(h, self.height, self.clock, self.n, fee=0, status=True)
        self.batch.add_transfer(h, self.height, self.clock, 0, "native", "native", sender, to, value)
        if gas_price:
            self.batch.payloads.add(h, self.height, 0, PayloadKind.GAS_PRICE, str(gas_price))
        if memo:
            self.batch.payloads.add(h, self.height, 0, PayloadKind.MEMO, memo)
        return h

    def token(self, h: str, index: int, token: str, frm: str, to: str, value: int) -> None:
        """An ERC-20 transfer inside the last transaction ``h``."""
        self.batch.add_transfer(h, self.height, self.clock, index, "token", token, frm, to, value)

    def internal(self, h: str, index: int, frm: str, to: str, value: int) -> None:
        """A native internal transfer inside the last transaction ``h``."""
        self.batch.add_transfer(h, self.height, self.clock, index, "internal", "native", frm, to, value)

    def log(self, h: str, index: int, address: str, topics: list[str], payload: str) -> None:
        """An event log of the last transaction ``h``."""
        self.batch.logs.add(h, self.height, index, address, topics, payload)

    # ---- the events conversions are read from

    def v2_swap(
        self,
        trader: str,
        router: str,
        pair: str,
        token_in: str,
        value_in: int,
        token_out: str,
        value_out: int,
        *,
        wait: int = 12,
    ) -> str:
        """A Uniswap-v2 swap: ``trader`` pays ``value_in`` into ``pair``, which pays ``value_out`` back."""
        h = self.tx(trader, router, wait=wait)
        self.token(h, 1, token_in, trader, pair, value_in)
        self.token(h, 2, token_out, pair, trader, value_out)
        self.log(
            h,
            3,
            pair,
            [TOPIC_OF[EventName.UNISWAP_V2_SWAP], topic(router), topic(trader)],
            data(value_in, 0, 0, value_out),
        )
        return h

    def v3_swap(
        self,
        trader: str,
        router: str,
        pool: str,
        token_in: str,
        value_in: int,
        token_out: str,
        value_out: int,
        *,
        wait: int = 12,
    ) -> str:
        """A Uniswap-v3 swap (amount0 in, amount1 out, as signed ints)."""
        h = self.tx(trader, router, wait=wait)
        self.token(h, 1, token_in, trader, pool, value_in)
        self.token(h, 2, token_out, pool, trader, value_out)
        self.log(
            h,
            3,
            pool,
            [TOPIC_OF[EventName.UNISWAP_V3_SWAP], topic(router), topic(trader)],
            data(value_in, -value_out, 2**96, 10**18, 0),
        )
        return h

    def wrap(self, who: str, weth: str, value: int, *, wait: int = 12) -> str:
        """WETH ``Deposit``: native into the wrapped-native contract."""
        h = self.tx(who, weth, value, wait=wait)
        self.log(h, 1, weth, [TOPIC_OF[EventName.WETH_DEPOSIT], topic(who)], data(value))
        self.token(h, 2, weth, ZERO, who, value)
        return h

    def cbridge_send(
        self,
        sender: str,
        bridge: str,
        receiver: str,
        token: str,
        value: int,
        transfer_id: str,
        dst_chain_id: int,
        *,
        wait: int = 12,
    ) -> str:
        """A cBridge ``Send`` backed by the token moving into the bridge."""
        h = self.tx(sender, bridge, wait=wait)
        self.token(h, 1, token, sender, bridge, value)
        self.log(
            h,
            2,
            bridge,
            [TOPIC_OF[EventName.CBRIDGE_SEND]],
            data(transfer_id, sender, receiver, token, value, dst_chain_id, 1, 3000),
        )
        return h

    def cbridge_relay(
        self,
        relayer: str,
        bridge: str,
        sender: str,
        receiver: str,
        token: str,
        value: int,
        relay_id: str,
        src_transfer_id: str,
        src_chain_id: int,
        *,
        wait: int = 12,
    ) -> str:
        """A cBridge ``Relay`` paying ``receiver``; ``src_transfer_id`` names the Send it answers."""
        h = self.tx(relayer, bridge, wait=wait)
        self.token(h, 1, token, bridge, receiver, value)
        self.log(
            h,
            2,
            bridge,
            [TOPIC_OF[EventName.CBRIDGE_RELAY]],
            data(relay_id, sender, receiver, token, value, src_chain_id, src_transfer_id),
        )
        return h

    def pool_deposit(
        self, who: str, pool: str, value: int, commitment: str, leaf: int, *, gas_price: int, wait: int = 12
    ) -> str:
        """A Tornado-style ``Deposit`` of the pool's denomination."""
        h = self.tx(who, pool, value, wait=wait, gas_price=gas_price)
        self.log(h, 1, pool, [TOPIC_OF[EventName.POOL_DEPOSIT], topic(commitment)], data(leaf, self.clock))
        return h

    def pool_withdraw(
        self,
        sender: str,
        pool: str,
        to: str,
        value: int,
        nullifier: str,
        *,
        relayer: str = ZERO,
        fee: int = 0,
        gas_price: int,
        wait: int = 12,
    ) -> str:
        """A ``Withdrawal`` paying ``to`` the denomination less ``fee`` (to ``relayer``)."""
        h = self.tx(sender, pool, wait=wait, gas_price=gas_price)
        self.internal(h, 1, pool, to, value - fee)
        if fee:
            self.internal(h, 2, pool, relayer, fee)
        self.log(h, 3, pool, [TOPIC_OF[EventName.POOL_WITHDRAWAL], topic(relayer)], data(to, nullifier, fee))
        return h
