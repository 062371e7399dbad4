"""Crime typologies played out in a generated world, each recording its own ground truth.

* **Ransomware**: victims pay fresh ransom addresses (mostly straight from an exchange withdrawal); the
  operators consolidate the ransoms, split them together with a small amount of clean funds, peel part of
  them off into deposit addresses at several exchanges in several jurisdictions, send part through a
  Wasabi-like round and part through a Whirlpool-like pool (then cash out the mixed coins and the CoinJoin
  change), and keep the rest.
* **Theft**: a hacker drains coins from an exchange's hot wallet, splits them over many addresses, moves
  them a few hops, and launders them through both kinds of CoinJoin and straight deposits at other
  exchanges.

Each typology is a generator: it does what it does in the current block and yields the number of blocks
to wait before it goes on (the world's scheduler resumes it). Every transaction touching the criminals'
wallets is journaled with the step it belongs to: that journal is the laundering path of the ground truth.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from fundtrail.scenarios import names
from fundtrail.scenarios.economy import WHIRLPOOL_POOLS, Economy, Exchange, Registration, roundish
from fundtrail.scenarios.groundtruth import (
    AddressRole,
    CashOut,
    Entity,
    EntityKind,
    PathStep,
    PeelChain,
    Typology,
    TypologyKind,
    Victim,
)
from fundtrail.scenarios.keys import Key, ScriptKind
from fundtrail.scenarios.ledger import COIN, DUST, Coin, Pay, Tx, Wallet

Waits = Iterator[int]
"""A typology process: yields how many blocks to wait before it resumes."""


@dataclass(frozen=True, slots=True)
class Account:
    """A criminal's account at an exchange: its static deposit address."""

    exchange: Exchange
    key: Key


@dataclass(eq=False)
class TypologyRecord:
    """The ground truth of a typology while it plays out."""

    id: str
    kind: TypologyKind
    actor: Entity
    label: str
    journal: list[PathStep] = field(default_factory=list)
    seed_addresses: list[str] = field(default_factory=list)
    seed_txids: list[str] = field(default_factory=list)
    victims: list[Victim] = field(default_factory=list)
    cash_outs: list[CashOut] = field(default_factory=list)
    wallets: list[Wallet] = field(default_factory=list)
    complete: bool = False

    def build(self) -> Typology:
        """The finished ground truth: path without repeats, held coins as they are now."""
        seen: set[str] = set()
        path = []
        for step in self.journal:
            if step.txid not in seen:
                seen.add(step.txid)
                path.append(step)
        held = tuple((c.key.address, c.value) for w in self.wallets for c in w.coins.values())
        return Typology(
            self.id,
            self.kind,
            self.actor.id,
            self.label,
            tuple(self.seed_addresses),
            tuple(self.seed_txids),
            tuple(self.victims),
            tuple(path),
            tuple(self.cash_outs),
            held,
            self.complete,
        )


