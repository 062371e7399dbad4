"""The chains FundTrail knows, with the parameters that address and block parsing need."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fundtrail.errors import UnknownChainError


class ChainFamily(StrEnum):
    """How a chain keeps value: unspent outputs or account balances."""

    UTXO = "utxo"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class ChainParams:
    """Parameters of one chain (network) that parsing and validation depend on."""

    name: str
    family: ChainFamily
    symbol: str
    decimals: int
    description: str
    p2pkh_prefix: bytes = b""
    p2sh_prefixes: tuple[bytes, ...] = ()
    bech32_hrp: str | None = None
    magic: bytes = b""
    evm_chain_id: int | None = None
    segwit: bool = False
    cashaddr_prefix: str | None = None
    account_b58_prefix: bytes = b""
    """Account chains with base58check addresses (TRON: ``0x41``); empty for ``0x`` hex EVM addresses."""

    @property
    def is_utxo(self) -> bool:
        """True for chains that keep value in unspent outputs (Bitcoin family)."""
        return self.family is ChainFamily.UTXO

    @property
    def has_hex_addresses(self) -> bool:
        """True for account chains whose addresses are ``0x`` hex (EVM), compared in any letter case."""
        return self.family is ChainFamily.ACCOUNT and not self.account_b58_prefix

    @property
    def p2sh_prefix(self) -> bytes:
        """The preferred P2SH version byte(s) used when rendering addresses."""
        return self.p2sh_prefixes[0] if self.p2sh_prefixes else b""


def _utxo(name: str, symbol: str, description: str, **kw: object) -> ChainParams:
    return ChainParams(name=name, family=ChainFamily.UTXO, symbol=symbol, decimals=8,
                       description=description, **kw)  # type: ignore[arg-type]


def _evm(name: str, symbol: str, description: str, chain_id: int) -> ChainParams:
    return ChainParams(name=name, family=ChainFamily.ACCOUNT, symbol=symbol, decimals=18,
                       description=description, evm_chain_id=chain_id)


CHAINS: dict[str, ChainParams] = {
    p.name: p
    for p in (
        _utxo("btc", "BTC", "Bitcoin mainnet", p2pkh_prefix=b"\x00", p2sh_prefixes=(b"\x05",),
              bech32_hrp="bc", magic=bytes.fromhex("f9beb4d9"), segwit=True),
        _utxo("btc-testnet", "tBTC", "Bitcoin testnet3", p2pkh_prefix=b"\x6f", p2sh_prefixes=(b"\xc4",),
              bech32_hrp="tb", magic=bytes.fromhex("0b110907"), segwit=True),
        _utxo("btc-regtest", "rBTC", "Bitcoin regtest", p2pkh_prefix=b"\x6f", p2sh_prefixes=(b"\xc4",),
              bech32_hrp="bcrt", magic=bytes.fromhex("fabfb5da"), segwit=True),
        _utxo("ltc", "LTC", "Litecoin mainnet", p2pkh_prefix=b"\x30", p2sh_prefixes=(b"\x32", b"\x05"),
              bech32_hrp="ltc", magic=bytes.fromhex("fbc0b6db"), segwit=True),
        _utxo("ltc-testnet", "tLTC", "Litecoin testnet4", p2pkh_prefix=b"\x6f",
              p2sh_prefixes=(b"\x3a", b"\xc4"), bech32_hrp="tltc", magic=bytes.fromhex("fdd2c8f1"),
              segwit=True),
        _utxo("ltc-regtest", "rLTC", "Litecoin regtest", p2pkh_prefix=b"\x6f",
              p2sh_prefixes=(b"\x3a", b"\xc4"), bech32_hrp="rltc", magic=bytes.fromhex("fabfb5da"),
              segwit=True),
        _utxo("bch", "BCH", "Bitcoin Cash mainnet", p2pkh_prefix=b"\x00", p2sh_prefixes=(b"\x05",),
              magic=bytes.fromhex("e3e1f3e8"), cashaddr_prefix="bitcoincash"),
        _utxo("doge", "DOGE", "Dogecoin mainnet", p2pkh_prefix=b"\x1e", p2sh_prefixes=(b"\x16",),
              magic=bytes.fromhex("c0c0c0c0")),
        _utxo("dash", "DASH", "Dash mainnet", p2pkh_prefix=b"\x4c", p2sh_prefixes=(b"\x10",),
              magic=bytes.fromhex("bf0c6bbd")),
        _utxo("zec", "ZEC", "Zcash mainnet (transparent part)", p2pkh_prefix=b"\x1c\xb8",
              p2sh_prefixes=(b"\x1c\xbd",), magic=bytes.fromhex("24e92764")),
        _evm("eth", "ETH", "Ethereum mainnet (and local EVM dev nodes)", 1),
        _evm("eth-sepolia", "SepoliaETH", "Ethereum Sepolia testnet", 11155111),
        _evm("bsc", "BNB", "BNB Smart Chain", 56),
        _evm("polygon", "POL", "Polygon PoS", 137),
        _evm("arb", "ETH", "Arbitrum One", 42161),
        _evm("op", "ETH", "OP Mainnet", 10),
        _evm("base", "ETH", "Base", 8453),
        _evm("avax", "AVAX", "Avalanche C-Chain", 43114),
        _evm("etc", "ETC", "Ethereum Classic", 61),
        ChainParams(name="trx", family=ChainFamily.ACCOUNT, symbol="TRX", decimals=6,
                    description="TRON mainnet (its Ethereum-compatible JSON-RPC; TRC-20 tokens)",
                    evm_chain_id=0x2B6653DC, account_b58_prefix=b"\x41"),
    )
}


CHAIN_ALIASES: dict[str, str] = {"arbitrum": "arb", "optimism": "op", "matic": "polygon", "bnb": "bsc",
                               "tron": "trx"}
"""Other names users give chains, accepted wherever a chain is named."""


def get_chain(name: str) -> ChainParams:
    """The parameters of a chain by its FundTrail name (``btc``, ``ltc-regtest``, ``eth`` ...) or an alias."""
    key = name.strip().lower()
    try:
        return CHAINS[CHAIN_ALIASES.get(key, key)]
    except KeyError:
        raise UnknownChainError(name, sorted(CHAINS)) from None


NATIVE_ASSET = "native"
"""The ``asset`` value of a chain's own coin (as opposed to a token contract address)."""
