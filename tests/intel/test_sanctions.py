"""Sanctioned-address lists: asset routing, flagged invalid addresses, list dates, screening, diffs."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fundtrail.domain.addresses import b58check_decode
from fundtrail.errors import InputError
from fundtrail.intel.sanctions import (
    asset_of_file,
    check_address,
    diff_lists,
    file_address,
    import_list,
    list_date,
    list_files,
    sanctioned_among,
    tron_address,
)


@pytest.fixture()
def ofac(shared_data: Path) -> Path:
    """The real OFAC list folder."""
    return shared_data / "ofac_sanctioned_addresses"


def test_asset_from_file_name() -> None:
    assert asset_of_file(Path("x/sanctioned_addresses_XBT.txt")) == "XBT"
    assert asset_of_file(Path("sanctioned_addresses_usdt.json")) == "USDT"
    with pytest.raises(InputError, match="--asset"):
        asset_of_file(Path("list.txt"))


def test_xbt_list_keeps_and_flags_the_tron_address(store, ofac) -> None:
    result = import_list(store, ofac / "sanctioned_addresses_XBT.txt", listed_on=date(2024, 9, 27))
    assert result.addresses == 435 and result.chains == {"btc": 435}
    assert result.date_basis == "option" and result.listed_on == date(2024, 9, 27)
    assert len(result.warnings) == 1 and "TUCsTq7TofTCJRRoHk6RvhMoS2mJLm5Yzq" in result.warnings[0]
    rows = store.query("SELECT chain, is_valid, problem FROM sanctions "
                       "WHERE address = 'TUCsTq7TofTCJRRoHk6RvhMoS2mJLm5Yzq'")
    assert rows[0][:2] == ("btc", False) and "Tron" in rows[0][2]
    # Screening still finds it, flagged.
    hit, = check_address(store, "btc", "TUCsTq7TofTCJRRoHk6RvhMoS2mJLm5Yzq")
    assert hit.is_listed and not hit.is_valid


def test_usdt_addresses_go_to_the_chain_their_format_fits(store, ofac) -> None:
    # Counted by hand in sanctioned_addresses_USDT.txt: 8 0x…, 11 T…, 5 1… and 2 3… (Omni on Bitcoin).
    result = import_list(store, ofac / "sanctioned_addresses_USDT.txt", listed_on=date(2024, 9, 27))
    assert result.chains == {"eth": 8, "trx": 11, "btc": 7}
    assert not result.warnings
    assert file_address("USDT", "0x175d44451403Edf28469dF03A9280c1197ADb92c").address == \
        "0x175d44451403edf28469df03a9280c1197adb92c"


def test_every_list_imports(store, ofac) -> None:
    files = list_files([ofac])
    assert len(files) == 17  # one per asset, .txt preferred over .json
    counts = {import_list(store, f, listed_on=date(2024, 9, 27)).asset_code: f for f in files}
    by_asset = dict(store.query("SELECT asset_code, count(*) FROM sanctions GROUP BY 1"))
    assert set(counts) == set(by_asset)
    assert (by_asset["XBT"], by_asset["ETH"], by_asset["USDT"], by_asset["LTC"], by_asset["BCH"]) == (
        435, 152, 26, 10, 7)
    # BCH CashAddr entries are filed in their canonical legacy form, so a lookup by CashAddr matches.
    assert store.query("SELECT count(*) FROM sanctions WHERE chain = 'bch' AND address LIKE 'q%'") == [(0,)]


def test_json_and_txt_lists_are_the_same_snapshot(store, ofac) -> None:
    import_list(store, ofac / "sanctioned_addresses_ETH.txt", listed_on=date(2024, 9, 27))
    import_list(store, ofac / "sanctioned_addresses_ETH.json", listed_on=date(2024, 9, 27))
    assert store.query("SELECT count(*) FROM sanctions") == [(152,)]


def test_evm_matching_ignores_letter_case(store, ofac) -> None:
    import_list(store, ofac / "sanctioned_addresses_ETH.txt", listed_on=date(2024, 9, 27))
    for spelling in ("0x12D66f87A04A9E220743712cE6d9bB1B5616B8Fc",
                     "0x12d66f87a04a9e220743712ce6d9bb1b5616b8fc",
                     "0x910CBD523D972EB0A6F4CAE4618AD62622B39DBF"):
        hits = check_address(store, "eth", spelling)
        assert len(hits) == 1 and hits[0].is_listed and hits[0].same_chain, spelling
    # The same key on another EVM chain is reported, marked as listed for eth.
    other, = check_address(store, "bsc", "0x12d66f87a04a9e220743712ce6d9bb1b5616b8fc")
    assert other.chain == "eth" and not other.same_chain
    assert check_address(store, "eth", "0x0000000000000000000000000000000000000001") == []
    found = sanctioned_among(store, "eth", ["0x910cbd523d972eb0a6f4cae4618ad62622b39dbf", "0x" + "11" * 20])
    assert list(found) == ["0x910cbd523d972eb0a6f4cae4618ad62622b39dbf"]


def test_list_date_from_the_list_the_file_name_the_folder_never_the_mtime(ofac, store, tmp_path) -> None:
    dated = list_date(ofac / "history" / "2022-09-16_96f89d7" / "sanctioned_addresses_ETH.txt")
    assert (dated.day, dated.basis) == (date(2022, 9, 16), "folder name")
    own = tmp_path / "sanctioned_addresses_LTC.txt"
    own.write_text("# OFAC SDN list published 2024-09-27\nLZ2ozFh2YiwrQ6GjHqL3SVmyLnQm5n7SYY\n")
    as_json = tmp_path / "sanctioned_addresses_BCH.json"
    as_json.write_text(json.dumps({"date": "2023-10-04", "addresses": ["1BaBJNosQ1EUHxCkLm43hNg7KUKXzUNRba"]},
                                  indent=1))
    named = tmp_path / "sanctioned_addresses_DASH_2022-09-16.txt"
    named.write_text("XpRo4WczedMqzcpwfzE8XT2i6QTbdYWfmv\n")
    plain = tmp_path / "sanctioned_addresses_ZEC.txt"
    plain.write_text("t1MMXtBNnmvWDmVTdvB3zr8sUTNkEJTVbNx\n")
    for path in (own, as_json, named, plain):
        os.utime(path, (1_700_000_000, 1_700_000_000))  # 2023-11-14 UTC: a copy's time, never the list's
    results = {r.asset_code: r for r in (import_list(store, p) for p in (own, as_json, named, plain))}
    assert (results["LTC"].listed_on, results["LTC"].date_basis) == (date(2024, 9, 27), "list")
    assert results["LTC"].addresses == 1  # the comment line is not an address
    assert (results["BCH"].listed_on, results["BCH"].date_basis) == (date(2023, 10, 4), "list")
    assert (results["DASH"].listed_on, results["DASH"].date_basis) == (date(2022, 9, 16), "file name")
    assert results["ZEC"].listed_on == datetime.now(UTC).date()
    assert results["ZEC"].date_basis.startswith("import day")
    assert asset_of_file(named) == "DASH"


def test_tron_addresses_screen_in_base58_and_hex_one_or_many(cli, home, ofac, tmp_path) -> None:
    out = cli("sanctions", "import", str(ofac / "sanctioned_addresses_TRX.txt"), "--date", "2024-09-27",
              "--home", str(home))
    assert out.exit_code == 0, out.output
    listed = (ofac / "sanctioned_addresses_TRX.txt").read_text().split()[0]
    as_hex = "0x" + b58check_decode(listed).hex()
    assert tron_address(as_hex) == tron_address(as_hex[2:]) == listed
    one = cli("sanctions", "check", as_hex, "--chain", "trx", "--home", str(home), "--format", "json")
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["sanctioned"] is True and json.loads(one.stdout)["address"] == listed
    batch = tmp_path / "to-screen.txt"
    batch.write_text(f"# suspects\n{listed}\nTXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf\n")
    many = cli("sanctions", "check", as_hex[2:], "--file", str(batch), "--chain", "trx", "--home", str(home),
               "--format", "json")
    doc = json.loads(many.stdout)
    assert (doc["checked"], doc["sanctioned"]) == (3, 2)
    assert [r["sanctioned"] for r in doc["results"]] == [True, True, False]
    human = cli("sanctions", "check", listed, "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf", "--chain", "trx",
                "--home", str(home))
    assert "SANCTIONED" in human.stdout and "1 of 2 addresses" in human.stdout
    none = cli("sanctions", "check", "--chain", "trx", "--home", str(home))
    assert none.exit_code == 2 and "no address to screen" in none.stderr


def test_snapshots_say_when_an_address_was_listed(store, ofac) -> None:
    for folder in ("history/2022-09-16_96f89d7", "history/2023-10-04_acbe37a"):
        import_list(store, ofac / folder / "sanctioned_addresses_ETH.txt")
    import_list(store, ofac / "sanctioned_addresses_ETH.txt", listed_on=date(2024, 9, 27))
    # Removed between 2022-09-16 and 2024-09-27 (see the diff test): listed once, no longer.
    gone, = check_address(store, "eth", "0x6acdfba02d390b97ac2b2d42a63e85293bcc160e")
    assert (gone.first_listed_on, gone.is_listed) == (date(2022, 9, 16), False)
    assert gone.last_listed_on < gone.latest_snapshot == date(2024, 9, 27)
    # As the lists stood on 2023-01-01 it was listed.
    then, = check_address(store, "eth", "0x6acdfba02d390b97ac2b2d42a63e85293bcc160e", on=date(2023, 1, 1))
    assert then.is_listed
    # Re-importing a snapshot replaces it.
    import_list(store, ofac / "sanctioned_addresses_ETH.txt", listed_on=date(2024, 9, 27))
    assert store.query("SELECT count(*) FROM sanctions WHERE listed_on = DATE '2024-09-27'") == [(152,)]


def test_diff_of_history_snapshots(ofac) -> None:
    diffs = {d.asset_code: d for d in diff_lists([ofac / "history" / "2022-09-16_96f89d7"], [ofac])}
    assert set(diffs) == {"ETH", "XBT"}
    # README: XBT gained 150 and lost none.
    xbt = diffs["XBT"]
    assert (xbt.old_count, xbt.new_count, len(xbt.added), xbt.removed) == (285, 435, 150, ())
    # README: ETH "gained 85 and lost 3" comparing text; one of those is the same address re-spelt
    # (0xCa08… changed letter case only), which case-insensitive matching reports as recased.
    eth = diffs["ETH"]
    assert (eth.old_count, eth.new_count, len(eth.added), len(eth.removed)) == (70, 152, 84, 2)
    assert [old.lower() for old, _ in eth.recased] == ["0xca0840578f57fe71599d29375e16783424023357"]
    assert set(eth.removed) == {"0x6acdfba02d390b97ac2b2d42a63e85293bcc160e",
                                "0x905b63Fff465B9fFBF41DeA908CEb12478ec7601"}


def test_cli_import_check_and_diff(cli, home, ofac) -> None:
    out = cli("sanctions", "import", str(ofac / "sanctioned_addresses_ETH.txt"),
              str(ofac / "sanctioned_addresses_XBT.json"), "--date", "2024-09-27", "--home", str(home),
              "--format", "json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["addresses"] == 152 + 435
    assert [i["date_basis"] for i in doc["imports"]] == ["option", "option"]
    out = cli("sanctions", "check", "0x910cbd523d972eb0a6f4cae4618ad62622b39dbf", "--chain", "eth",
              "--home", str(home), "--format", "json")
    doc = json.loads(out.stdout)
    assert doc["sanctioned"] is True and doc["matches"][0]["address_as_listed"] == \
        "0x910Cbd523D972eb0a6f4cAe4618aD62622b39DbF"
    out = cli("sanctions", "check", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "--home", str(home),
              "--format", "json")
    assert json.loads(out.stdout)["sanctioned"] is False
    old = ofac / "history" / "2023-10-04_acbe37a" / "sanctioned_addresses_XBT.txt"
    out = cli("sanctions", "diff", str(old), str(ofac / "sanctioned_addresses_XBT.txt"), "--format", "json")
    xbt, = json.loads(out.stdout)["assets"]
    assert (xbt["old_count"], xbt["new_count"], xbt["removed"]) == (370, 435, [])
    bad = cli("sanctions", "import", str(ofac / "README.md"), "--home", str(home))
    assert bad.exit_code == 2 and "--asset" in bad.stderr