class Launderer:
    """The wallets and exchange accounts of a criminal, and the moves they make."""

    def __init__(
        self, eco: Economy, record: TypologyRecord, until: int, kind: ScriptKind = ScriptKind.P2WPKH
    ) -> None:
        self.eco = eco
        self.record = record
        self.until = until
        actor = record.actor

        def wallet(role: AddressRole, k: ScriptKind = kind) -> Wallet:
            w = eco.wallet(actor, k, role=role, journal=record.journal)
            record.wallets.append(w)
            return w

        self.main = wallet(
            AddressRole.RANSOM if record.kind is TypologyKind.RANSOMWARE else AddressRole.LAUNDER
        )
        self.launder = wallet(AddressRole.LAUNDER)
        self.premix = wallet(AddressRole.PREMIX, ScriptKind.P2WPKH)
        self.postmix = wallet(AddressRole.POSTMIX, ScriptKind.P2WPKH)
        self.accounts: list[Account] = []
        self.mules: list[Account] = []

    def time_left(self) -> int:
        """Blocks left before the crew must be done (the world ends soon after)."""
        return self.until - self.eco.ledger.height

    def pause(self) -> Waits:
        """Between two cash-outs: sometimes wait a block, unless time is running out."""
        if self.time_left() > 4 and self.eco.dice.chance(0.5):
            yield 1

    def open_accounts(self, n: int, exclude: Sequence[Exchange] = ()) -> None:
        """Accounts at ``n`` different exchanges (so at least two jurisdictions when ``n >= 2``), and mule
        accounts (other deposit addresses, at two of those exchanges or others) for mixed coins."""
        eco = self.eco
        candidates = [e for e in eco.exchanges if e not in exclude]
        actor = self.record.actor.id
        for i, ex in enumerate(eco.dice.sample(candidates, min(n, len(candidates)))):
            self.accounts.append(Account(ex, ex.deposit_key(f"{actor}/account-{i + 1}")))
        for i, ex in enumerate(eco.dice.sample(candidates, min(2, len(candidates)))):
            self.mules.append(Account(ex, ex.deposit_key(f"{actor}/mule-{i + 1}")))

    def deposit(
        self, coins: Sequence[Coin], account: Account, route: str, *, label: str = "cash-out"
    ) -> Tx | None:
        """Move ``coins`` whole into a deposit address and record the cash-out."""
        tx = self.eco.ledger.sweep(coins, account.key, account.exchange.deposits, label=label)
        if tx is not None:
            coin = tx.outputs[0]
            assert coin is not None
            self.cashed(account, coin.value, tx, route)
        return tx

    def cashed(self, account: Account, value: int, tx: Tx, route: str) -> None:
        """Record value that reached a deposit address."""
        ex = account.exchange.entity
        self.record.cash_outs.append(
            CashOut(account.key.address, ex.id, ex.name, ex.jurisdiction, value, tx.txid, tx.height, route)
        )

    def peel(self, coin: Coin, steps: int, pace: int) -> Waits:
        """Peel ``coin`` into the accounts, one small payment per step; the rest goes to the last account.

        The steps (one input, payment and change) are recorded as a peel chain of the ground truth.
        """
        eco = self.eco
        txids: list[str] = []
        for step in range(steps):
            account = self.accounts[step % len(self.accounts)]
            value = roundish(eco.dice, coin.value * eco.dice.uniform(0.08, 0.22), 0.25)
            tx = eco.ledger.pay(
                self.launder,
                [Pay(account.key, value, account.exchange.deposits)],
                coins=[coin],
                change_key=self.launder.fresh(),
                label="peel",
            )
            if tx is None or tx.change is None:
                break
            self.cashed(account, value, tx, "peel")
            txids.append(tx.txid)
            coin = tx.change
            yield eco.dice.between(1, pace)
        if len(txids) >= 3:
            eco.peel_chains.append(
                PeelChain(self.record.actor.id, f"{self.record.id} cash-out", tuple(txids))
            )
        if not coin.spent:
            self.deposit([coin], self.accounts[steps % len(self.accounts)], "peel")

    def register_wasabi(self, coins: Sequence[Coin]) -> list[Registration]:
        """Register each coin for a Wasabi-like round, at as many mixing levels (d, 2d, 4d) as it pays for."""
        regs = []
        for coin in coins:
            levels = 1
            while levels < 3 and coin.value >= ((1 << (levels + 1)) - 1) * COIN // 10 * 1.02:
                levels += 1
            regs.append(self.eco.wasabi.register(self.launder, [coin], levels=levels))
        return regs

    def cash_out_wasabi(self, regs: Sequence[Registration], wait_limit: int) -> Waits:
        """Wait for the round(s), then deposit the mixed coins (one or two at a time) and the change."""
        eco = self.eco
        waited = 0
        while any(r.txid is None for r in regs) and waited < wait_limit and self.time_left() > 8:
            yield 1
            waited += 1
        yield eco.dice.between(1, 3)
        for r in regs:
            if r.txid is None:  # no round happened in time: the coins go straight to an exchange
                eco.wasabi.queue = [q for q in eco.wasabi.queue if q is not r]
                live = [c for c in r.coins if not c.spent]
                if live:
                    self.deposit(live, eco.dice.choice(self.accounts), "direct")
                continue
            mixed = [c for c in r.mixed if not c.spent]
            while mixed:
                k = eco.dice.between(1, 2)
                group, mixed = mixed[:k], mixed[k:]
                self.deposit(group, eco.dice.choice(self.mules), "wasabi")
                yield from self.pause()
            if r.change is not None and not r.change.spent:
                self.deposit([r.change], eco.dice.choice(self.mules), "wasabi-change")

    def cash_out_whirlpool(self, tx0: Tx, wait_limit: int, pace: int) -> Waits:
        """Wait until the premixes are mixed (and maybe remixed), then deposit the postmix coins."""
        eco = self.eco
        premixes = [c for c in tx0.outputs if c is not None and c.wallet is self.premix]
        waited = 0
        while any(not c.spent for c in premixes) and waited < wait_limit and self.time_left() > 6:
            yield 1
            waited += 1
        yield eco.dice.between(1, 2 * pace if self.time_left() > 6 * pace else 1)
        eco.whirlpool.stop_remixing(self.record.actor)
        yield 1  # a remix made in the block just before confirms now
        change = tx0.change
        if change is not None and not change.spent:
            self.deposit([change], eco.dice.choice(self.mules), "tx0-change")
        while self.postmix.coins:
            postmix = sorted(self.postmix.coins.values(), key=lambda c: c.uid)
            self.deposit(postmix[: eco.dice.between(1, 2)], eco.dice.choice(self.mules), "whirlpool")
            yield from self.pause()


