"""Cross-chain worlds: swaps, bridges and mixing pools on several chains, with ground truth, and their scores.

A cross-chain world is generated as the batches the chain store ingests (``btc`` as a
:class:`~fundtrail.domain.records.UtxoBatch`, ``eth``, ``bsc`` and ``polygon`` as
:class:`~fundtrail.domain.records.AccountBatch` es with the event logs conversions are decoded from),
plus tags (exchanges' deposit addresses, DEX pairs, pools, a generic bridge) and the ground truth:

* every true conversion (kind, rule, in and out transaction): Uniswap-v2 and v3 swaps, WETH wraps,
  aggregator trades (``tx-net-flow``), cBridge transfers (eth > bsc, bsc > polygon), THORChain-style memos
  (btc > eth) and lock/mint transfers of a generic bridge (bsc > polygon), next to look-alike events
  (a ``Swap`` of an untagged contract with no tokens moving, a ``Relay`` without its ``Send``);
* every true pool link (deposit, withdrawal) and the heuristics that can link it by construction:
  the same address, linked addresses (the depositor paid the recipient before), a rare gas price
  (a non-relayed withdrawal paying the depositor's odd gas price), several denominations (one
  depositor's mix of pools repeated by one recipient) and timing with a small anonymity set (a quiet
  pool); and unlinkable users (relayed withdrawals to fresh addresses, a common gas price, a long delay,
  a busy pool), whose links no heuristic should claim;
* cash-out cases with seeds and the exchange deposits where the money ended: a hack laundered through a
  pool, a wrap, a swap and a bridge (eth > bsc); a ransom paid in BTC swapped by memo to ETH, swapped and
  bridged to BSC; a theft on BSC moved by lock/mint to Polygon; a hack through an unlinkable pool
  withdrawal (the trace should stop at the pool: its cash-out recall is 0 by design); and a ransom paid in
  BTC to a memo swap service for native ETH, put through a pool (withdrawal linked by linked addresses),
  swapped on a DEX and bridged to BSC (generated last, so the rest of the world is as before).

:func:`evaluate_cross_chain` detects the conversions and scores each rule (precision, recall) and each pool
heuristic, and traces every case under each taint policy (cash-out recall by count and by value).
The same seed gives the same world and the same scores.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fundtrail.chains.evm.events import TOPIC_OF, EventName
from fundtrail.domain.addresses import segwit_address
from fundtrail.domain.records import AccountBatch, BlockRecord, PayloadKind, UtxoBatch
from fundtrail.errors import InputError
from fundtrail.intel.attribution import SERVICE_CATEGORIES
from fundtrail.intel.tagpacks import tagpack_files  # noqa: F401  (registers the actors table)
from fundtrail.scenarios.evaluate import POLICIES, SetScores, spread
from fundtrail.store.chainstore import ChainStore
from fundtrail.testing.evm import ZERO, EvmBuilder, data, topic

EVM_CHAINS: dict[str, int] = {"eth": 1, "bsc": 56, "polygon": 137}
"""The EVM chains of a cross-chain world and their chain ids."""
START_TIME = 1_713_571_767
GWEI = 10**9
COMMON_GAS = 20 * GWEI
ETHER = 10**18

SWAP_RULES = ("uniswap-v2-swap", "uniswap-v3-swap", "weth-wrap", "tx-net-flow")
BRIDGE_RULES = ("cbridge-transfer-id", "thorchain-memo", "lock-mint")
POOL_RULES = (
    "pool-same-address",
    "pool-linked-addresses",
    "pool-unique-gas-price",
    "pool-multi-denomination",
    "pool-timing",
)
CASE_KINDS = (
    "hack-pool-swap-bridge",
    "ransom-btc-memo-bridge",
    "theft-lock-mint",
    "hack-unlinkable-pool",
    "ransom-btc-service-pool-dex-bridge",
)


@dataclass(frozen=True, slots=True)
class CrossChainConfig:
    """What decides a cross-chain world (per EVM chain: noise, swaps, bridges; pool users per heuristic)."""

    seed: int
    noise: int = 600
    swaps: int = 40
    bridges: int = 8
    pool_users: int = 6
    cases: int = 3

    @classmethod
    def for_size(cls, size: str, seed: int) -> CrossChainConfig:
        """``small`` (about 3,000 transactions) or ``medium`` (about 25,000)."""
        if seed < 0:
            raise InputError(f"the seed must be >= 0, not {seed}")
        if size == "small":
            return cls(seed)
        if size == "medium":
            return cls(seed, noise=6_000, swaps=600, bridges=60, pool_users=30, cases=8)
        raise InputError(f"cross-chain worlds come in sizes small and medium, not {size!r}")


@dataclass(frozen=True, slots=True)
class TrueConversion:
    """A conversion the world made: the rule that should find it and its two transactions."""

    rule: str
    in_chain: str
    in_txid: str
    out_chain: str
    out_txid: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What a detected conversion must match."""
        return (self.in_chain, self.in_txid, self.out_chain, self.out_txid)


