"""The unit of an amount (a chain's coin, a known token, or bare base units) and how a person reads it.

Amounts stay exact integers of base units everywhere; only human output shows them in a unit, with all
of the unit's decimals and thousands separators (``19500000000`` on btc is ``195.00000000 BTC``). A token
whose decimals FundTrail does not know is shown in base units, named as such, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from fundtrail.domain.chains import CHAINS, NATIVE_ASSET


@dataclass(frozen=True, slots=True)
class AssetUnit:
    """A unit amounts are shown in: its symbol and how many decimals a base unit is."""

    symbol: str
    decimals: int


KNOWN_TOKENS: dict[tuple[str, str], AssetUnit] = {
    ("eth", "0xdac17f958d2ee523a2206206994597c13d831ec7"): AssetUnit("USDT", 6),
    ("eth", "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"): AssetUnit("USDC", 6),
    ("eth", "0x6b175474e89094c44da98b954eedeac495271d0f"): AssetUnit("DAI", 18),
    ("eth", "0xc02aaa39b223fe8d0a0e5c4756cc2ca6f83c756c2"): AssetUnit("WETH", 18),
    ("eth", "0x2260fac5e5542a773aa44fbcfedf7c193bc2c599"): AssetUnit("WBTC", 8),
    ("bsc", "0x55d398326f99059ff775485246999027b3197955"): AssetUnit("USDT", 18),
    ("polygon", "0xc2132d05d31c914a87c6611c10748aeb04b58e8f"): AssetUnit("USDT", 6),
    ("trx", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"): AssetUnit("USDT", 6),
    ("trx", "TEkxiTehnzSmSe2XqrBj4w32RUN966rdz8"): AssetUnit("USDC", 6),
}
"""Token contracts whose symbol and decimals are fixed on chain: (chain, contract) -> unit; EVM contracts
in lower-case hex, TRON contracts in base58 (``T...``)."""


def asset_unit(chain: str, asset: str = NATIVE_ASSET) -> AssetUnit | None:
    """The unit of ``asset`` on ``chain``: the coin for ``native``, a known token's, else None."""
    if asset == NATIVE_ASSET:
        params = CHAINS.get(chain)
        return AssetUnit(params.symbol, params.decimals) if params is not None else None
    return KNOWN_TOKENS.get((chain, asset)) or KNOWN_TOKENS.get((chain, asset.lower()))


def show_amount(value: int, chain: str, asset: str = NATIVE_ASSET) -> str:
    """``value`` base units for a person: ``195.00000000 BTC``, ``1,250.500000 USDT``, ``7 base units``."""
    unit = asset_unit(chain, asset)
    if unit is None:
        return f"{value:,} base units"
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**unit.decimals)
    if unit.decimals == 0:
        return f"{sign}{whole:,} {unit.symbol}"
    return f"{sign}{whole:,}.{frac:0{unit.decimals}d} {unit.symbol}"
