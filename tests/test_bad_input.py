"""Every bad input gets one line on stderr and exit code 2, and nothing stored.

Each test crafts a malicious or broken input in ``tmp_path`` (alias bombs, gzip bombs of newlines,
amounts beyond what the store keeps, folders where files belong, deep JSON, lists that would empty a
sanctions list, partner packages holding markup and invisible characters, truncated bundles) and runs
the CLI the way a user would. The bounds are proven with small limits set through the environment,
and the default bounds are shown to be in force on the real code path.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import sharing.conftest as cooperation
from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
from fundtrail.errors import ParseError
from fundtrail.limits import InputLimits, input_limits
from fundtrail.sharing import envelope as env
from fundtrail.sharing import stix
from fundtrail.sharing.models import SharedObject, SharedPackage
from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_batches
from sharing.conftest import D1
from sharing.test_packages import export

# The cooperation fixtures: two agencies (``pair``: A in EE, B in SC) with agreements both ways.
chain_template = cooperation.chain_template
pair_template = cooperation.pair_template
pair = cooperation.pair

P2PKH_HEX = "76a914b5cd7aaed869cd5ccb45868e8666e7e934a2373688ac"  # 1HaHTfmvoUW6i6nhJf8jJs6tU4cHNmBQHQ


# ------------------------------------------------------------------------------------------ helpers


def one_line_error(result: Any, *needles: str) -> str:
    """Assert exit code 2 and a single stderr line holding every needle; return the line."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    text = result.stderr.strip()
    assert text.startswith("error: "), text
    assert "\n" not in text, text
    assert "Traceback" not in text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def store_rows(home: Path) -> dict[str, list[str]]:
    """Every row of every table of the home's chain store (what must not change)."""
    if not (home / "chain.duckdb").exists():
        return {}
    with ChainStore.open_home(home, read_only=True) as store:
        tables = [r[0] for r in store.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
        return {t: sorted(repr(r) for r in store.con.execute(f'SELECT * FROM "{t}"').fetchall())
                for t in sorted(tables)}


def txid(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def btc_row(height: int, label: str, value: int = 5_000, *, n: int = 0,
            inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One bitcoin-etl transaction row with one output."""
    return {"hash": txid(label), "size": 200, "virtual_size": 200, "version": 1, "lock_time": 0,
            "block_number": height, "block_hash": txid(f"block {height}"),
            "block_timestamp": 1_600_000_000 + height, "is_coinbase": not inputs, "index": 0,
            "inputs": inputs or [],
            "outputs": [{"index": n, "script_hex": P2PKH_HEX, "type": "pubkeyhash", "addresses": [],
                         "value": value}]}


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def btc_home(home: Path, tmp_path: Path, cli: Callable[..., Any]) -> Path:
    """A home whose chain store already holds block 0 (what a refused ingest must leave as it is)."""
    good = jsonl(tmp_path / "good.json", [btc_row(0, "cb0")])
    assert cli("ingest", "bitcoin-etl", str(good), "--home", str(home)).exit_code == 0
    return home


# ------------------------------------------------------------------------ 1. YAML alias bombs


def laughs(levels: int, width: int = 9) -> str:
    """A "billion laughs" YAML TagPack: each level an alias list of the one below."""
    lines = ["lol0: &lol0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels + 1):
        lines.append(f"lol{level}: &lol{level} [" + ", ".join([f"*lol{level - 1}"] * width) + "]")
    lines += ["title: bomb", "creator: mallory", "currency: BTC", "source: https://example.org",
              f"tags: [{{address: 1HaHTfmvoUW6i6nhJf8jJs6tU4cHNmBQHQ, label: x, context: *lol{levels}}}]"]
    return "\n".join(lines) + "\n"


def good_pack(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"title": "good", "creator": "unit", "currency": "BTC",
                                    "source": "https://example.org", "tags": [
                                        {"address": "1HaHTfmvoUW6i6nhJf8jJs6tU4cHNmBQHQ", "label": "ok"}]}))
    return path


def test_tagpack_alias_bomb_is_refused_by_the_default_bound(cli, home: Path, tmp_path: Path) -> None:
    assert cli("tags", "import", str(good_pack(tmp_path / "good.yaml")), "--home", str(home)).exit_code == 0
    before = store_rows(home)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs(9))  # 9^10 strings once expanded: gigabytes, minutes
    one_line_error(cli("tags", "import", str(bomb), "--home", str(home)),
                   str(bomb), "YAML aliases expand the document", "FUNDTRAIL_MAX_YAML_ALIAS_NODES")
    assert store_rows(home) == before


def test_tagpack_alias_bound_is_configurable(cli, home: Path, tmp_path: Path, monkeypatch) -> None:
    small = tmp_path / "small-bomb.yaml"
    small.write_text(laughs(3))  # 9^4 strings: harmless, but past a bound of 1,000 alias nodes
    monkeypatch.setenv("FUNDTRAIL_MAX_YAML_ALIAS_NODES", "1000")
    one_line_error(cli("tags", "import", str(small), "--home", str(home)), str(small), "more than 1,000")
    assert store_rows(home).get("tags", []) == []
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("title: t\ncreator: c\nsource: s\ncurrency: BTC\ntags: &t [*t]\n")
    one_line_error(cli("tags", "import", str(recursive), "--home", str(home)), str(recursive), "recursive")
    monkeypatch.setenv("FUNDTRAIL_MAX_DOCUMENT_BYTES", "100")
    big = good_pack(tmp_path / "big.yaml")
    one_line_error(cli("tags", "import", str(big), "--home", str(home)), str(big),
                   "larger than 100 bytes", "FUNDTRAIL_MAX_DOCUMENT_BYTES")
    assert store_rows(home).get("tags", []) == []


def test_shared_tagpack_alias_bomb_is_refused(cli, pair, tmp_path: Path) -> None:
    a, b = pair
    out = tmp_path / "case.tagpack"
    export(a, "tagpack", out)
    out.write_text(laughs(9))
    resign_sidecar(a, out)
    before = store_rows(b.home)
    one_line_error(cli("share", "import", str(out), "--home", str(b.home), "--as", "lia"),
                   out.name, "YAML aliases expand the document")
    assert_nothing_shared(b)
    assert store_rows(b.home) == before


# ------------------------------------------------------------ 2. gzip bombs of blank lines


def test_gzip_of_blank_lines_is_refused_by_the_default_bound(cli, btc_home: Path, tmp_path: Path) -> None:
    bound = InputLimits().max_blank_lines
    assert input_limits({}).max_blank_lines == bound  # no environment: the default is in force
    bomb = tmp_path / "newlines.json.gz"
    bomb.write_bytes(gzip.compress(b"\n" * (bound + 1), 9))
    before = store_rows(btc_home)
    one_line_error(cli("ingest", "bitcoin-etl", str(bomb), "--home", str(btc_home)),
                   str(bomb), f"more than {bound:,} blank lines", "FUNDTRAIL_MAX_BLANK_LINES")
    assert store_rows(btc_home) == before


def test_blank_line_and_size_bounds_are_configurable(cli, btc_home: Path, tmp_path: Path,
                                                    monkeypatch) -> None:
    before = store_rows(btc_home)
    bomb = tmp_path / "newlines.json.gz"
    bomb.write_bytes(gzip.compress(b"\n" * 50 + json.dumps(btc_row(1, "cb1")).encode() + b"\n"))
    monkeypatch.setenv("FUNDTRAIL_MAX_BLANK_LINES", "10")
    one_line_error(cli("ingest", "bitcoin-etl", str(bomb), "--home", str(btc_home)),
                   f"{bomb}:11", "more than 10 blank lines")
    monkeypatch.delenv("FUNDTRAIL_MAX_BLANK_LINES")
    big = tmp_path / "big.json.gz"
    big.write_bytes(gzip.compress(b"".join(json.dumps(btc_row(h, f"cb{h}")).encode() + b"\n"
                                           for h in range(1, 40))))
    monkeypatch.setenv("FUNDTRAIL_MAX_DECOMPRESSED_BYTES", "4000")
    one_line_error(cli("ingest", "bitcoin-etl", str(big), "--home", str(btc_home)),
                   str(big), "more than 4,000 bytes (decompressed)", "FUNDTRAIL_MAX_DECOMPRESSED_BYTES")
    monkeypatch.setenv("FUNDTRAIL_MAX_DECOMPRESSED_BYTES", "nonsense")
    one_line_error(cli("ingest", "bitcoin-etl", str(big), "--home", str(btc_home)),
                   "FUNDTRAIL_MAX_DECOMPRESSED_BYTES", "positive whole number")
    monkeypatch.delenv("FUNDTRAIL_MAX_DECOMPRESSED_BYTES")
    monkeypatch.setenv("FUNDTRAIL_MAX_LINE_BYTES", "100")
    one_line_error(cli("ingest", "bitcoin-etl", str(big), "--home", str(btc_home)),
                   f"{big}:1", "a line longer than 100 bytes")
    assert store_rows(btc_home) == before


# ------------------------------------------------------------- 3. amounts the store cannot keep


@pytest.mark.parametrize(("value", "needle"), [
    (-5, "is negative (-5)"),
    (-(2**63), "is negative (-9223372036854775808)"),
    # JSON integers beyond 64 bits come out of the parser inexact: refused as not an integer
    (10**38, "must be an integer"),
    (2**300, "must be an integer"),
])
def test_bitcoin_output_values_beyond_the_store_are_refused(cli, btc_home: Path, tmp_path: Path,
                                                           value: int, needle: str) -> None:
    before = store_rows(btc_home)
    bad = jsonl(tmp_path / "bad.json", [btc_row(1, "cb1"), btc_row(2, "cb2", value)])
    one_line_error(cli("ingest", "bitcoin-etl", str(bad), "--home", str(btc_home)),
                   f"{bad}:2", "outputs[0]: field 'value'", needle)
    assert store_rows(btc_home) == before  # one batch: block 1 is not stored either


def test_bitcoin_negative_input_value_is_refused(cli, btc_home: Path, tmp_path: Path) -> None:
    before = store_rows(btc_home)
    spend = btc_row(1, "t1", 1_000, inputs=[{"index": 0, "spent_transaction_hash": txid("cb0"),
                                             "spent_output_index": 0, "value": -1, "addresses": []}])
    bad = jsonl(tmp_path / "bad.json", [spend])
    one_line_error(cli("ingest", "bitcoin-etl", str(bad), "--home", str(btc_home)),
                   f"{bad}:1", "inputs[0]: field 'value' is negative")
    assert store_rows(btc_home) == before


def test_a_refused_batch_stores_nothing_of_itself(tmp_path: Path) -> None:
    """Ingest writes batch by batch, each in one transaction: a bad row stops the run after the last
    complete batch. Batches before it stay (whole blocks, resumable), nothing of the bad one is stored."""
    bad = jsonl(tmp_path / "bad.json", [btc_row(0, "cb0"), btc_row(1, "cb1"), btc_row(2, "cb2", -1)])
    with ChainStore(tmp_path / "chain.duckdb") as store:
        with pytest.raises(ParseError, match="is negative"):
            ingest_batches(store, "btc", read_bitcoin_etl([bad], "btc", batch_size=1, prefetch=False))
        heights = [r[0] for r in store.con.execute("SELECT height FROM blocks ORDER BY height").fetchall()]
        assert heights == [0, 1]
        assert store.con.execute("SELECT count(*) FROM txs WHERE height = 2").fetchone()[0] == 0
        assert store.con.execute("SELECT count(*) FROM outputs WHERE height = 2").fetchone()[0] == 0


def evm_export(folder: Path, value: str) -> Path:
    folder.mkdir()
    (folder / "blocks.csv").write_text(
        "number,hash,parent_hash,timestamp\n"
        f"0,0x{txid('b0')},0x{'0' * 64},1600000000\n1,0x{txid('b1')},0x{txid('b0')},1600000012\n")
    (folder / "transactions.csv").write_text(
        "hash,block_number,transaction_index,from_address,to_address,value\n"
        f"0x{txid('t0')},0,0,0x{'1' * 40},0x{'2' * 40},1000\n"
        f"0x{txid('t1')},1,0,0x{'1' * 40},0x{'2' * 40},{value}\n")
    return folder


@pytest.mark.parametrize(("value", "needle"), [(str(2**300), "(91 digits)"), ("-7", "not an integer")])
def test_ethereum_value_beyond_the_store_is_refused(cli, home: Path, tmp_path: Path, value: str,
                                                   needle: str) -> None:
    folder = evm_export(tmp_path / "export", value)
    one_line_error(cli("ingest", "ethereum-etl", str(folder), "--chain", "eth", "--home", str(home)),
                   f"{folder / 'transactions.csv'}:3", "column 'value'", needle)
    assert store_rows(home).get("transfers", []) == []  # one batch: block 0 is not stored either
    assert store_rows(home).get("blocks", []) == []


# --------------------------------------------------------------- 4. tracebacks instead of one line


def test_folder_given_for_a_bitcoin_etl_file(cli, btc_home: Path, tmp_path: Path) -> None:
    before = store_rows(btc_home)
    one_line_error(cli("ingest", "bitcoin-etl", str(tmp_path), "--home", str(btc_home)),
                   str(tmp_path), "is a folder")
    assert store_rows(btc_home) == before


def test_folder_given_for_a_trace_file(cli, home: Path, tmp_path: Path) -> None:
    ChainStore.open_home(home).close()
    one_line_error(cli("case", "preserve", "X-1", "--trace-file", str(tmp_path), "--home", str(home),
                       "--as", "ivo"), str(tmp_path), "is a folder")


def test_output_index_beyond_the_store_is_refused(cli, btc_home: Path, tmp_path: Path) -> None:
    before = store_rows(btc_home)
    bad = jsonl(tmp_path / "bad.json", [btc_row(1, "cb1", n=2**40)])
    one_line_error(cli("ingest", "bitcoin-etl", str(bad), "--home", str(btc_home)),
                   f"{bad}:1", "outputs[0]: field 'index' 1099511627776 is out of range")
    assert store_rows(btc_home) == before


def test_etherscan_csv_with_bad_utf8(cli, home: Path, tmp_path: Path) -> None:
    labels = tmp_path / "exchange.csv"
    labels.write_bytes(b"Address,Name Tag\n0x" + b"1" * 40 + b",Good\n"
                       b"0x" + b"2" * 40 + b",Bad \xff\xfe name\n")
    one_line_error(cli("tags", "import", str(labels), "--home", str(home)),
                   f"{labels}:line 3", "not UTF-8 text (byte 0xff")
    assert store_rows(home).get("tags", []) == []


def test_stix_nested_deeply_is_refused(cli, pair, tmp_path: Path) -> None:
    _, b = pair
    deep = tmp_path / "deep.stix.json"
    deep.write_text('{"type": "bundle", "objects": ' + "[" * 100_000 + "]" * 100_000 + "}")
    one_line_error(cli("share", "import", str(deep), "--home", str(b.home), "--as", "lia"),
                   deep.name, "nested too deeply")
    shallow = tmp_path / "shallow.stix.json"
    shallow.write_text('{"type": "bundle", "objects": ' + "[" * 200 + "]" * 200 + "}")
    one_line_error(cli("share", "import", str(shallow), "--home", str(b.home), "--as", "lia"),
                   shallow.name, "nested more than 100 levels deep", "FUNDTRAIL_MAX_NESTING")
    assert_nothing_shared(b)


# ------------------------------------------------------------ 5. a list that would empty a list


def test_sanctions_list_without_valid_addresses_does_not_empty_the_list(cli, home: Path,
                                                                        tmp_path: Path) -> None:
    day = tmp_path / "day"
    day.mkdir()
    good = day / "sanctioned_addresses_XBT.txt"
    good.write_text("1HaHTfmvoUW6i6nhJf8jJs6tU4cHNmBQHQ\n")
    assert cli("sanctions", "import", str(good), "--date", "2026-01-02", "--home", str(home)).exit_code == 0
    before = store_rows(home)
    broken = tmp_path / "broken"
    broken.mkdir()
    empty = broken / "sanctioned_addresses_XBT.txt"
    empty.write_text("not-an-address\n<script>\n")
    eth = broken / "sanctioned_addresses_ETH.txt"
    eth.write_text("0x" + "3" * 40 + "\n")  # valid, but the import is refused whole
    for day_given in ("2026-01-02", "2026-01-03"):
        one_line_error(cli("sanctions", "import", str(eth), str(empty), "--date", day_given,
                           "--home", str(home)),
                       str(empty), "holds no valid address", "empty the OFAC SDN XBT list", "--replace")
        assert store_rows(home) == before
    assert cli("sanctions", "import", str(empty), "--date", "2026-01-02", "--replace",
               "--home", str(home)).exit_code == 0
    assert store_rows(home) != before


# ------------------------------------------------------- 6. partner packages with unsafe fields


def assert_nothing_shared(b: Any) -> None:
    assert b.count(SharedPackage, direction="received") == 0
    assert b.count(SharedObject) == 0
    assert b.tag_count() == 0
    assert not (b.home / "shared").exists() or not any((b.home / "shared").iterdir())


def resign_sidecar(a: Any, payload: Path, **updates: Any) -> None:
    """Pin the payload as it now is and sign the envelope again with the sender's key (a partner that
    signs whatever it sends)."""
    sidecar = env.sidecar_of(payload)
    envelope = env.Envelope.model_validate(json.loads(sidecar.read_text()))
    name = next(iter(envelope.contents.files or {payload.name: ""}))
    contents = env.Contents(files={name: env.file_sha256(payload)})
    signed = env.sign(envelope.model_copy(update={"contents": contents, "signature": None, **updates}), a.key)
    env.write_sidecar(payload, signed)


def resign_bundle(a: Any, bundle: dict[str, Any], **updates: Any) -> dict[str, Any]:
    """The bundle with its objects pinned as they now are and the envelope signed again by ``a``."""
    package = next(o for o in bundle["objects"] if o["type"] == stix.PACKAGE_TYPE)
    rest = [o for o in bundle["objects"] if o is not package]
    envelope = env.Envelope.model_validate(package["envelope"])
    contents = env.Contents(objects=stix.contents_of(rest))
    signed = env.sign(envelope.model_copy(update={"contents": contents, "signature": None, **updates}), a.key)
    package["envelope"] = signed.document()
    return bundle


@pytest.mark.parametrize("address", [
    "<img src=x onerror=alert(1)>",
    "\u200b" + "bc1qexample",
    "\u202e" + "bc1qexample",
])
def test_stix_wallet_address_with_markup_or_invisible_characters(cli, pair, tmp_path: Path,
                                                                address: str) -> None:
    a, b = pair
    out = tmp_path / "case.stix.json"
    export(a, "stix", out)
    bundle = json.loads(out.read_text())
    wallet = next(o for o in bundle["objects"] if o["type"] == "cryptocurrency-wallet" and o["value"] == D1)
    wallet["value"] = address + D1
    out.write_text(json.dumps(resign_bundle(a, bundle)))
    one_line_error(cli("share", "import", str(out), "--home", str(b.home), "--as", "lia"),
                   out.name, wallet["id"], "field value")
    assert_nothing_shared(b)


def test_a_huge_case_number_is_refused(cli, pair, tmp_path: Path) -> None:
    a, b = pair
    out = tmp_path / "case.stix.json"
    export(a, "stix", out)
    out.write_text(json.dumps(resign_bundle(a, json.loads(out.read_text()), case="7" * 100_000)))
    line = one_line_error(cli("share", "import", str(out), "--home", str(b.home), "--as", "lia"),
                          "envelope", "field case", "100,000 characters, more than 100")
    assert len(line) < 300
    assert_nothing_shared(b)


def test_ftm_wallet_address_with_markup_is_refused(cli, pair, tmp_path: Path) -> None:
    a, b = pair
    out = tmp_path / "case.ftm"
    export(a, "ftm", out)
    lines = []
    for text in out.read_text().splitlines():
        entity = json.loads(text)
        if entity["schema"] == "CryptoWallet" and entity["properties"].get("publicKey") == [D1]:
            entity["properties"]["publicKey"] = ["<b>" + D1 + "</b>\u200d"]
        lines.append(json.dumps(entity, sort_keys=True))
    out.write_text("\n".join(lines) + "\n")
    resign_sidecar(a, out)
    one_line_error(cli("share", "import", str(out), "--home", str(b.home), "--as", "lia"),
                   out.name, "wallet", "field properties.publicKey[0]", "U+200D ZERO WIDTH JOINER")
    assert_nothing_shared(b)


def test_stix_label_with_a_bidi_override_is_refused(cli, pair, tmp_path: Path) -> None:
    a, b = pair
    out = tmp_path / "case.stix.json"
    export(a, "stix", out)
    bundle = json.loads(out.read_text())
    service = next(o for o in bundle["objects"]
                   if o["type"] == "identity" and o.get("name") == "Northwind Exchange")
    service["name"] = "Northwind \u202eegnahcxE"
    out.write_text(json.dumps(resign_bundle(a, bundle)))
    one_line_error(cli("share", "import", str(out), "--home", str(b.home), "--as", "lia"),
                   service["id"], "field name", "U+202E RIGHT-TO-LEFT OVERRIDE, a format character")
    assert_nothing_shared(b)


# ------------------------------------------------------------- 7. truncated or random bundles


def test_truncated_random_or_foreign_files_say_what_they_are(cli, pair, tmp_path: Path) -> None:
    a, b = pair
    out = tmp_path / "case.stix.json"
    export(a, "stix", out)
    whole = out.read_bytes()
    truncated = tmp_path / "truncated.stix.json"
    truncated.write_bytes(whole[: len(whole) // 2])
    one_line_error(cli("share", "import", str(truncated), "--home", str(b.home), "--as", "lia"),
                   truncated.name, "truncated JSON")
    random = tmp_path / "random.stix.json"
    random.write_bytes(hashlib.sha512(b"noise").digest() * 64)
    one_line_error(cli("share", "import", str(random), "--home", str(b.home), "--as", "lia"),
                   random.name, "binary data", "not a STIX bundle")
    broken = tmp_path / "broken.stix.json"
    broken.write_text('{"type": "bundle", "objects": [}')
    one_line_error(cli("share", "import", str(broken), "--home", str(b.home), "--as", "lia"),
                   broken.name, "not valid JSON")
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"hello": "world"}')
    one_line_error(cli("share", "import", str(foreign), "--home", str(b.home), "--as", "lia"),
                   foreign.name, "not a STIX 2.1 bundle")
    empty = tmp_path / "empty.stix.json"
    empty.write_text("")
    one_line_error(cli("share", "import", str(empty), "--home", str(b.home), "--as", "lia"),
                   empty.name, "empty file")
    assert_nothing_shared(b)
