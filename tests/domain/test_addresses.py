"""Address codecs: Base58Check, bech32/bech32m (BIP173/BIP350), CashAddr, EIP-55, per-chain validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundtrail.domain.addresses import (
    AddressType,
    Bech32Variant,
    address_type,
    b58check_decode,
    b58check_encode,
    b58check_encode_many,
    b58decode,
    b58encode,
    bech32_decode,
    canonical_address,
    decode_address,
    decode_segwit,
    encode_segwit,
    encode_segwit_many,
    is_valid_address,
    p2pkh_address,
    p2sh_address,
    script_for_address,
    segwit_address,
    to_checksum_address,
)
from fundtrail.errors import InputError, InvalidAddressError


def _ofac(shared_data: Path, asset: str) -> list[str]:
    path = shared_data / "ofac_sanctioned_addresses" / f"sanctioned_addresses_{asset}.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------
# Base58


def test_b58_known_values() -> None:
    assert b58encode(b"") == ""
    assert b58encode(b"\x00\x00\x01") == "112"
    assert b58encode(b"hello world") == "StV1DL6CwTryKyV"
    assert b58decode("StV1DL6CwTryKyV") == b"hello world"
    assert b58decode("112") == b"\x00\x00\x01"


def test_genesis_p2pkh_address() -> None:
    h = bytes.fromhex("62e907b15cbf27d5425399ebf6f0fb50ebb88f18")
    assert p2pkh_address("btc", h) == "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    decoded = decode_address("btc", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")
    assert decoded.type is AddressType.P2PKH and decoded.payload == h


def test_p2sh_address_known() -> None:
    # BIP13 / BIP16 example: hash160 of a 2-of-3 redeem script.
    h = bytes.fromhex("8f55563b9a19f321c211e9b9f38cdf686ea07845")
    assert p2sh_address("btc", h) == "3EktnHQD7RiAE6uzMj2ZifT9YgRrkSgzQX"
    assert address_type("btc", "3EktnHQD7RiAE6uzMj2ZifT9YgRrkSgzQX") is AddressType.P2SH


@given(st.binary(max_size=64))
def test_b58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@given(st.binary(min_size=1, max_size=40))
def test_b58check_round_trip(payload: bytes) -> None:
    assert b58check_decode(b58check_encode(payload)) == payload


def test_b58check_rejects_bad_checksum_and_characters() -> None:
    with pytest.raises(InputError, match="checksum"):
        b58check_decode("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb")
    with pytest.raises(InputError, match="not base58"):
        b58check_decode("1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0a")
    with pytest.raises(InvalidAddressError, match="checksum"):
        canonical_address("btc", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb")


CHAINS = ["btc", "ltc", "doge", "dash", "zec", "bch", "btc-testnet"]


@given(st.sampled_from(CHAINS), st.binary(min_size=20, max_size=20))
def test_p2pkh_and_p2sh_round_trip(chain: str, h: bytes) -> None:
    a = p2pkh_address(chain, h)
    d = decode_address(chain, a)
    assert (d.type, d.payload, d.text) == (AddressType.P2PKH, h, a)
    s = p2sh_address(chain, h)
    d = decode_address(chain, s)
    assert (d.type, d.payload, d.text) == (AddressType.P2SH, h, s)


# ------------------------------------------------------------------------------------------------
# Bech32 / bech32m

BECH32_VALID = ["A12UEL5L", "a12uel5l",
                "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
                "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
                "11" + "q" * 82 + "c8247j",
                "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w", "?1ezyfcl"]
BECH32M_VALID = ["A1LQFN3A", "a1lqfn3a",
                 "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
                 "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
                 "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
                 "split1checkupstagehandshakeupstreamerranterredcaperredlc445v", "?1v759aa"]
BECH32M_INVALID = ["\x201xj0phk", "\x7f1g6xzxy", "\x801vctc34",
                   "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
                   "qyrz8wqd2c9m", "1qyrz8wqd2c9m", "y1b0jsk6g", "lt1igcx5c0", "in1muywd", "mm1crxm3i",
                   "au1s5cgom", "M1VUXWEZ", "16plkw9", "1p2gdwpf"]


@pytest.mark.parametrize("text", BECH32_VALID)
def test_bip173_valid_checksums(text: str) -> None:
    assert bech32_decode(text)[2] is Bech32Variant.BECH32


@pytest.mark.parametrize("text", BECH32M_VALID)
def test_bip350_valid_checksums(text: str) -> None:
    assert bech32_decode(text)[2] is Bech32Variant.BECH32M


@pytest.mark.parametrize("text", BECH32M_INVALID)
def test_bip350_invalid_strings(text: str) -> None:
    with pytest.raises(InputError):
        bech32_decode(text)


SEGWIT_VALID = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
    ("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
     "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"),
    ("bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
     "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6"),
    ("BC1SW50QGDZ25J", "6002751e"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
    ("tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
     "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433"),
    ("tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
     "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
     "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"),
]

SEGWIT_INVALID = [
    "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
    "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
    "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
    "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",
    "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
    "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R",
    "bc1pw5dgrnzv",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
    "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j",
    "bc1gmk9yu",
]


@pytest.mark.parametrize(("address", "script_hex"), SEGWIT_VALID)
def test_bip350_valid_segwit_addresses(address: str, script_hex: str) -> None:
    chain = "btc" if address.lower().startswith("bc") else "btc-testnet"
    assert script_for_address(chain, address).hex() == script_hex
    hrp, version, program = decode_segwit(address)
    assert encode_segwit(hrp, version, program) == address.lower()
    assert canonical_address(chain, address) == address.lower()


@pytest.mark.parametrize("address", SEGWIT_INVALID)
def test_bip350_invalid_segwit_addresses(address: str) -> None:
    chain = "btc-testnet" if address.lower().startswith(("tb", "tc")) else "btc"
    with pytest.raises(InvalidAddressError):
        canonical_address(chain, address)


def test_segwit_address_types() -> None:
    assert address_type("btc", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4") is AddressType.P2WPKH
    assert address_type("btc-testnet", SEGWIT_VALID[1][0]) is AddressType.P2WSH
    p2tr = "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
    assert address_type("btc", p2tr) is AddressType.P2TR
    assert address_type("btc", "BC1SW50QGDZ25J") is AddressType.WITNESS_UNKNOWN
    assert AddressType.P2TR.script_type is not None and AddressType.P2TR.script_type.value == "p2tr"


@given(st.integers(0, 16), st.binary(min_size=2, max_size=40))
def test_segwit_round_trip(version: int, program: bytes) -> None:
    if version == 0 and len(program) not in (20, 32):
        with pytest.raises(InputError):
            segwit_address("btc", version, program)
        return
    address = segwit_address("btc", version, program)
    assert address == address.lower() and address.startswith("bc1")
    assert decode_segwit(address) == ("bc", version, program)
    assert decode_address("btc", address.upper()).text == address


def test_segwit_address_needs_segwit_chain() -> None:
    with pytest.raises(InputError, match="doge has no segwit"):
        segwit_address("doge", 0, bytes(20))


# ------------------------------------------------------------------------------------------------
# EVM / EIP-55

EIP55 = ["0x52908400098527886E0F7030069857D2E4169EE7", "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
         "0xde709f2102306220921060314715629080e2fb77", "0x27b1fdb04752bbc536007a920d24acb045561c26",
         "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
         "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"]


@pytest.mark.parametrize("address", EIP55[4:])
def test_eip55_examples(address: str) -> None:
    assert to_checksum_address(address.lower()) == address
    assert canonical_address("eth", address) == address.lower()


@pytest.mark.parametrize("address", EIP55[:4])
def test_single_case_evm_addresses_are_accepted(address: str) -> None:
    assert canonical_address("eth", address) == address.lower()
    assert address_type("bsc", address) is AddressType.EVM


def test_eip55_bad_checksum_and_bad_shape() -> None:
    with pytest.raises(InvalidAddressError, match="EIP-55"):
        canonical_address("eth", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD")
    with pytest.raises(InvalidAddressError, match="40 hex"):
        canonical_address("eth", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe")
    with pytest.raises(InvalidAddressError, match="0x"):
        canonical_address("eth", "TUCsTq7TofTCJRRoHk6RvhMoS2mJLm5Yzq")


@given(st.binary(min_size=20, max_size=20), st.integers(0, 39))
def test_eip55_round_trip_and_case_flip(raw: bytes, flip: int) -> None:
    checksummed = to_checksum_address(raw.hex())
    assert canonical_address("eth", checksummed) == "0x" + raw.hex()
    body = checksummed[2:]
    if not body[flip].isalpha():
        return
    flipped = body[:flip] + body[flip].swapcase() + body[flip + 1:]
    if flipped in (flipped.lower(), flipped.upper()):
        return
    assert not is_valid_address("eth", "0x" + flipped)


# ------------------------------------------------------------------------------------------------
# Per-chain validation: another chain's address is rejected naming the chain


def test_other_chains_are_named() -> None:
    with pytest.raises(InvalidAddressError, match="belongs to ltc"):
        canonical_address("btc", "LNf2JDiuunBz7GMDKFYHN4rq5meXWxiwfb")
    with pytest.raises(InvalidAddressError, match="Tron"):
        canonical_address("btc", "TUCsTq7TofTCJRRoHk6RvhMoS2mJLm5Yzq")
    with pytest.raises(InvalidAddressError, match="bech32 address of btc"):
        canonical_address("ltc", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
    ltc_bech32 = segwit_address("ltc", 0, bytes(range(20)))
    assert ltc_bech32.startswith("ltc1q")
    with pytest.raises(InvalidAddressError, match="bech32 address of ltc"):
        canonical_address("btc", ltc_bech32)
    with pytest.raises(InvalidAddressError, match="belongs to btc"):
        canonical_address("ltc", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")
    with pytest.raises(InvalidAddressError, match="EVM"):
        canonical_address("btc", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
    with pytest.raises(InvalidAddressError, match="is not a valid btc address"):
        canonical_address("btc", "")


def test_ofac_xbt_list(shared_data: Path) -> None:
    addresses = _ofac(shared_data, "XBT")
    assert len(addresses) == 435
    rejected = [a for a in addresses if not is_valid_address("btc", a)]
    assert rejected == ["TUCsTq7TofTCJRRoHk6RvhMoS2mJLm5Yzq"]
    with pytest.raises(InvalidAddressError, match="Tron"):
        canonical_address("btc", rejected[0])
    kinds = [address_type("btc", a) for a in addresses if a not in rejected]
    assert kinds.count(AddressType.P2PKH) == 196
    assert kinds.count(AddressType.P2SH) == 158
    bech = [a for a in addresses if a.startswith("bc1")]
    assert len(bech) == 80
    assert all(canonical_address("btc", a.upper()) == a for a in bech)


def test_ofac_eth_list_canonical_lower_and_checksummed(shared_data: Path) -> None:
    addresses = _ofac(shared_data, "ETH")
    assert len(addresses) == 152
    for a in addresses:
        assert canonical_address("eth", a) == a.lower()
    mixed = [a for a in addresses if a[2:] not in (a[2:].lower(), a[2:].upper())]
    assert mixed and all(to_checksum_address(a.lower()) == a for a in mixed)
    assert "0x12d66f87a04a9e220743712ce6d9bb1b5616b8fc" in {canonical_address("eth", a) for a in addresses}


def test_ofac_other_utxo_lists(shared_data: Path) -> None:
    for asset, chain in (("LTC", "ltc"), ("DASH", "dash"), ("ZEC", "zec")):
        for a in _ofac(shared_data, asset):
            assert canonical_address(chain, a) == a
            assert not is_valid_address("btc", a)
    for a in _ofac(shared_data, "TRX"):
        with pytest.raises(InvalidAddressError, match="Tron"):
            canonical_address("btc", a)
    # BTG (Bitcoin Gold) is not a chain FundTrail knows: rejected for btc.
    assert not is_valid_address("btc", _ofac(shared_data, "BTG")[0])


def test_cashaddr_is_canonicalised_to_legacy(shared_data: Path) -> None:
    bch = _ofac(shared_data, "BCH")
    assert canonical_address("bch", bch[0]) == bch[0]  # legacy form as is
    # CashAddr spec example: the same hash in both forms.
    assert canonical_address("bch", "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a") == \
        "1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu"
    assert canonical_address("bch", "qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a") == \
        "1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu"
    assert canonical_address("bch", "bitcoincash:ppm2qsznhks23z7629mms6s4cwef74vcwvn0h829pq") == \
        "3CWFddi6m4ndiGyKqzYvsFYagqDLPVMTzC"
    for a in bch[1:]:
        assert address_type("bch", a) is AddressType.P2PKH
    with pytest.raises(InvalidAddressError, match="cashaddr checksum"):
        canonical_address("bch", "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6c")


# ------------------------------------------------------------------------------------------------
# Many at once: the vectorised encoders give exactly the scalar results


@given(st.lists(st.tuples(st.sampled_from([b"\x00", b"\x05", b"\x30", b"\x1c\xb8"]),
                          st.binary(min_size=20, max_size=20)), min_size=0, max_size=80))
def test_b58check_encode_many_matches_scalar(items: list[tuple[bytes, bytes]]) -> None:
    payloads = [prefix + h for prefix, h in items]
    payloads += [b"\x00" * 21, b"\x00\x00" + b"\x01" * 19] * 10  # leading zero bytes, a full group
    assert b58check_encode_many(payloads) == [b58check_encode(p) for p in payloads]


def test_b58check_encode_many_known() -> None:
    h = bytes.fromhex("62e907b15cbf27d5425399ebf6f0fb50ebb88f18")
    assert b58check_encode_many([b"\x00" + h] * 20) == ["1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"] * 20


@given(st.lists(st.one_of(
    st.tuples(st.just(0), st.binary(min_size=20, max_size=20)),
    st.tuples(st.just(0), st.binary(min_size=32, max_size=32)),
    st.tuples(st.just(1), st.binary(min_size=32, max_size=32)),
    st.tuples(st.integers(1, 16), st.binary(min_size=2, max_size=40)),
), min_size=0, max_size=60))
def test_encode_segwit_many_matches_scalar(items: list[tuple[int, bytes]]) -> None:
    items = items + [(0, bytes(range(20)))] * 17 + [(1, bytes(range(32)))] * 17  # vectorised groups
    assert encode_segwit_many("bc", items) == [encode_segwit("bc", v, p) for v, p in items]


def test_encode_segwit_many_known() -> None:
    program = bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6")
    taproot = bytes.fromhex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
    got = encode_segwit_many("bc", [(0, program)] * 20 + [(1, taproot)] * 20)
    assert got[:20] == ["bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"] * 20
    assert got[20:] == ["bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"] * 20
    with pytest.raises(InputError):
        encode_segwit_many("bc", [(0, bytes(25))])
