"""The honest economy of a generated world: users, merchants, miners, custodial services and mixers.

Who does what:

* **Mining pools** receive every coinbase (at a reused payout address), pay their hobby-miner members in
  batches and sell most of the rest at an exchange.
* **Exchanges** give each customer a static deposit address, sweep deposits into the hot wallet with
  multi-input consolidations (some sweeps also spend a hot-wallet coin), pay withdrawals from the hot
  wallet (batched at some exchanges; one exchange pays withdrawals one after the other as a peel chain),
  with change back to a reused hot address, and keep a reused cold-storage address.
* **Services**: a payment processor (a fresh invoice address per payment, swept, settled to merchants in
  batches), a casino (static deposit addresses, sweeps, payouts) and a darknet market (static buyer deposit
  addresses, sweeps, batched vendor payouts).
* **Users** keep one script kind per wallet (so address-type change detection has something to find), mostly
  use fresh change addresses, some reuse a static receive address or send change back to an input address;
  they buy at exchanges, pay each other and merchants, gamble, shop at the market, consolidate small coins.
  Privacy-minded users join Wasabi-like CoinJoin rounds and Whirlpool-like pools.
* **CoinJoins**: Wasabi-like rounds (equal outputs near 0.1 BTC, a coordinator fee to a reused coordinator
  address, change per participant) and Whirlpool-like pools (a Tx0 with an OP_RETURN, the pool fee and
  premix outputs; mixes of exactly five inputs and five equal outputs, two new entrants and three remixers).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fundtrail.scenarios import names
from fundtrail.scenarios.dice import Dice
from fundtrail.scenarios.groundtruth import AddressRole, CoinJoinKind, Entity, EntityKind, PeelChain
from fundtrail.scenarios.keys import Key, KeyFactory, ScriptKind
from fundtrail.scenarios.ledger import (
    COIN,
    DUST,
    ChangePolicy,
    Coin,
    Ledger,
    Pay,
    Selection,
    Tx,
    Wallet,
    fee_for,
)

USER_KINDS = (ScriptKind.P2WPKH, ScriptKind.P2SH_P2WPKH, ScriptKind.P2PKH, ScriptKind.P2TR)
USER_KIND_WEIGHTS = (0.45, 0.2, 0.15, 0.2)


def roundish(dice: Dice, value: float, p_round: float = 0.35) -> int:
    """``value`` in satoshi; with probability ``p_round`` rounded to two significant digits (a round sum)."""
    sats = max(int(value), 10_000)
    if dice.chance(p_round):
        digits = int(math.log10(sats)) - 1
        unit = 10 ** max(digits, 0)
        sats = max(unit, round(sats / unit) * unit)
    return sats


@dataclass(eq=False)
class User:
    """A person (or a merchant) with a wallet and habits."""

    entity: Entity
    wallet: Wallet
    wealth: float
    exchanges: list[Exchange] = field(default_factory=list)
    privacy: bool = False
    payjoin: bool = False
    """A merchant whose payment server takes PayJoins (BIP78): it adds a coin of its own to the payer's."""
    premix: Wallet | None = None
    postmix: Wallet | None = None


class Custodian:
    """A service holding customers' coins: per-customer deposit addresses swept into a hot wallet."""

    def __init__(
        self,
        eco: Economy,
        entity: Entity,
        kind: ScriptKind,
        *,
        hot_keys: int = 3,
        sweep_with_hot: float = 0.4,
        sweep_every: int = 3,
    ) -> None:
        self.eco = eco
        self.entity = entity
        self.kind = kind
        self.hot = eco.wallet(
            entity,
            kind,
            role=AddressRole.HOT,
            static_keys=hot_keys,
            change=ChangePolicy.STATIC,
            selection=Selection.LARGEST,
        )
        self.deposits = eco.wallet(entity, kind, role=AddressRole.DEPOSIT, selection=Selection.OLDEST)
        self.deposit_keys: dict[str, Key] = {}
        self.swept: dict[str, Key] = {}
        self.sweep_with_hot = sweep_with_hot
        self.sweep_every = sweep_every
        self.offset = eco.dice.below(sweep_every)

    @property
    def name(self) -> str:
        """The service's name."""
        return self.entity.name

    def deposit_key(self, customer: str) -> Key:
        """The static deposit address of a customer (made on first use)."""
        key = self.deposit_keys.get(customer)
        if key is None:
            key = self.deposits.fresh(AddressRole.DEPOSIT)
            self.deposit_keys[customer] = key
        return key

    def sweep(self, label: str | None = None) -> Tx | None:
        """Consolidate confirmed deposits (and sometimes a small hot-wallet coin) into a hot address."""
        coins = self.deposits.ordered()[:120]
        if not coins:
            return None
        for coin in coins:
            self.swept.setdefault(coin.key.address, coin.key)
        if self.hot.coins and self.eco.dice.chance(self.sweep_with_hot):
            coins.append(min(self.hot.coins.values(), key=lambda c: (c.value, c.uid)))
        return self.eco.ledger.sweep(coins, self.eco.dice.choice(self.hot.static), self.hot, label=label)

    def holdings(self) -> int:
        """Value the service holds on chain."""
        return self.hot.balance + self.deposits.balance


