"""Output script classification: templates, addresses, and robustness on arbitrary bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundtrail.domain.addresses import script_for_address
from fundtrail.domain.chains import get_chain
from fundtrail.domain.records import ScriptType
from fundtrail.domain.scripts import classify_script, classify_scripts, hash160

G_COMPRESSED = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
G_UNCOMPRESSED = ("0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
                  "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8")
GENESIS_PUBKEY = ("04678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb6"
                  "49f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5f")

CASES = [
    # genesis coinbase output: P2PK, shown as the P2PKH address of its key
    ("41" + GENESIS_PUBKEY + "ac", ScriptType.P2PK, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
    # the keys of private key 1, compressed and uncompressed
    ("21" + G_COMPRESSED + "ac", ScriptType.P2PK, "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"),
    ("41" + G_UNCOMPRESSED + "ac", ScriptType.P2PK, "1EHNa6Q4Jz2uvNExL497mE43ikXhwF6kZm"),
    ("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac", ScriptType.P2PKH,
     "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
    ("a9148f55563b9a19f321c211e9b9f38cdf686ea0784587", ScriptType.P2SH, "3EktnHQD7RiAE6uzMj2ZifT9YgRrkSgzQX"),
    ("0014751e76e8199196d454941c45d1b3a323f1433bd6", ScriptType.P2WPKH,
     "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
    ("00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262", ScriptType.P2WSH,
     "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3"),
    ("512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", ScriptType.P2TR,
     "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"),
    ("6002751e", ScriptType.WITNESS_UNKNOWN, "bc1sw50qgdz25j"),
    ("5210751e76e8199196d454941c45d1b3a323", ScriptType.WITNESS_UNKNOWN,
     "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs"),
    ("5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
     ScriptType.WITNESS_UNKNOWN,
     "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y"),
    ("5121" + G_COMPRESSED + "21" + G_COMPRESSED + "52ae", ScriptType.MULTISIG, None),
    ("5141" + G_UNCOMPRESSED + "51ae", ScriptType.MULTISIG, None),
    ("6a04deadbeef", ScriptType.NULLDATA, None),
    ("6a", ScriptType.NULLDATA, None),
    ("6a4c0401020304", ScriptType.NULLDATA, None),
    ("6aff", ScriptType.NONSTANDARD, None),          # OP_RETURN followed by a non-push
    ("6a05aabb", ScriptType.NONSTANDARD, None),      # push runs past the end
    ("", ScriptType.NONSTANDARD, None),
    ("51", ScriptType.NONSTANDARD, None),
    ("0017" + "00" * 23, ScriptType.NONSTANDARD, None),  # v0 program of neither 20 nor 32 bytes
    ("5221" + G_COMPRESSED + "51ae", ScriptType.NONSTANDARD, None),  # m > n
    ("5121" + G_COMPRESSED + "52ae", ScriptType.NONSTANDARD, None),  # n does not match the keys
    ("2105" + G_COMPRESSED[2:] + "ac", ScriptType.NONSTANDARD, None),  # 33 bytes with a bad key prefix
    ("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ad", ScriptType.NONSTANDARD, None),
]


@pytest.mark.parametrize(("script_hex", "kind", "address"), CASES)
def test_templates_btc(script_hex: str, kind: ScriptType, address: str | None) -> None:
    assert classify_script("btc", bytes.fromhex(script_hex)) == (kind, address)


def test_other_chains() -> None:
    p2pkh = bytes.fromhex("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac")
    assert classify_script("ltc", p2pkh) == (ScriptType.P2PKH, "LUEweDxDA4WhvWiNXXSxjM9CYzHPJv4QQF")
    assert classify_script(get_chain("btc-testnet"), p2pkh)[1] == "mpXwg4jMtRhuSpVq4xS3HFHmCmWp9NyGKt"
    p2wpkh = bytes.fromhex("0014751e76e8199196d454941c45d1b3a323f1433bd6")
    assert classify_script("btc-testnet", p2wpkh) == (ScriptType.P2WPKH,
                                                      "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx")
    # chains without segwit addresses: a witness-program-shaped script pays nobody known
    assert classify_script("doge", p2wpkh) == (ScriptType.NONSTANDARD, None)


def test_hash160() -> None:
    assert hash160(b"").hex() == "b472a266d0bd89c13706a4132ccfb16f7c3b9fcb"


@given(st.binary(max_size=120))
def test_any_bytes_classify_without_error(script: bytes) -> None:
    kind, address = classify_script("btc", script)
    assert isinstance(kind, ScriptType)
    if kind in (ScriptType.MULTISIG, ScriptType.NULLDATA, ScriptType.NONSTANDARD):
        assert address is None
    elif kind is not ScriptType.P2PK:
        assert address is not None
        assert script_for_address("btc", address) == script  # address and script agree


@given(st.sampled_from(["76a914{}88ac", "a914{}87", "0014{}"]), st.binary(min_size=20, max_size=20))
def test_hash_templates_round_trip(template: str, h: bytes) -> None:
    script = bytes.fromhex(template.format(h.hex()))
    kind, address = classify_script("btc", script)
    assert kind in (ScriptType.P2PKH, ScriptType.P2SH, ScriptType.P2WPKH)
    assert address is not None and script_for_address("btc", address) == script


SCRIPT_SAMPLES = [bytes.fromhex(c[0]) for c in CASES]


@given(st.lists(st.one_of(
    st.sampled_from(SCRIPT_SAMPLES),
    st.builds(lambda h: bytes.fromhex("76a914") + h + bytes.fromhex("88ac"),
              st.binary(min_size=20, max_size=20)),
    st.builds(lambda h: bytes.fromhex("a914") + h + b"\x87", st.binary(min_size=20, max_size=20)),
    st.builds(lambda h: bytes.fromhex("0014") + h, st.binary(min_size=20, max_size=20)),
    st.builds(lambda h: bytes.fromhex("5120") + h, st.binary(min_size=32, max_size=32)),
    st.binary(max_size=40),
), max_size=120), st.sampled_from(["btc", "ltc", "doge", "btc-testnet"]))
def test_classify_scripts_matches_one_by_one(scripts: list[bytes], chain: str) -> None:
    scripts = scripts + SCRIPT_SAMPLES * 16  # enough of each shape for the vectorised encoders
    types, addresses = classify_scripts(chain, scripts)
    assert list(zip(types, addresses, strict=True)) == [classify_script(chain, s) for s in scripts]


def test_classify_scripts_empty() -> None:
    assert classify_scripts("btc", []) == ([], [])