@dataclass(frozen=True, slots=True)
class TruePoolLink:
    """A deposit and the withdrawal that spent it; ``heuristics`` can link them (empty: unlinkable)."""

    chain: str
    deposit: str
    withdrawal: str
    heuristics: tuple[str, ...]
    owner: str = ""
    """The depositor: a link to any deposit of the same owner is right (its deposits are interchangeable)."""


@dataclass(frozen=True, slots=True)
class CashOut:
    """Value that reached an exchange's deposit address."""

    chain: str
    address: str
    exchange: str
    asset: str
    value: int


@dataclass(frozen=True, slots=True)
class Case:
    """A laundering case: where the trace starts and where the money really went."""

    kind: str
    chain: str
    seeds: tuple[str, ...]
    cash_outs: tuple[CashOut, ...]


@dataclass
class CrossChainWorld:
    """The batches, tags and ground truth of one cross-chain world."""

    seed: int
    batches: list[UtxoBatch | AccountBatch] = field(default_factory=list)
    tags: list[tuple[str, str, str, str]] = field(default_factory=list)  # chain, address, label, category
    conversions: list[TrueConversion] = field(default_factory=list)
    pool_links: list[TruePoolLink] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)

    @property
    def transactions(self) -> int:
        """Transactions on every chain."""
        return sum(b.tx_count for b in self.batches)

    def load(self, store: ChainStore) -> None:
        """Write the batches and the tags into ``store`` (every tag's category is a service's)."""
        assert all(category in SERVICE_CATEGORIES for *_, category in self.tags)
        for batch in self.batches:
            store.write_batch(batch)
        for chain, address, label, category in self.tags:
            store.con.execute(
                "INSERT INTO tags (chain, address, label, category, jurisdiction, confidence_level, source) "
                "VALUES (?, ?, ?, ?, NULL, 80, 'fundtrail-scenario')",
                [chain, address, label, category],
            )

    def truth_dict(self) -> dict[str, Any]:
        """The ground truth as JSON (amounts as strings)."""
        return {
            "seed": self.seed,
            "transactions": self.transactions,
            "conversions": [
                {"rule": c.rule, "in": [c.in_chain, c.in_txid], "out": [c.out_chain, c.out_txid]}
                for c in self.conversions
            ],
            "pool_links": [
                {
                    "chain": p.chain,
                    "deposit": p.deposit,
                    "withdrawal": p.withdrawal,
                    "heuristics": list(p.heuristics),
                }
                for p in self.pool_links
            ],
            "cases": [
                {
                    "kind": c.kind,
                    "chain": c.chain,
                    "seeds": list(c.seeds),
                    "cash_outs": [
                        {
                            "chain": o.chain,
                            "address": o.address,
                            "exchange": o.exchange,
                            "asset": o.asset,
                            "value": str(o.value),
                        }
                        for o in c.cash_outs
                    ],
                }
                for c in self.cases
            ],
        }


# ------------------------------------------------------------------------------------------ generation