class Exchange(Custodian):
    """A custodial exchange with hot, cold and deposit wallets."""

    def __init__(
        self,
        eco: Economy,
        entity: Entity,
        kind: ScriptKind,
        *,
        peel_withdrawals: bool = False,
        batches: bool = False,
        sweep_with_hot: float = 0.4,
        sweep_every: int = 3,
    ) -> None:
        super().__init__(eco, entity, kind, sweep_with_hot=sweep_with_hot, sweep_every=sweep_every)
        self.cold = eco.wallet(
            entity,
            kind,
            role=AddressRole.COLD,
            static_keys=1,
            static_receive=True,
            change=ChangePolicy.STATIC,
        )
        self.peel_withdrawals = peel_withdrawals
        self.batches = batches
        self._peel_coin: Coin | None = None
        self._peel_txids: list[str] = []

    def holdings(self) -> int:
        """Value the exchange holds on chain (hot, cold and unswept deposits)."""
        return super().holdings() + self.cold.balance

    def withdraw(self, requests: Sequence[Pay], *, label: str | None = None) -> Tx | None:
        """Pay customers' withdrawals from the hot wallet; None when the hot wallet cannot."""
        if self.peel_withdrawals and len(requests) == 1:
            return self._peel(requests[0], label)
        return self.eco.ledger.pay(self.hot, requests, label=label)

    def _peel(self, request: Pay, label: str | None) -> Tx | None:
        eco = self.eco
        need = request.value + eco.ledger.fee([self.kind], [self.kind, self.kind]) + 20 * DUST
        coin = self._peel_coin
        if coin is None or coin.spent or coin.uid not in self.hot.coins or coin.value < need:
            self._close_peel()
            big = [c for c in self.hot.coins.values() if c.value >= 4 * need]
            if not big:
                return eco.ledger.pay(self.hot, [request], label=label)
            coin = max(big, key=lambda c: (c.value, c.uid))
        tx = eco.ledger.pay(
            self.hot, [request], coins=[coin], change_key=self.hot.fresh(AddressRole.HOT), label=label
        )
        if tx is None:
            return None
        self._peel_coin = tx.change
        self._peel_txids.append(tx.txid)
        if tx.change is None:
            self._close_peel()
        return tx

    def _close_peel(self) -> None:
        if len(self._peel_txids) >= 3:
            self.eco.peel_chains.append(PeelChain(self.entity.id, "withdrawals", tuple(self._peel_txids)))
        self._peel_txids = []
        self._peel_coin = None

    def finish(self) -> None:
        """Record the peel chain in progress (end of the world)."""
        self._close_peel()

    def rebalance(self) -> None:
        """Move surplus hot funds to cold storage, or refill a drained hot wallet from it."""
        eco = self.eco
        total = self.holdings()
        if total <= 0:
            return
        if self.hot.balance > 0.6 * total:
            amount = int(self.hot.balance - 0.4 * total)
            if amount > 100 * DUST:
                eco.ledger.pay(self.hot, [Pay(self.cold.static[0], amount, self.cold)], label="cold-storage")
        elif self.hot.balance < 0.15 * total and self.cold.balance > 1000 * DUST:
            coins = list(self.cold.coins.values())
            eco.ledger.pay(
                self.cold,
                [Pay(eco.dice.choice(self.hot.static), self.cold.balance // 2, self.hot)],
                coins=coins,
                label="hot-refill",
            )


class PaymentProcessor(Custodian):
    """Merchants' invoices: a fresh address per payment, swept, settled to merchants in batches."""

    def __init__(self, eco: Economy, entity: Entity, kind: ScriptKind) -> None:
        super().__init__(eco, entity, kind, hot_keys=2, sweep_with_hot=0.2, sweep_every=3)
        self.owed: dict[str, int] = {}

    def invoice(self, merchant: User) -> Key:
        """A fresh invoice address for a payment to ``merchant``."""
        key = self.deposits.fresh(AddressRole.INVOICE)
        return key

    def credit(self, merchant: User, value: int) -> None:
        """Owe a merchant the value of a paid invoice, less the processor's 1% fee."""
        self.owed[merchant.entity.id] = self.owed.get(merchant.entity.id, 0) + value * 99 // 100

    def settle(self) -> None:
        """Pay the merchants what they are owed, in one batch."""
        eco = self.eco
        pays = []
        budget = self.hot.balance * 9 // 10
        for merchant_id, amount in list(self.owed.items()):
            if amount < 50_000 or amount > budget:
                continue
            merchant = eco.merchants_by_id[merchant_id]
            pays.append(Pay(merchant.wallet.receive(), amount, merchant.wallet))
            budget -= amount
            del self.owed[merchant_id]
            if len(pays) >= 40:
                break
        if pays:
            eco.ledger.pay(self.hot, pays, label="settlement")


class Casino(Custodian):
    """A casino: static player deposit addresses, sweeps, payouts to winners."""

    def payout(self, player: User, value: int) -> Tx | None:
        """Pay a winner."""
        if value > self.hot.balance // 3:
            return None
        return self.eco.ledger.pay(
            self.hot, [Pay(player.wallet.receive(), value, player.wallet)], label="payout"
        )


class Market(Custodian):
    """A darknet market: static buyer deposit addresses, sweeps, batched vendor payouts."""

    def __init__(self, eco: Economy, entity: Entity, kind: ScriptKind) -> None:
        super().__init__(eco, entity, kind, hot_keys=2, sweep_with_hot=0.5, sweep_every=4)
        self.sales = 0

    def pay_vendors(self, vendors: Sequence[User]) -> None:
        """Pay vendors their share of recent sales (the market keeps a 5% commission)."""
        eco = self.eco
        budget = min(self.sales * 95 // 100, self.hot.balance * 9 // 10)
        if budget < 100_000 or not vendors:
            return
        chosen = eco.dice.sample(vendors, min(len(vendors), eco.dice.between(2, 8)))
        shares = [eco.dice.lognormal(1.0, 0.8) for _ in chosen]
        total = sum(shares)
        pays = [
            Pay(v.wallet.receive(), int(budget * s / total), v.wallet)
            for v, s in zip(chosen, shares, strict=True)
        ]
        pays = [p for p in pays if p.value > 10 * DUST]
        if pays and eco.ledger.pay(self.hot, pays, label="vendor-payout") is not None:
            self.sales -= sum(p.value for p in pays)


class MiningPool:
    """A mining pool: coinbase to a reused payout address, member payouts, sales at an exchange."""

    def __init__(self, eco: Economy, entity: Entity, share: float) -> None:
        self.eco = eco
        self.entity = entity
        self.share = share
        self.wallet = eco.wallet(
            entity,
            ScriptKind.P2WPKH,
            role=AddressRole.COINBASE,
            static_keys=1,
            change=ChangePolicy.STATIC,
            selection=Selection.OLDEST,
        )
        self.members: list[User] = []
        self.exchange: Exchange | None = None
        self.tag = f"/{entity.name}/".encode()

    def payout(self) -> None:
        """Pay members and sell at the pool's exchange, from matured coinbase coins."""
        eco = self.eco
        balance = self.wallet.balance
        if balance < COIN // 2:
            return
        pays: list[Pay] = []
        if self.members:
            chosen = eco.dice.sample(self.members, eco.dice.between(3, 12))
            budget = balance * 0.25
            weights = [eco.dice.lognormal(1.0, 1.0) for _ in chosen]
            total = sum(weights)
            for member, w in zip(chosen, weights, strict=True):
                value = int(budget * w / total)
                if value > 20 * DUST:
                    pays.append(Pay(member.wallet.receive(), value, member.wallet))
        if self.exchange is not None:
            ex = self.exchange
            pays.append(Pay(ex.deposit_key(self.entity.id), int(balance * 0.6), ex.deposits))
        if pays:
            eco.ledger.pay(
                self.wallet, pays, coins=list(self.wallet.coins.values())[:50], label="pool-payout"
            )


class WasabiCoordinator:
    """Wasabi-like CoinJoin rounds: equal outputs near 0.1 BTC, a coordinator fee, change per participant.

    Each registration gets one output at the base denomination ``d`` and, with ``levels > 1``, one at each
    higher mixing level ``2d``, ``4d`` ... (as Wasabi 1.x did): the base outputs are the round's equal
    outputs, never more than its inputs.
    """

    def __init__(self, eco: Economy, entity: Entity, *, min_anonset: int = 10, max_anonset: int = 40) -> None:
        self.eco = eco
        self.entity = entity
        self.wallet = eco.wallet(
            entity, ScriptKind.P2WPKH, role=AddressRole.COORDINATOR, static_keys=1, static_receive=True
        )
        self.min_anonset = min_anonset
        self.max_anonset = max_anonset
        self.queue: list[Registration] = []

    def register(self, wallet: Wallet, coins: Sequence[Coin], *, levels: int = 1) -> Registration:
        """Queue coins of ``wallet`` for the next round (mixed outputs at ``levels`` mixing levels)."""
        reg = Registration(wallet, list(coins), levels)
        self.queue.append(reg)
        return reg

    def round(self, privacy_users: Sequence[User], others: Sequence[User] = ()) -> Tx | None:
        """Run a round when enough participants show up (``others`` join when registrations are waiting)."""
        eco = self.eco
        dice = eco.dice
        d = int(COIN // 10 * dice.uniform(0.995, 1.005))
        target = dice.between(self.min_anonset + 2, self.max_anonset)
        fee_each = d * 3 * target // 100_000  # 0.003% per anonymity-set member
        regs = [r for r in self.queue if all(not c.spent for c in r.coins)]
        taken: set[str] = {r.wallet.entity.id for r in regs}
        candidates = dice.sample(privacy_users, len(privacy_users))
        if regs:
            candidates += dice.sample(others, 3 * self.max_anonset)
        for user in candidates:
            if len(regs) >= target:
                break
            if user.entity.id in taken or user.wallet.balance < d + fee_each + 40_000:
                continue
            coins = user.wallet.select(d + fee_each, [ScriptKind.P2WPKH], eco.ledger.feerate, max_inputs=4)
            if coins is None:
                continue
            regs.append(Registration(user.wallet, coins, 1))
            taken.add(user.entity.id)
        regs = [r for r in regs if sum(c.value for c in r.coins) >= r.mixed_units * (d + fee_each) + 2_000]
        if len(regs) < self.min_anonset:
            return None
        anonset = len(regs)
        feerate = eco.ledger.feerate
        inputs: list[Coin] = []
        outputs: list[Pay] = []
        coordinator_fee = 0
        for r in regs:
            r.keys = [r.wallet.fresh(AddressRole.MIXED) for _ in range(r.levels)]
            outputs.extend(Pay(k, d << level, r.wallet) for level, k in enumerate(r.keys))
            own_fee = fee_for([c.key.kind for c in r.coins], [ScriptKind.P2WPKH] * (r.levels + 1), feerate)
            change = sum(c.value for c in r.coins) - r.mixed_units * (d + fee_each) - own_fee
            if change >= DUST:
                r.change_key = r.wallet.change_key(r.coins)
                outputs.append(Pay(r.change_key, change, r.wallet))
            coordinator_fee += r.mixed_units * fee_each
            inputs.extend(r.coins)
        outputs.append(Pay(self.wallet.static[0], coordinator_fee, self.wallet))
        inputs.sort(key=lambda c: (c.txid, c.n))
        outputs.sort(key=lambda p: (-p.value, p.key.script if p.key else b""))
        tx = eco.ledger.transact(inputs, outputs, label="wasabi")
        for r in regs:
            r.txid = tx.txid
            r.mixed = [tx.coin_for(k) for k in r.keys]
            r.change = tx.coin_for(r.change_key) if r.change_key is not None else None
        self.queue = [r for r in self.queue if r.txid is None and all(not c.spent for c in r.coins)]
        eco.coinjoins[CoinJoinKind.WASABI].append(tx.txid)
        eco.anonsets.append(anonset)
        return tx


@dataclass(eq=False)
class Registration:
    """Coins registered for a Wasabi-like round, and what the round made of them."""

    wallet: Wallet
    coins: list[Coin]
    levels: int
    keys: list[Key] = field(default_factory=list)
    change_key: Key | None = None
    txid: str | None = None
    mixed: list[Coin] = field(default_factory=list)
    change: Coin | None = None

    @property
    def mixed_units(self) -> int:
        """Mixed value in units of the base denomination: 1 + 2 + 4 ... over the levels."""
        return (1 << self.levels) - 1


WHIRLPOOL_POOLS = {1_000_000: 50_000, 5_000_000: 175_000}
"""Pool denomination -> pool entry fee (satoshi)."""


class WhirlpoolCoordinator:
    """Whirlpool-like pools: Tx0 premixes and 5-in/5-out mixes at the pool denomination."""

    def __init__(self, eco: Economy, entity: Entity) -> None:
        self.eco = eco
        self.entity = entity
        self.wallet = eco.wallet(
            entity, ScriptKind.P2WPKH, role=AddressRole.COORDINATOR, static_keys=1, static_receive=True
        )
        self.premix: dict[int, deque[Coin]] = {p: deque() for p in WHIRLPOOL_POOLS}
        self.postmix: dict[int, list[Coin]] = {p: [] for p in WHIRLPOOL_POOLS}
        self.postmix_wallets: dict[str, Wallet] = {}
        self._quit: set[str] = set()

    def stop_remixing(self, owner: Entity) -> None:
        """Stop offering ``owner``'s postmix coins for remixes (the owner is about to spend them)."""
        self._quit.add(owner.id)

    def tx0(
        self,
        wallet: Wallet,
        premix: Wallet,
        postmix: Wallet,
        coins: Sequence[Coin],
        pool: int,
        n_premix: int,
        *,
        label: str = "tx0",
    ) -> Tx | None:
        """Split ``coins`` of ``wallet`` into ``n_premix`` premixes of ``pool`` plus a mining allowance."""
        eco = self.eco
        pool_fee = WHIRLPOOL_POOLS[pool]
        allowance = max(
            300,
            math.ceil(
                fee_for([ScriptKind.P2WPKH] * 5, [ScriptKind.P2WPKH] * 5, max(eco.ledger.feerate, 2.0)) / 2
            ),
        )
        allowance = min(allowance, max(pool * 2 // 100, 20_000))
        total = sum(c.value for c in coins)
        out_kinds = [ScriptKind.P2WPKH] * (n_premix + 1) + [wallet.kind]
        fee = fee_for([c.key.kind for c in coins], out_kinds, eco.ledger.feerate, 1, 46)
        change = total - n_premix * (pool + allowance) - pool_fee - fee
        if change < 0:
            return None
        self.postmix_wallets[premix.entity.id] = postmix
        outputs = [Pay(None, 0, None, eco.dice.bytes(46)), Pay(self.wallet.static[0], pool_fee, self.wallet)]
        outputs += [Pay(premix.fresh(AddressRole.PREMIX), pool + allowance, premix) for _ in range(n_premix)]
        change_pay = None
        if change >= DUST:
            change_pay = Pay(wallet.change_key(coins), change, wallet)
            outputs.append(change_pay)
        outputs.sort(key=lambda p: (p.value, p.key.script if p.key else b""))
        change_index = next((i for i, p in enumerate(outputs) if p is change_pay), None)
        tx = eco.ledger.transact(coins, outputs, label=label, change_index=change_index)
        for coin in tx.outputs:
            if coin is not None and coin.wallet is premix:
                self.premix[pool].append(coin)
        eco.coinjoins[CoinJoinKind.WHIRLPOOL_TX0].append(tx.txid)
        return tx

    def mix(self, max_mixes: int = 6) -> None:
        """Run the mixes each pool can fill this block."""
        for pool in WHIRLPOOL_POOLS:
            for _ in range(max_mixes):
                if self._mix(pool) is None:
                    break

    @staticmethod
    def _ready(coin: Coin) -> bool:
        return not coin.spent and coin.wallet is not None and coin.uid in coin.wallet.coins

    def _remixes(self, pool: int, wanted: int, owners: set[str]) -> list[Coin]:
        """Up to ``wanted`` postmix coins of distinct other owners, picked at random for a remix.

        Candidates are kept in a list; spent ones are dropped when a pick lands on them (swap with the
        last), so a pick costs O(1) however many postmix coins the pool has made.
        """
        candidates = self.postmix[pool]
        dice = self.eco.dice
        found: list[Coin] = []
        for _ in range(8 * wanted + 8):
            if len(found) >= wanted or not candidates:
                break
            i = dice.below(len(candidates))
            coin = candidates[i]
            if coin.spent:
                candidates[i] = candidates[-1]
                candidates.pop()
                continue
            owner = coin.wallet.entity.id if coin.wallet is not None else None
            if owner is None or owner in owners or owner in self._quit or not self._ready(coin):
                continue
            found.append(coin)
            owners.add(owner)
        return found

    def _mix(self, pool: int) -> Tx | None:
        eco = self.eco
        queue = self.premix[pool]
        while queue and queue[0].spent:
            queue.popleft()
        premixes: list[Coin] = []
        owners: set[str] = set()
        for coin in queue:
            if len(premixes) >= 2:
                break
            if self._ready(coin) and coin.wallet is not None and coin.wallet.entity.id not in owners:
                premixes.append(coin)
                owners.add(coin.wallet.entity.id)
        if not premixes:
            return None
        remixes = self._remixes(pool, 5 - len(premixes), owners)
        if len(premixes) + len(remixes) < 5:
            for coin in itertools.islice(queue, 200):
                if len(premixes) + len(remixes) >= 5:
                    break
                if (
                    coin not in premixes
                    and self._ready(coin)
                    and coin.wallet is not None
                    and coin.wallet.entity.id not in owners
                ):
                    premixes.append(coin)
                    owners.add(coin.wallet.entity.id)
        inputs = premixes + remixes
        if len(inputs) < 5:
            return None
        outputs = []
        for coin in inputs:
            assert coin.wallet is not None
            target = self.postmix_wallets[coin.wallet.entity.id]
            outputs.append(Pay(target.fresh(AddressRole.POSTMIX), pool, target))
        inputs.sort(key=lambda c: (c.txid, c.n))
        outputs.sort(key=lambda p: p.key.script if p.key else b"")
        tx = eco.ledger.transact(inputs, outputs, label="whirlpool-mix")
        self.postmix[pool].extend(c for c in tx.outputs if c is not None)
        eco.coinjoins[CoinJoinKind.WHIRLPOOL_MIX].append(tx.txid)
        return tx


class Economy:
    """The world's state: ledger, entities and services, and the honest activity between them."""

    def __init__(
        self,
        dice: Dice,
        keys: KeyFactory,
        ledger: Ledger,
        *,
        n_users: int,
        n_merchants: int,
        n_exchanges: int,
        n_pools: int,
        on_entity: Callable[[Entity], None],
    ) -> None:
        self.dice = dice
        self.keys = keys
        self.ledger = ledger
        self.on_entity = on_entity
        self.entities: list[Entity] = []
        self.coinjoins: dict[CoinJoinKind, list[str]] = {k: [] for k in CoinJoinKind}
        self.peel_chains: list[PeelChain] = []
        self.payjoins: list[str] = []
        self.anonsets: list[int] = []
        self.exchanges = [
            self._exchange(i, name, juris) for i, (name, juris) in enumerate(names.EXCHANGES[:n_exchanges])
        ]
        self.exchange_weights = [1.0 / (i + 1) ** 0.8 for i in range(len(self.exchanges))]
        shares = [0.34, 0.26, 0.2, 0.12, 0.08][:n_pools]
        self.pools = [
            MiningPool(self, self.entity(EntityKind.MINER, name, juris, f"miner-{i + 1}"), s / sum(shares))
            for i, ((name, juris), s) in enumerate(zip(names.MINING_POOLS, shares, strict=False))
        ]
        name, juris = names.PAYMENT_PROCESSOR
        self.processor = PaymentProcessor(
            self, self.entity(EntityKind.PAYMENT_PROCESSOR, name, juris, "processor-1"), ScriptKind.P2WPKH
        )
        name, juris = names.CASINO
        self.casino = Casino(
            self,
            self.entity(EntityKind.GAMBLING, name, juris, "casino-1"),
            ScriptKind.P2SH_P2WPKH,
            hot_keys=2,
            sweep_with_hot=0.3,
            sweep_every=3,
        )
        name, market_juris = names.MARKET
        self.market = Market(
            self, self.entity(EntityKind.MARKET, name, market_juris, "market-1"), ScriptKind.P2WPKH
        )
        name, juris = names.WASABI_COORDINATOR
        self.wasabi = WasabiCoordinator(
            self, self.entity(EntityKind.COINJOIN_COORDINATOR, name, juris, "mixer-1")
        )
        name, juris = names.WHIRLPOOL_COORDINATOR
        self.whirlpool = WhirlpoolCoordinator(
            self, self.entity(EntityKind.COINJOIN_COORDINATOR, name, juris, "mixer-2")
        )
        self.users = [self._user(i, EntityKind.USER) for i in range(n_users)]
        self.merchants = [self._user(i, EntityKind.MERCHANT) for i in range(n_merchants)]
        self.merchants_by_id = {m.entity.id: m for m in self.merchants}
        self.privacy_users = [u for u in self.users if u.privacy]
        self.vendors = [u for u in self.users if dice.chance(0.05)] or self.users[:1]
        for pool in self.pools:
            pool.members = dice.sample(self.users, max(2, len(self.users) // 12))
            pool.exchange = self.pick_exchange()

    # ------------------------------------------------------------------ construction

    def entity(
        self,
        kind: EntityKind,
        name: str,
        jurisdiction: str | None = None,
        entity_id: str | None = None,
        *,
        actor: bool = True,
    ) -> Entity:
        """Make and register an entity (services get an ActorPack id)."""
        entity_id = entity_id or f"{kind.value}-{len(self.entities) + 1}"
        e = Entity(entity_id, name, kind, jurisdiction, names.actor_id(name) if actor else None)
        self.entities.append(e)
        self.on_entity(e)
        return e

    def wallet(self, entity: Entity, kind: ScriptKind, **kwargs: object) -> Wallet:
        """A wallet of ``entity`` made with this world's key factory and dice."""
        return Wallet(entity, kind, self.keys, self.dice, **kwargs)  # type: ignore[arg-type]

    def _exchange(self, i: int, name: str, juris: str) -> Exchange:
        dice = self.dice
        kind = dice.weighted(list(ScriptKind), [0.2, 0.35, 0.35, 0.1])
        return Exchange(
            self,
            self.entity(EntityKind.EXCHANGE, name, juris, f"exchange-{i + 1}"),
            kind,
            peel_withdrawals=(i == 2),
            batches=(i % 2 == 0 and i != 2),
            sweep_with_hot=dice.uniform(0.25, 0.6),
            sweep_every=dice.between(2, 4),
        )

    def _user(self, i: int, kind: EntityKind) -> User:
        dice = self.dice
        prefix = "merchant" if kind is EntityKind.MERCHANT else "user"
        entity = self.entity(kind, f"{prefix} {i + 1:05d}", None, f"{prefix}-{i + 1:05d}", actor=False)
        script = dice.weighted(USER_KINDS, USER_KIND_WEIGHTS)
        privacy = kind is EntityKind.USER and (i < 20 or dice.chance(0.1))
        if privacy:
            script = ScriptKind.P2WPKH
        change = ChangePolicy.INPUT if dice.chance(0.06) else ChangePolicy.FRESH
        wallet = self.wallet(
            entity,
            script,
            static_receive=dice.chance(0.5 if kind is EntityKind.MERCHANT else 0.25),
            change=change,
            selection=dice.choice((Selection.LARGEST, Selection.RANDOM)),
            rbf=dice.chance(0.4),
            bip69=dice.chance(0.1),
        )
        wealth = dice.lognormal(1.0, 1.0) * (3.0 if privacy else 1.0)
        user = User(
            entity, wallet, wealth, privacy=privacy, payjoin=kind is EntityKind.MERCHANT and dice.chance(0.15)
        )
        user.exchanges = [self.pick_exchange()]
        if dice.chance(0.4):
            other = self.pick_exchange()
            if other is not user.exchanges[0]:
                user.exchanges.append(other)
        return user

    def pick_exchange(self, exclude: Sequence[Exchange] = ()) -> Exchange:
        """An exchange, the popular ones more often."""
        options = [
            (e, w) for e, w in zip(self.exchanges, self.exchange_weights, strict=True) if e not in exclude
        ]
        return self.dice.weighted([e for e, _ in options], [w for _, w in options])

    def funded_user(self, minimum: int, pool: Sequence[User] | None = None, tries: int = 8) -> User | None:
        """A random user (of ``pool``) holding at least ``minimum`` satoshi, or None."""
        pool = self.users if pool is None else pool
        if not pool:
            return None
        for _ in range(tries):
            u = self.dice.choice(pool)
            if u.wallet.balance >= minimum:
                return u
        return None

    def whirl_wallets(self, user: User) -> tuple[Wallet, Wallet]:
        """The premix and postmix wallets of a privacy user (made on first use)."""
        if user.premix is None or user.postmix is None:
            user.premix = self.wallet(user.entity, ScriptKind.P2WPKH, role=AddressRole.PREMIX)
            user.postmix = self.wallet(
                user.entity, ScriptKind.P2WPKH, role=AddressRole.POSTMIX, selection=Selection.RANDOM
            )
        return user.premix, user.postmix

    # ------------------------------------------------------------------ activity

    def amount(self, user: User, median: float = 0.004) -> int:
        """A payment amount for ``user`` (log-normal around ``median`` BTC times the user's wealth)."""
        return roundish(self.dice, self.dice.lognormal(median * COIN * user.wealth, 1.0))

    ACTIONS = (
        "buy",
        "p2p",
        "shop",
        "merchant",
        "sell",
        "gamble",
        "win",
        "market",
        "consolidate",
        "tx0",
        "postmix",
    )
    WEIGHTS = (22, 20, 12, 5, 10, 5, 3, 4, 5, 1.5, 1)

    def background(self, n: int) -> int:
        """Do ``n`` random honest actions; returns how many made a transaction."""
        done = 0
        for _ in range(n):
            action = self.dice.weighted(self.ACTIONS, self.WEIGHTS)
            if getattr(self, "_do_" + action)():
                done += 1
        return done

    def _do_buy(self) -> bool:
        u = self.dice.choice(self.users)
        ex = u.exchanges[0] if len(u.exchanges) == 1 or self.dice.chance(0.7) else u.exchanges[1]
        requests = [(u, self.amount(u, 0.02))]
        if ex.batches:
            for _ in range(self.dice.between(0, 4)):
                other = self.dice.choice(self.users)
                if other is not u and all(other is not r[0] for r in requests):
                    requests.append((other, self.amount(other, 0.02)))
        cap = ex.hot.balance // 8  # larger withdrawals wait until the hot wallet is refilled
        pays = [Pay(r.wallet.receive(), v, r.wallet) for r, v in requests if 20 * DUST < v <= cap]
        return bool(pays) and ex.withdraw(pays, label="withdrawal") is not None

    def _do_p2p(self) -> bool:
        sender = self.funded_user(50_000)
        if sender is None:
            return False
        recipient = self.dice.choice(self.users)
        if recipient is sender:
            return False
        value = min(self.amount(sender), sender.wallet.balance * 3 // 4)
        return (
            value > 20 * DUST
            and self.ledger.pay(sender.wallet, [Pay(recipient.wallet.receive(), value, recipient.wallet)])
            is not None
        )

    def _do_shop(self) -> bool:
        buyer = self.funded_user(50_000)
        if buyer is None or not self.merchants:
            return False
        merchant = self.dice.choice(self.merchants)
        value = min(self.amount(buyer), buyer.wallet.balance * 3 // 4)
        if value <= 20 * DUST:
            return False
        tx = self.ledger.pay(
            buyer.wallet, [Pay(self.processor.invoice(merchant), value, self.processor.deposits)]
        )
        if tx is not None:
            self.processor.credit(merchant, value)
        return tx is not None

    def _do_merchant(self) -> bool:
        buyer = self.funded_user(50_000)
        if buyer is None or not self.merchants:
            return False
        merchant = self.dice.choice(self.merchants)
        value = min(self.amount(buyer), buyer.wallet.balance * 3 // 4)
        if value <= 20 * DUST:
            return False
        if merchant.payjoin and merchant.wallet.coins and self.dice.chance(0.3):
            tx = self._payjoin(buyer, merchant, value)
            if tx is not None:
                return True
        return (
            self.ledger.pay(buyer.wallet, [Pay(merchant.wallet.receive(), value, merchant.wallet)])
            is not None
        )

    def _payjoin(self, buyer: User, merchant: User, value: int) -> Tx | None:
        """A PayJoin: the merchant adds one of its coins, so the inputs have two owners (no visible sign)."""
        ledger = self.ledger
        own = self.dice.choice(list(merchant.wallet.coins.values()))
        coins = buyer.wallet.select(value, [merchant.wallet.kind], ledger.feerate)
        if coins is None:
            return None
        inputs = [*coins, own]
        fee = ledger.fee([c.key.kind for c in inputs], [merchant.wallet.kind, buyer.wallet.kind])
        change = sum(c.value for c in coins) - value - fee
        if change < DUST:
            return None
        outputs = [
            Pay(merchant.wallet.fresh(), value + own.value, merchant.wallet),
            Pay(buyer.wallet.change_key(coins), change, buyer.wallet),
        ]
        self.dice.shuffle(inputs)
        self.dice.shuffle(outputs)
        tx = ledger.transact(inputs, outputs, label="payjoin", sequence=buyer.wallet.sequence)
        self.payjoins.append(tx.txid)
        return tx

    def _do_sell(self) -> bool:
        seller = self.funded_user(100_000, self.users if self.dice.chance(0.7) else self.merchants)
        if seller is None:
            return False
        ex = self.dice.choice(seller.exchanges)
        share = self.dice.uniform(0.3, 1.0)
        value = roundish(self.dice, seller.wallet.balance * share * 0.97, 0.3)
        value = min(value, seller.wallet.balance * 97 // 100)
        return (
            value > 20 * DUST
            and self.ledger.pay(seller.wallet, [Pay(ex.deposit_key(seller.entity.id), value, ex.deposits)])
            is not None
        )

    def _do_gamble(self) -> bool:
        player = self.funded_user(50_000)
        if player is None:
            return False
        value = min(self.amount(player, 0.003), player.wallet.balance * 3 // 4)
        return (
            value > 20 * DUST
            and self.ledger.pay(
                player.wallet, [Pay(self.casino.deposit_key(player.entity.id), value, self.casino.deposits)]
            )
            is not None
        )

    def _do_win(self) -> bool:
        player = self.dice.choice(self.users)
        if player.entity.id not in self.casino.deposit_keys:
            return False
        return self.casino.payout(player, self.amount(player, 0.006)) is not None

    def _do_market(self) -> bool:
        buyer = self.funded_user(50_000)
        if buyer is None:
            return False
        value = min(self.amount(buyer, 0.002), buyer.wallet.balance * 3 // 4)
        tx = value > 20 * DUST and self.ledger.pay(
            buyer.wallet, [Pay(self.market.deposit_key(buyer.entity.id), value, self.market.deposits)]
        )
        if tx:
            self.market.sales += value
        return bool(tx)

    def _do_consolidate(self) -> bool:
        candidates = [self.dice.choice(self.users) for _ in range(10)]
        u = max(candidates, key=lambda c: (len(c.wallet.coins), c.entity.id))
        if len(u.wallet.coins) < 5:
            return False
        coins = sorted(u.wallet.coins.values(), key=lambda c: (c.value, c.uid))[:40]
        return self.ledger.sweep(coins, u.wallet.fresh(), u.wallet, sequence=u.wallet.sequence) is not None

    def _do_tx0(self) -> bool:
        u = self.funded_user(1_300_000, self.privacy_users)
        if u is None:
            return False
        pool = 5_000_000 if u.wallet.balance > 12_000_000 and self.dice.chance(0.6) else 1_000_000
        entry = pool + WHIRLPOOL_POOLS[pool] // 4
        n = min(self.dice.between(1, 4), int(u.wallet.balance * 0.8) // entry)
        if n < 1:
            return False
        coins = u.wallet.select(
            n * (pool + 20_000) + WHIRLPOOL_POOLS[pool],
            [ScriptKind.P2WPKH] * (n + 1),
            self.ledger.feerate,
            max_inputs=5,
        )
        if coins is None:
            return False
        premix, postmix = self.whirl_wallets(u)
        return self.whirlpool.tx0(u.wallet, premix, postmix, coins, pool, n) is not None

    def _do_postmix(self) -> bool:
        for _ in range(4):
            u = self.dice.choice(self.privacy_users) if self.privacy_users else None
            if u is None or u.postmix is None or len(u.postmix.coins) < 2:
                continue
            coin = self.dice.choice(list(u.postmix.coins.values()))
            if self.dice.chance(0.5):
                ex = self.dice.choice(u.exchanges)
                return self.ledger.sweep([coin], ex.deposit_key(u.entity.id), ex.deposits) is not None
            merchant = self.dice.choice(self.merchants) if self.merchants else None
            if merchant is None:
                return False
            value = min(self.amount(u), coin.value // 2)
            return (
                value > 20 * DUST
                and self.ledger.pay(
                    u.postmix, [Pay(merchant.wallet.receive(), value, merchant.wallet)], coins=[coin]
                )
                is not None
            )
        return False

    # ------------------------------------------------------------------ services on a schedule

    def services(self, block: int, wasabi_every: int) -> None:
        """Sweeps, payouts, settlements and mixes that run on a schedule (``block`` counts from 0)."""
        for ex in self.exchanges:
            if block % ex.sweep_every == ex.offset:
                ex.sweep(label="sweep")
            if block % 10 == 7:
                ex.rebalance()
        for pool in self.pools:
            if block % 2 == 0:
                pool.payout()
        if block % self.processor.sweep_every == self.processor.offset:
            self.processor.sweep(label="sweep")
        if block % 5 == 4:
            self.processor.settle()
        if block % self.casino.sweep_every == self.casino.offset:
            self.casino.sweep(label="sweep")
        if block % self.market.sweep_every == self.market.offset:
            self.market.sweep(label="sweep")
        if block % 6 == 5:
            self.market.pay_vendors(self.vendors)
        if block % wasabi_every == wasabi_every - 1:
            self.wasabi.round(self.privacy_users, self.users)
        self.whirlpool.mix()

    def finish(self) -> None:
        """Close what is in progress at the end of the world (peel chains)."""
        for ex in self.exchanges:
            ex.finish()