def ransomware(eco: Economy, record: TypologyRecord, *, victims: int, pace: int, until: int) -> Waits:
    """A ransomware campaign from the first ransom to the last cash-out (see the module docstring).

    ``until`` is the height by which the crew has cashed out (it waits less for mixes when time runs out).
    """
    dice = eco.dice
    ledger = eco.ledger
    crew = Launderer(eco, record, until)
    crew.open_accounts(dice.between(3, 4))
    # Clean coins bought at one of the crew's exchanges pay for fees and blur the amounts.
    clean_key = crew.launder.fresh()
    clean: Coin | None = None
    for _ in range(20):
        ex = crew.accounts[0].exchange
        value = roundish(dice, dice.uniform(0.04, 0.12) * COIN, 0.6)
        tx = (
            ex.withdraw([Pay(clean_key, min(value, ex.hot.balance // 4), crew.launder)], label="clean-funds")
            if ex.hot.balance // 4 > 100 * DUST
            else None
        )
        if tx is not None:
            clean = tx.coin_for(clean_key)
            break
        yield 1
    for _ in range(victims):
        victim = dice.choice(eco.users)
        ransom = roundish(dice, min(max(dice.lognormal(0.45 * COIN, 0.5), 0.05 * COIN), 3 * COIN), 0.5)
        key = crew.main.fresh(AddressRole.RANSOM)
        paid: Tx | None = None
        for _attempt in range(12):
            if victim.wallet.balance > ransom * 11 // 10 and dice.chance(0.35):
                paid = ledger.pay(victim.wallet, [Pay(key, ransom, crew.main)], label="ransom-payment")
            else:  # bought at one of the victim's exchanges, or the biggest one
                ex = next(
                    (e for e in victim.exchanges if e.hot.balance // 3 >= ransom),
                    max(eco.exchanges, key=lambda e: (e.hot.balance, e.entity.id)),
                )
                value = min(ransom, ex.hot.balance // 3)
                if value > 1000 * DUST:
                    paid = ex.withdraw([Pay(key, value, crew.main)], label="ransom-payment")
                    ransom = value if paid is not None else ransom
            if paid is not None:
                break
            yield 1
        if paid is not None:
            record.victims.append(Victim(victim.entity.id, key.address, paid.txid, ransom))
            record.seed_addresses.append(key.address)
            record.seed_txids.append(paid.txid)
        wait = dice.between(0, pace)
        if wait:
            yield wait
    yield pace
    ransoms = list(crew.main.coins.values())
    if not ransoms:
        return
    consolidated = ledger.sweep(ransoms, crew.launder.fresh(), crew.launder, label="consolidation")
    if consolidated is None:
        return
    loot = consolidated.outputs[0]
    assert loot is not None
    yield 1
    # Split: Wasabi coins, a Tx0 coin, a kept part and the start of the peel chain (small loot: fewer parts).
    inputs = [loot] + ([clean] if clean is not None and not clean.spent else [])
    total = sum(c.value for c in inputs)
    d = COIN // 10
    wasabi_values = [int(d * dice.uniform(1.04, 1.5)) for _ in range(min(5, int(total * 0.25 // (d * 1.3))))]
    pool = 5_000_000 if total * 0.2 > 3 * 5_250_000 else 1_000_000
    n_premix = min(8, int(total * 0.2 // (pool * 1.05)))
    tx0_value = (
        int((n_premix * (pool + 20_000) + WHIRLPOOL_POOLS[pool] + 30_000) * dice.uniform(1.05, 1.25))
        if n_premix
        else 0
    )
    hold = int(total * dice.uniform(0.04, 0.09))
    parts = [*wasabi_values, tx0_value, hold]
    fee = ledger.fee([c.key.kind for c in inputs], [ScriptKind.P2WPKH] * (len(parts) + 1))
    parts = [v for v in parts if v >= 1000 * DUST]
    keys = [crew.launder.fresh() for _ in range(len(parts) + 1)]
    peel_value = total - sum(parts) - fee
    outputs = [Pay(k, v, crew.launder) for k, v in zip(keys, [*parts, peel_value], strict=True)]
    dice.shuffle(outputs)
    split = ledger.transact(inputs, outputs, label="split")
    wasabi_coins = [split.coin_for(k) for k in keys[: len(wasabi_values)]]
    peel_coin = split.coin_for(keys[-1])
    yield 1
    regs = crew.register_wasabi(wasabi_coins)
    tx0 = None
    if n_premix and tx0_value in parts:
        tx0_coin = split.coin_for(keys[len(wasabi_values)])
        tx0 = eco.whirlpool.tx0(crew.launder, crew.premix, crew.postmix, [tx0_coin], pool, n_premix)
    yield from crew.peel(peel_coin, dice.between(4, 8), pace)
    yield from crew.cash_out_wasabi(regs, wait_limit=12 * pace)
    if tx0 is not None:
        yield from crew.cash_out_whirlpool(tx0, wait_limit=12 * pace, pace=pace)
    record.complete = True


def theft(eco: Economy, record: TypologyRecord, *, pace: int, until: int) -> Waits:
    """A hot-wallet theft and its laundering (module docstring); ``until`` as for :func:`ransomware`."""
    dice = eco.dice
    ledger = eco.ledger
    crew = Launderer(eco, record, until)
    victim: Exchange | None = None
    for _ in range(30):
        victim = max(eco.exchanges, key=lambda e: (e.hot.balance, e.entity.id))
        if victim.hot.balance >= 2 * COIN:
            break
        yield 1
    assert victim is not None
    coins = sorted(victim.hot.coins.values(), key=lambda c: (-c.value, c.uid))
    taken: list[Coin] = []
    for c in coins:
        if sum(x.value for x in taken) >= victim.hot.balance * 0.35 or len(taken) >= 4:
            break
        taken.append(c)
    if not taken:
        return
    total = sum(c.value for c in taken)
    keys = [crew.main.fresh() for _ in range(dice.between(2, 3))]
    fee = ledger.fee([c.key.kind for c in taken], [k.kind for k in keys])
    cuts = sorted(dice.uniform(0.2, 0.8) for _ in range(len(keys) - 1))
    bounds = [0.0, *cuts, 1.0]
    values = [int((total - fee) * (b - a)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    values[-1] = total - fee - sum(values[:-1])
    stolen = ledger.transact(
        taken, [Pay(k, v, crew.main) for k, v in zip(keys, values, strict=True)], label="theft"
    )
    record.victims.append(Victim(victim.entity.id, keys[0].address, stolen.txid, total))
    record.seed_txids.append(stolen.txid)
    record.seed_addresses.extend(k.address for k in keys)
    crew.open_accounts(dice.between(3, 4), exclude=[victim])
    yield 1
    # Split every stolen coin over several fresh addresses.
    pieces: list[Coin] = []
    for key in keys:
        coin = stolen.coin_for(key)
        n = dice.between(3, 5)
        parts = [dice.uniform(0.5, 1.5) for _ in range(n)]
        fee = ledger.fee([coin.key.kind], [ScriptKind.P2WPKH] * n)
        values = [int((coin.value - fee) * p / sum(parts)) for p in parts]
        out_keys = [crew.launder.fresh() for _ in range(n)]
        tx = ledger.transact(
            [coin], [Pay(k, v, crew.launder) for k, v in zip(out_keys, values, strict=True)], label="split"
        )
        pieces.extend(tx.coin_for(k) for k in out_keys)
    yield dice.between(1, pace)
    # A hop or two for each piece.
    for _hop in range(dice.between(1, 2)):
        moved = []
        for coin in pieces:
            hop = ledger.sweep([coin], crew.launder.fresh(), crew.launder, label="hop")
            if hop is not None and hop.outputs[0] is not None:
                moved.append(hop.outputs[0])
        pieces = moved
        yield dice.between(1, pace)
    dice.shuffle(pieces)
    to_wasabi = [c for c in pieces[: len(pieces) // 3] if c.value >= COIN // 10 * 1.05]
    rest = [c for c in pieces if c not in to_wasabi]
    to_whirl = [c for c in rest[: len(rest) // 3] if c.value >= 1_400_000]
    direct = [c for c in rest if c not in to_whirl]
    for coin in direct:
        crew.deposit([coin], dice.choice(crew.accounts), "direct")
        yield from crew.pause()
    regs = crew.register_wasabi(to_wasabi)
    tx0s = []
    for coin in to_whirl:
        pool = 5_000_000 if coin.value > 8 * 5_100_000 else 1_000_000
        n = max(1, min(10, int(coin.value * 0.85 // (pool + 20_000 + WHIRLPOOL_POOLS[pool]))))
        tx0 = eco.whirlpool.tx0(crew.launder, crew.premix, crew.postmix, [coin], pool, n)
        if tx0 is not None:
            tx0s.append(tx0)
    yield from crew.cash_out_wasabi(regs, wait_limit=12 * pace)
    for tx0 in tx0s:
        yield from crew.cash_out_whirlpool(tx0, wait_limit=12 * pace, pace=pace)
    record.complete = True


def new_record(eco: Economy, kind: TypologyKind, number: int) -> TypologyRecord:
    """A ground-truth record (and the criminal entity) for the ``number``-th typology of ``kind``."""
    if kind is TypologyKind.RANSOMWARE:
        label = names.RANSOMWARE_FAMILIES[(number - 1) % len(names.RANSOMWARE_FAMILIES)]
        actor = eco.entity(
            EntityKind.RANSOMWARE, f"{label} operators", None, f"ransomware-{number}", actor=False
        )
    else:
        label = names.THIEF_GROUPS[(number - 1) % len(names.THIEF_GROUPS)]
        actor = eco.entity(EntityKind.THIEF, label, None, f"thief-{number}", actor=False)
    return TypologyRecord(f"{kind.value}-{number}", kind, actor, label)