class _Gen:
    """Builds one world; every random choice comes from one seeded generator."""

    def __init__(self, config: CrossChainConfig) -> None:
        self.c = config
        self.rng = random.Random(config.seed)
        self.world = CrossChainWorld(config.seed)
        self.b = {
            chain: EvmBuilder(chain, START_TIME, salt=(config.seed % 2**20) * 16 + i + 1)
            for i, chain in enumerate(EVM_CHAINS)
        }
        self.btc = UtxoBatch(chain="btc")
        self.btc_height = 0
        self.users = [self.fresh() for _ in range(200)]
        self.tokens = {
            chain: {"usdt": self.fresh(), "weth": self.fresh(), "dai": self.fresh()} for chain in EVM_CHAINS
        }
        self.contracts: dict[str, dict[str, str]] = {}
        for chain in EVM_CHAINS:
            k = {
                name: self.fresh()
                for name in (
                    "router",
                    "pair_a",
                    "pair_b",
                    "v3",
                    "agg",
                    "cbridge",
                    "bridge",
                    "thor",
                    "relayer",
                    "pool_big",
                    "pool_small",
                )
            }
            self.contracts[chain] = k
            for name in ("pair_a", "pair_b", "v3"):
                self.tag(chain, k[name], f"DEX pair {name}", "defi_dex")
            self.tag(chain, k["cbridge"], "cBridge", "bridge")
            self.tag(chain, k["bridge"], "Generic Bridge", "bridge")
            self.tag(chain, k["pool_big"], "Pool big", "mixing_service")
            self.tag(chain, k["pool_small"], "Pool small", "mixing_service")
        self.exchanges = ("Harbour Exchange", "Northwind Markets")
        self.leaf: dict[str, int] = defaultdict(int)

    # ---- small helpers

    def fresh(self) -> str:
        return f"0x{self.rng.getrandbits(160):040x}"

    def h32(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def tag(self, chain: str, address: str, label: str, category: str) -> None:
        self.world.tags.append((chain, address, label, category))

    def truth(self, rule: str, in_chain: str, in_txid: str, out_chain: str, out_txid: str) -> None:
        self.world.conversions.append(TrueConversion(rule, in_chain, in_txid, out_chain, out_txid))

    def deposit_address(self, chain: str) -> tuple[str, str]:
        address, exchange = self.fresh(), self.rng.choice(self.exchanges)
        self.tag(chain, address, exchange, "exchange")
        return address, exchange

    def sync(self, dst: str, src: str, delay: int) -> None:
        """Move ``dst``'s clock to ``delay`` seconds after ``src``'s (bridged value arrives later)."""
        b = self.b[dst]
        b.clock = max(b.clock, self.b[src].clock + delay)

    def noise(self, n: int) -> None:
        """Plain native and token payments between users, and deposits at exchanges."""
        for _ in range(n):
            chain = self.rng.choice(tuple(EVM_CHAINS))
            b = self.b[chain]
            a, z = self.rng.sample(self.users, 2)
            roll = self.rng.random()
            if roll < 0.5:
                b.tx(
                    a,
                    z,
                    self.rng.randint(1, 50) * ETHER // 100,
                    wait=self.rng.randint(1, 20),
                    gas_price=COMMON_GAS,
                )
            elif roll < 0.85:
                h = b.tx(a, self.tokens[chain]["usdt"], wait=self.rng.randint(1, 20), gas_price=COMMON_GAS)
                b.token(h, 1, self.tokens[chain]["usdt"], a, z, self.rng.randint(1, 10_000) * 10**6)
            else:
                dep, _ = self.deposit_address(chain)
                b.tx(a, dep, self.rng.randint(1, 50) * ETHER // 100, wait=self.rng.randint(1, 20))

    def swap(self, chain: str, trader: str, give: str, value: int, get: str, kind: str) -> tuple[str, int]:
        """One swap of ``kind`` (v2, v3, wrap, agg) by ``trader``; (txid, value out)."""
        b, k, t = self.b[chain], self.contracts[chain], self.tokens[chain]
        out = value * self.rng.randint(900, 999) // 1000
        if kind == "wrap":
            h = b.wrap(trader, t["weth"], value)
            self.truth("weth-wrap", chain, h, chain, h)
            return h, value
        if kind == "agg":
            h = b.tx(trader, k["agg"], value, gas_price=COMMON_GAS)
            b.token(h, 1, get, k["agg"], trader, out)
            self.truth("tx-net-flow", chain, h, chain, h)
            return h, out
        if kind == "v3":
            h = b.v3_swap(trader, k["router"], k["v3"], give, value, get, out)
            self.truth("uniswap-v3-swap", chain, h, chain, h)
            return h, out
        pair = k["pair_a"] if give == t["weth"] or get == t["weth"] else k["pair_b"]
        h = b.v2_swap(trader, k["router"], pair, give, value, get, out)
        self.truth("uniswap-v2-swap", chain, h, chain, h)
        return h, out

    def cbridge(
        self, src: str, dst: str, sender: str, receiver: str, token: str, value: int, dst_token: str
    ) -> tuple[str, str, int]:
        """A cBridge transfer; (send txid, relay txid, value received)."""
        tid = self.h32()
        s = self.b[src].cbridge_send(
            sender, self.contracts[src]["cbridge"], receiver, token, value, tid, EVM_CHAINS[dst]
        )
        self.sync(dst, src, self.rng.randint(60, 600))
        got = value * self.rng.randint(990, 999) // 1000
        r = self.b[dst].cbridge_relay(
            self.contracts[dst]["relayer"],
            self.contracts[dst]["cbridge"],
            sender,
            receiver,
            dst_token,
            got,
            self.h32(),
            tid,
            EVM_CHAINS[src],
        )
        self.truth("cbridge-transfer-id", src, s, dst, r)
        return s, r, got

    def lock_mint(self, src: str, dst: str, who: str, value: int) -> tuple[str, str, int]:
        """A generic bridge: lock USDT on ``src``, released to the same address on ``dst``."""
        bs, bd = self.b[src], self.b[dst]
        s = bs.tx(who, self.contracts[src]["bridge"], gas_price=COMMON_GAS)
        bs.token(s, 1, self.tokens[src]["usdt"], who, self.contracts[src]["bridge"], value)
        self.sync(dst, src, self.rng.randint(300, 1800))
        got = value * self.rng.randint(990, 999) // 1000
        r = bd.tx(self.contracts[dst]["relayer"], self.contracts[dst]["bridge"])
        bd.token(r, 1, self.tokens[dst]["usdt"], self.contracts[dst]["bridge"], who, got)
        self.truth("lock-mint", src, s, dst, r)
        return s, r, got

    def btc_tx(self, t: int) -> tuple[str, int]:
        self.btc_height += 1
        self.btc.blocks.append(BlockRecord("btc", self.btc_height, self.h32(), None, t, 2))
        return self.h32(), self.btc_height

    # ---- the typologies

    def swaps(self) -> None:
        kinds = ("v2", "v2", "v3", "wrap", "agg")
        for i in range(self.c.swaps * len(EVM_CHAINS)):
            chain = tuple(EVM_CHAINS)[i % len(EVM_CHAINS)]
            t = self.tokens[chain]
            kind = self.rng.choice(kinds)
            trader = self.rng.choice(self.users)
            give, get = (
                ("native", t["usdt"])
                if kind == "agg"
                else self.rng.choice(((t["weth"], t["usdt"]), (t["usdt"], t["dai"]), (t["dai"], t["weth"])))
            )
            self.swap(chain, trader, give, self.rng.randint(1, 1000) * 10**15, get, kind)
            if i % 10 == 0:  # a look-alike: an untagged contract emits Swap, nothing moves
                b = self.b[chain]
                fake = self.fresh()
                h = b.tx(trader, fake)
                b.log(
                    h,
                    0,
                    fake,
                    [
                        TOPIC_OF[EventName.UNISWAP_V2_SWAP],
                        topic(self.contracts[chain]["router"]),
                        topic(trader),
                    ],
                    data(5, 0, 0, 4),
                )
            self.noise(2)

    def bridges(self) -> None:
        for _ in range(self.c.bridges):
            who = self.rng.choice(self.users)
            value = self.rng.randint(10, 5000) * 10**6
            self.cbridge(
                "eth", "bsc", who, who, self.tokens["eth"]["usdt"], value, self.tokens["bsc"]["usdt"]
            )
            self.cbridge(
                "bsc",
                "polygon",
                who,
                self.rng.choice(self.users),
                self.tokens["bsc"]["usdt"],
                value,
                self.tokens["polygon"]["usdt"],
            )
            self.lock_mint("bsc", "polygon", self.rng.choice(self.users), value)
            self.noise(3)
        # a Relay whose Send is not in the store: never a conversion
        b = self.b["bsc"]
        b.cbridge_relay(
            self.contracts["bsc"]["relayer"],
            self.contracts["bsc"]["cbridge"],
            self.users[0],
            self.users[1],
            self.tokens["bsc"]["usdt"],
            1,
            self.h32(),
            self.h32(),
            1,
        )

    def memo_swap(
        self, sender_value: int, dest: str, token: str, native: int | None = None
    ) -> tuple[str, str, str, int]:
        """A BTC payment with a ``=:ETH.USDT-<token>:<dest>`` memo answered on eth; (seed, in, out, value).

        With ``native``, the memo asks for ``ETH.ETH`` and the answer pays ``native`` wei to ``dest``."""
        src, vault = (segwit_address("btc", 0, self.rng.randbytes(20)) for _ in range(2))
        t = self.b["eth"].clock
        cb, height = self.btc_tx(t)
        self.btc.add_tx(cb, height, t, 0, coinbase=True)
        self.btc.add_output(cb, 0, src, sender_value, "p2wpkh")
        tx = self.h32()
        self.btc.add_tx(tx, height, t, 1, fee=0)
        self.btc.add_input(tx, 0, cb, 0, address=src, value=sender_value)
        self.btc.add_output(tx, 0, vault, sender_value, "p2wpkh")
        self.btc.add_output(tx, 1, None, 0, "nulldata")
        asset = "ETH.ETH" if native is not None else f"ETH.USDT-{token}"
        self.btc.payloads.add(tx, height, 1, PayloadKind.OP_RETURN, f"=:{asset}:{dest}".encode().hex())
        b = self.b["eth"]
        b.clock += self.rng.randint(600, 1800)
        if native is not None:
            got = native
            h = b.tx(self.contracts["eth"]["thor"], dest, got, memo="OUT:" + tx.upper())
        else:
            got = sender_value * 600  # BTC sats to USDT base units (6 decimals) at a made-up rate
            h = b.tx(self.contracts["eth"]["thor"], dest, memo="OUT:" + tx.upper())
            b.token(h, 1, token, self.contracts["eth"]["thor"], dest, got)
        self.truth("thorchain-memo", "btc", tx, "eth", h)
        return src, tx, h, got

    def pools(self) -> list[tuple[str, str, int]]:
        """The pool users on eth (busy pools) and bsc (a quiet pool); returns the hack cases' seeds."""
        eth, k = self.b["eth"], self.contracts["eth"]
        big, small = 10 * ETHER, 1 * ETHER
        n = self.c.pool_users
        # who deposits what; each plan: (heuristic, depositor, recipient, pools)
        plans: list[dict[str, Any]] = []
        for h in (
            "pool-same-address",
            "pool-linked-addresses",
            "pool-unique-gas-price",
            "pool-multi-denomination",
            "",
        ):
            for i in range(n):
                dep = self.fresh()
                to = dep if h == "pool-same-address" else self.fresh()
                pools = (
                    [k["pool_big"]] + [k["pool_small"]] * (i + 1)
                    if h == "pool-multi-denomination"
                    else [k["pool_big"]]
                )
                plans.append({"h": h, "dep": dep, "to": to, "pools": pools, "deps": []})
        # background depositors who never withdraw in the world: a large anonymity set
        for _ in range(4 * n):
            eth.pool_deposit(
                self.fresh(), k["pool_big"], big, self.h32(), self._leaf(k["pool_big"]), gas_price=COMMON_GAS
            )
            eth.pool_deposit(
                self.fresh(),
                k["pool_small"],
                small,
                self.h32(),
                self._leaf(k["pool_small"]),
                gas_price=COMMON_GAS,
            )
        # hack cases: stolen from a victim, deposited, withdrawn linked (or not) to the thief's own address
        hacks: list[tuple[str, str, int]] = []
        for i in range(2 * self.c.cases):
            thief, victim = self.fresh(), self.fresh()
            linkable = i % 2 == 0
            to = self.fresh()
            if linkable:
                eth.tx(thief, to, ETHER // 100, gas_price=COMMON_GAS)  # the thief paid his cash-out address
            eth.tx(victim, thief, big, gas_price=COMMON_GAS)
            plans.append(
                {
                    "h": "pool-linked-addresses" if linkable else "",
                    "dep": thief,
                    "to": to,
                    "pools": [k["pool_big"]],
                    "deps": [],
                    "case": "hack-pool-swap-bridge" if linkable else "hack-unlinkable-pool",
                }
            )
            hacks.append((thief, to, i))
        for p in plans:
            if p["h"] == "pool-linked-addresses" and "case" not in p:
                eth.tx(p["dep"], p["to"], ETHER // 50, gas_price=COMMON_GAS)
                self.noise(1)
        self.rng.shuffle(plans)
        odd_prices = self.rng.sample(range(1, 10**6), len(plans))
        multi = [p for p in plans if p["h"] == "pool-multi-denomination"]
        for i, p in enumerate(plans):
            if p["h"] == "pool-multi-denomination":
                continue
            p["gas"] = 21 * GWEI + odd_prices[i] * 997 if p["h"] == "pool-unique-gas-price" else COMMON_GAS
            for pool in p["pools"]:
                p["deps"].append(
                    eth.pool_deposit(
                        p["dep"],
                        pool,
                        big,
                        self.h32(),
                        self._leaf(pool),
                        gas_price=p["gas"],
                        wait=self.rng.randint(30, 900),
                    )
                )
            self.noise(2)
        for p in multi:  # late: their withdrawals must follow within a day
            p["gas"] = COMMON_GAS
            for pool in p["pools"]:
                value = big if pool == k["pool_big"] else small
                p["deps"].append(
                    eth.pool_deposit(
                        p["dep"],
                        pool,
                        value,
                        self.h32(),
                        self._leaf(pool),
                        gas_price=COMMON_GAS,
                        wait=self.rng.randint(30, 300),
                    )
                )
        eth.clock += 2 * 3600  # nothing withdrawn within the hour after a deposit: no timing links here
        for p in multi + [p for p in plans if p["h"] != "pool-multi-denomination"]:
            relayed = p["h"] in ("pool-linked-addresses", "pool-multi-denomination", "")
            wait = (
                self.rng.randint(30, 600)
                if p["h"] == "pool-multi-denomination"
                else self.rng.randint(60, 3600)
            )
            p["wds"] = []
            for pool, dep in zip(p["pools"], p["deps"], strict=True):
                value = big if pool == k["pool_big"] else small
                fee = value // 200 if relayed else 0
                gas = 37 * GWEI if relayed else p["gas"] if p["h"] == "pool-unique-gas-price" else 30 * GWEI
                w = eth.pool_withdraw(
                    k["relayer"] if relayed else p["to"],
                    pool,
                    p["to"],
                    value,
                    self.h32(),
                    relayer=k["relayer"] if relayed else ZERO,
                    fee=fee,
                    gas_price=gas,
                    wait=wait,
                )
                p["wds"].append(w)
                self.world.pool_links.append(
                    TruePoolLink("eth", dep, w, (p["h"],) if p["h"] else (), p["dep"])
                )
            self.noise(1)
        self.timing_pool()
        return [(p["dep"], p["to"], int(p["case"] == "hack-pool-swap-bridge")) for p in plans if "case" in p]

    def _leaf(self, pool: str) -> int:
        self.leaf[pool] += 1
        return self.leaf[pool] - 1

    def timing_pool(self) -> None:
        """A quiet pool on bsc: deposits withdrawn minutes later, one (or two) at a time."""
        b, k = self.b["bsc"], self.contracts["bsc"]
        pool, value = k["pool_small"], 100 * ETHER
        for i in range(self.c.pool_users):
            together = 2 if i % 3 == 2 else 1
            deps: list[str] = []
            for j in range(together):
                wait = self.rng.randint(3 * 3600, 6 * 3600) if j == 0 else self.rng.randint(60, 600)
                deps.append(
                    b.pool_deposit(
                        self.fresh(), pool, value, self.h32(), self._leaf(pool), gas_price=5 * GWEI, wait=wait
                    )
                )
            for dep in deps:
                w = b.pool_withdraw(
                    k["relayer"],
                    pool,
                    self.fresh(),
                    value,
                    self.h32(),
                    relayer=k["relayer"],
                    fee=value // 200,
                    gas_price=5 * GWEI,
                    wait=self.rng.randint(120, 1200),
                )
                self.world.pool_links.append(TruePoolLink("bsc", dep, w, ("pool-timing",), dep))
            self.noise(2)

    def cash_out(
        self, kind: str, seed_chain: str, seed: str, chain: str, sender: str, token: str, value: int
    ) -> None:
        """``sender`` pays ``value`` of ``token`` to an exchange deposit address on ``chain``: the end of a
        laundering case that started at ``seed`` on ``seed_chain``."""
        dep, exchange = self.deposit_address(chain)
        b = self.b[chain]
        h = b.tx(sender, token, gas_price=COMMON_GAS, wait=self.rng.randint(60, 900))
        b.token(h, 1, token, sender, dep, value)
        cash_out = CashOut(chain, dep, exchange, token, value)
        self.world.cases.append(Case(kind, seed_chain, (seed,), (cash_out,)))

    def cases(self, hacks: Sequence[tuple[str, str, int]]) -> None:
        """The laundering paths after the pools, and the memo and lock/mint cases."""
        t = self.tokens["eth"]
        for thief, cash, linkable in hacks:
            # the pool paid ``cash`` 10 ETH less the relayer's fee
            value = 10 * ETHER - 10 * ETHER // 200
            self.swap("eth", cash, "native", value, t["weth"], "wrap")
            _, usdt = self.swap("eth", cash, t["weth"], value, t["usdt"], "v2")
            if linkable:
                _, _, got = self.cbridge(
                    "eth", "bsc", cash, cash, t["usdt"], usdt, self.tokens["bsc"]["usdt"]
                )
                bsc_usdt = self.tokens["bsc"]["usdt"]
                self.cash_out("hack-pool-swap-bridge", "eth", thief, "bsc", cash, bsc_usdt, got)
            else:
                self.cash_out("hack-unlinkable-pool", "eth", thief, "eth", cash, t["usdt"], usdt)
            self.noise(3)
        for _ in range(self.c.cases):
            dest = self.fresh()
            src, _, _, got = self.memo_swap(self.rng.randint(10**6, 10**8), dest, t["usdt"])
            _, weth = self.swap("eth", dest, t["usdt"], got, t["weth"], "v3")
            receiver = self.fresh()
            _, _, arrived = self.cbridge(
                "eth", "bsc", dest, receiver, t["weth"], weth, self.tokens["bsc"]["weth"]
            )
            self.cash_out(
                "ransom-btc-memo-bridge", "btc", src, "bsc", receiver, self.tokens["bsc"]["weth"], arrived
            )
            self.noise(3)
        for _ in range(self.c.cases):
            thief, victim = self.fresh(), self.fresh()
            b = self.b["bsc"]
            value = self.rng.randint(10_000, 500_000) * 10**6
            h = b.tx(victim, self.tokens["bsc"]["usdt"], gas_price=COMMON_GAS)
            b.token(h, 1, self.tokens["bsc"]["usdt"], victim, thief, value)
            _, _, got = self.lock_mint("bsc", "polygon", thief, value)
            polygon_usdt = self.tokens["polygon"]["usdt"]
            self.cash_out("theft-lock-mint", "bsc", thief, "polygon", thief, polygon_usdt, got)
            self.noise(3)

    def service_pool_cases(self) -> None:
        """BTC ransoms paid to a memo swap service for ETH, through a pool, a DEX and cBridge to BSC.

        Generated after everything else, so the rest of the world (and its random stream) is unchanged.
        The ETH address pays its cash-out address before depositing (the pool withdrawal is linkable by
        ``pool-linked-addresses``); the withdrawal is relayed (fee 0.5 %) and waits hours (no timing link).
        """
        eth, k, t = self.b["eth"], self.contracts["eth"], self.tokens["eth"]
        big, dust = 10 * ETHER, ETHER // 100
        for _ in range(self.c.cases):
            dest, cash, receiver = self.fresh(), self.fresh(), self.fresh()
            src, _, _, _ = self.memo_swap(self.rng.randint(10**7, 10**8), dest, t["usdt"], native=big + dust)
            eth.tx(dest, cash, dust, gas_price=COMMON_GAS, wait=self.rng.randint(60, 600))
            dep = eth.pool_deposit(
                dest, k["pool_big"], big, self.h32(), self._leaf(k["pool_big"]), gas_price=COMMON_GAS
            )
            fee = big // 200
            w = eth.pool_withdraw(
                k["relayer"],
                k["pool_big"],
                cash,
                big,
                self.h32(),
                relayer=k["relayer"],
                fee=fee,
                gas_price=37 * GWEI,
                wait=self.rng.randint(3 * 3600, 6 * 3600),
            )
            self.world.pool_links.append(TruePoolLink("eth", dep, w, ("pool-linked-addresses",), dest))
            _, usdt = self.swap("eth", cash, "native", big - fee + dust, t["usdt"], "agg")
            _, _, arrived = self.cbridge(
                "eth", "bsc", cash, receiver, t["usdt"], usdt, self.tokens["bsc"]["usdt"]
            )
            self.cash_out(
                "ransom-btc-service-pool-dex-bridge", "btc", src, "bsc", receiver, self.tokens["bsc"]["usdt"],
                arrived,
            )
            self.noise(3)

    def run(self) -> CrossChainWorld:
        self.noise(self.c.noise // 2)
        self.swaps()
        self.bridges()
        hacks = self.pools()
        self.cases(hacks)
        self.noise(self.c.noise // 2)
        self.service_pool_cases()
        self.world.batches = [self.btc, *(b.batch for b in self.b.values())]
        return self.world


def generate_cross_chain(config: CrossChainConfig) -> CrossChainWorld:
    """Generate the cross-chain world of ``config`` (the same config gives the same world)."""
    return _Gen(config).run()


# ------------------------------------------------------------------------------------------ scores


def conversion_metrics(store: ChainStore, world: CrossChainWorld) -> tuple[dict[str, float], dict[str, Any]]:
    """Precision and recall of each conversion rule and each pool heuristic against the ground truth.

    A detected swap or bridge is right when its in and out transactions are a true conversion of that
    rule. A pool link is right when its (deposit, withdrawal) is a true pair, whichever heuristic made the
    world linkable; a heuristic's recall is over the pairs the world made linkable by it. ``pool.any``
    scores every pool link against every withdrawal (unlinkable users included: its recall is bounded).
    """
    from fundtrail.analysis.conversions import list_conversions

    detected = list_conversions(store)
    metrics: dict[str, float] = {}
    counts: dict[str, Any] = {}
    for rule in SWAP_RULES + BRIDGE_RULES:
        expected = {c.key for c in world.conversions if c.rule == rule}
        found = {(c.in_.chain, c.in_.txid, c.out.chain, c.out.txid) for c in detected if c.rule == rule}
        s = SetScores(len(expected & found), len(found), len(expected))
        metrics[f"conversions.{rule}.precision"] = s.precision
        metrics[f"conversions.{rule}.recall"] = s.recall
        counts[rule] = {"true": s.expected, "found": s.found, "right": s.true_positives}
    owner_of = {p.deposit: p.owner for p in world.pool_links}
    true_owner = {p.withdrawal: p.owner for p in world.pool_links}
    true_pairs = {(p.owner, p.withdrawal) for p in world.pool_links}
    every: set[tuple[str, str]] = set()
    for rule in POOL_RULES:
        linkable = {(p.owner, p.withdrawal) for p in world.pool_links if rule in p.heuristics}
        linked = {(owner_of.get(c.in_.txid, c.in_.txid), c.out.txid) for c in detected if c.rule == rule}
        every |= linked
        precision = SetScores(len(linked & true_pairs), len(linked), len(linkable)).precision
        recall = SetScores(len(linkable & linked), len(linked), len(linkable)).recall
        metrics[f"pool.{rule}.precision"] = precision
        metrics[f"pool.{rule}.recall"] = recall
        counts[rule] = {
            "linkable": len(linkable),
            "found": len(linked),
            "right": len(linked & true_pairs),
            "linkable_found": len(linkable & linked),
        }
    assert all(true_owner.get(w) for _, w in true_pairs)
    unlinkable = {(p.owner, p.withdrawal) for p in world.pool_links if not p.heuristics}
    unlinkable_w = {w for _, w in unlinkable}
    s = SetScores(len(every & true_pairs), len(every), len(true_pairs))
    metrics["pool.any.precision"] = s.precision
    metrics["pool.any.recall"] = s.recall
    counts["pool.any"] = {
        "withdrawals": len(true_pairs),
        "linked": len(every),
        "right": s.true_positives,
        "unlinkable": len(unlinkable),
        "unlinkable_claimed": sum(1 for _, w in every if w in unlinkable_w),
    }
    return metrics, counts


def tracing_metrics(
    store: ChainStore, world: CrossChainWorld, policies: Sequence[str] = POLICIES
) -> tuple[dict[str, float], dict[str, Any]]:
    """Cash-out recall of the cross-chain traces per policy: by count (a deposit address credited with
    any value and the right exchange) and by value (value credited, at most the true value, over the true
    value), for all cases and per kind of case. The traces use the defaults (6 owner hops)."""
    from fundtrail.analysis.tracing import trace_funds

    metrics: dict[str, float] = {}
    counts: dict[str, Any] = {}
    for policy in policies:
        tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for case in world.cases:
            doc = trace_funds(store, case.chain, list(case.seeds), policy=policy).to_dict()
            credited: dict[tuple[str, str, str], int] = defaultdict(int)
            for e in doc["endpoints"]:
                if e.get("address") and e.get("entity"):
                    credited[e.get("chain") or case.chain, e["address"], e["entity"]] += int(
                        e["tainted_value"]
                    )
            for o in case.cash_outs:
                got = min(credited.get((o.chain, o.address, o.exchange), 0), o.value)
                for key in ("all", case.kind):
                    t = tally[key]
                    t[0] += 1
                    t[1] += got > 0
                    t[2] += o.value
                    t[3] += got
        for key, (n, found, value, value_found) in tally.items():
            prefix = f"tracing.{policy}" if key == "all" else f"tracing.{policy}.{key}"
            metrics[f"{prefix}.cash_out_recall_count"] = found / n if n else 1.0
            metrics[f"{prefix}.cash_out_recall_value"] = value_found / value if value else 1.0
        counts[policy] = {k: {"cash_outs": v[0], "found": v[1]} for k, v in sorted(tally.items())}
    return metrics, counts


@dataclass(frozen=True)
class CrossChainScores:
    """The scores of one cross-chain world."""

    seed: int
    metrics: dict[str, float]
    counts: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "seed": self.seed,
            "metrics": {k: round(v, 6) for k, v in self.metrics.items()},
            "counts": self.counts,
            "seconds": round(self.seconds, 2),
        }


def evaluate_world(world: CrossChainWorld, policies: Sequence[str] = POLICIES) -> CrossChainScores:
    """Load ``world`` into an in-memory store, detect conversions, score rules, heuristics and traces."""
    from fundtrail.analysis.conversions import detect_conversions

    started = time.perf_counter()
    with ChainStore(":memory:") as store:
        world.load(store)
        report = detect_conversions(store)
        metrics, counts = conversion_metrics(store, world)
        found, counts["tracing"] = tracing_metrics(store, world, policies)
        metrics.update(found)
        counts["skipped"] = dict(report.skipped)
        counts["transactions"] = world.transactions
    return CrossChainScores(world.seed, metrics, counts, time.perf_counter() - started)


def evaluate_cross_chain(worlds: int, seed: int, size: str = "small") -> dict[str, Any]:
    """Generate and score ``worlds`` cross-chain worlds (seeds ``seed`` ..); each metric's spread."""
    if worlds < 1:
        raise InputError(f"--worlds must be at least 1, not {worlds}")
    started = time.perf_counter()
    results = [
        evaluate_world(generate_cross_chain(CrossChainConfig.for_size(size, seed + i))) for i in range(worlds)
    ]
    names: list[str] = []
    for r in results:
        names += [k for k in r.metrics if k not in names]
    return {
        "seed": seed,
        "size": size,
        "worlds": worlds,
        "cross_chain": True,
        "metrics": {n: spread([r.metrics[n] for r in results if n in r.metrics]).to_dict() for n in names},
        "per_world": [r.to_dict() for r in results],
        "seconds": round(time.perf_counter() - started, 1),
    }
