"""``fundtrail tags import|export|show|packs`` through the CLI."""

from __future__ import annotations

import json
import shutil


def test_import_show_export(cli, home, packs, shared_data, tmp_path) -> None:
    actors = shared_data / "graphsense_tagpacks" / "actors" / "graphsense.actorpack.yaml.xz"
    out = cli("tags", "import", str(packs / "tornado_cash.yaml"), str(packs / "plustoken.yaml"),
              str(shared_data / "etherscan_labels" / "accounts" / "binance.csv"), "--actors", str(actors),
              "--home", str(home), "--format", "json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["tags"] == 39 + 12 + 57 and doc["invalid_addresses"] == 2
    assert list(doc["actors"].values()) == [3813]

    out = cli("tags", "show", "0xd90e2f925DA726b50C4Ed8D0Fb90Ad053324F31b", "--chain", "eth",
              "--home", str(home), "--format", "json")
    shown = json.loads(out.stdout)
    assert shown["address"] == "0xd90e2f925da726b50c4ed8d0fb90ad053324f31b"
    tag, = shown["tags"]
    assert (tag["category"], tag["confidence"], tag["confidence_level"], tag["via_cluster"]) == (
        "mixing_service", "authority_data", 60, False)
    assert tag["source"].startswith("https://home.treasury.gov/")

    human = cli("tags", "show", "0xd90e2f925DA726b50C4Ed8D0Fb90Ad053324F31b", "--chain", "eth",
                "--home", str(home))
    assert "mixing" in human.stdout and "(60)" in human.stdout  # the table wraps at the test's width

    out = cli("tags", "export", "--out", str(tmp_path / "x"), "--chain", "eth", "--home", str(home),
              "--format", "json")
    files = sorted(p.split("/")[-1] for p in json.loads(out.stdout)["files"])
    # plustoken holds btc tags only; the actors the exported tags name go with them
    assert files == ["actors.actorpack.yaml", "binance.yaml", "tornado_cash.yaml"]

    listed = json.loads(cli("tags", "packs", "--home", str(home), "--format", "json").stdout)
    assert sorted(p["kind"] for p in listed) == ["etherscan", "tagpack", "tagpack"]


def test_bad_pack_exits_2_naming_the_problem(cli, home, write_pack) -> None:
    path = write_pack("bad.yaml", """
        title: Bad
        creator: Test Unit
        currency: BTC
        label: x
        source: https://example.org
        tags:
        - address: 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa
          category: no_such_concept
    """)
    out = cli("tags", "import", str(path), "--home", str(home))
    assert out.exit_code == 2
    assert "bad.yaml" in out.stderr and "tag 0" in out.stderr and "category" in out.stderr


def test_a_folder_of_etherscan_csvs_is_imported_and_an_empty_folder_refused(cli, home, shared_data,
                                                                          tmp_path) -> None:
    folder = tmp_path / "etherscan"
    folder.mkdir()
    for name in ("tornado-cash.csv", "kraken.csv"):
        shutil.copy(shared_data / "etherscan_labels" / "accounts" / name, folder / name)
    out = cli("tags", "import", str(folder), "--home", str(home), "--format", "json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert len(doc["packs"]) == 2 and doc["tags"] == 63 + 18
    empty = tmp_path / "nothing"
    empty.mkdir()
    refused = cli("tags", "import", str(empty), "--home", str(home))
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "no TagPack" in refused.stderr and "no Etherscan labels" in refused.stderr
