"""``fundtrail sanctions``: import sanctioned-address lists, screen an address, diff two snapshots."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    Table,
    console,
    err_console,
    handle_errors,
    print_json,
    progress,
)
from fundtrail.errors import InputError

if TYPE_CHECKING:
    from fundtrail.intel.sanctions import SanctionHit

DEFAULT_LIST_NAME = "OFAC SDN"
"""The list ``--list`` names by default (fundtrail.intel.sanctions.DEFAULT_LIST_NAME, as
tests/cli/test_startup.py checks), here so that `--help` need not import the sanctions store."""

app = typer.Typer(help="Sanctioned-address lists: import, check, diff.", no_args_is_help=True)


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} {text!r}: expected a date YYYY-MM-DD") from None


@app.command("import")
@handle_errors
def import_(files: Annotated[list[Path], typer.Argument(
                help="sanctioned_addresses_<ASSET>.txt/.json files, or folders of them.")],
            list_name: Annotated[str, typer.Option("--list-name", help="Name of the list.")
                                 ] = DEFAULT_LIST_NAME,
            on: Annotated[str | None, typer.Option(
                "--date", help="List date YYYY-MM-DD (default: the list's own date, else a date in the file "
                               "or folder name, else the day of the import; the table says which).")
                          ] = None,
            asset: Annotated[str | None, typer.Option(
                "--asset", help="Asset code when the file name lacks it (XBT, ETH, USDT ...).")] = None,
            source: Annotated[str | None, typer.Option("--source", help="Where the list came from.")] = None,
            replace: Annotated[bool, typer.Option(
                "--replace", help="Import a list without one valid address even when that empties a list "
                                  "that holds some.")] = False,
            home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Import list snapshots; the same list, asset and date imported again is replaced.

    All files are read and checked before anything is stored; one bad file stores none of them.
    """
    from fundtrail.intel.sanctions import import_lists, list_files
    from fundtrail.store import ChainStore

    day = _day(on, "--date")
    paths = list_files(files)
    with ChainStore.open_home(home) as store, progress("importing lists", total=len(paths)) as advance:
        results = import_lists(store, paths, list_name=list_name, listed_on=day, asset_code=asset,
                               source=source, replace=replace)
        advance(len(paths))
    if fmt is OutputFormat.JSON:
        print_json({"imports": [r.to_dict() for r in results],
                    "addresses": sum(r.addresses for r in results)})
        return
    table = Table("file", "asset", "addresses", "chains", "list date", "date from")
    for r in results:
        table.add_row(Path(r.file).name, r.asset_code, str(r.addresses),
                      ", ".join(f"{c} {n}" for c, n in sorted(r.chains.items())), r.listed_on.isoformat(),
                      r.date_basis)
    console.print(table)
    for r in results:
        for w in r.warnings:
            err_console.print(f"warning: {Path(r.file).name}: {w}", markup=False, highlight=False,
                              soft_wrap=True)


def _addresses_of(path: Path) -> list[str]:
    """The addresses of a screening file: one a line, blank and ``#`` comment lines skipped."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder; --file takes a file of addresses, one a line")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; --file takes a file of addresses, one a line") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _shown(chain: str, address: str) -> str:
    from fundtrail.intel.sanctions import tron_address
    from fundtrail.intel.tagstore import canonical_or_given

    if chain == "trx":
        return tron_address(address) or address.strip()
    return canonical_or_given(chain, address)


@app.command("check")
@handle_errors
def check(addresses: Annotated[list[str] | None, typer.Argument(
              help="The addresses to screen (or give --file).", show_default=False)] = None,
          file: Annotated[Path | None, typer.Option(
              "--file", help="A file of addresses to screen, one a line ('-' for stdin).")] = None,
          chain: Annotated[str, typer.Option(
              "--chain", "-c", help="Chain name (btc, eth, trx ...).")] = "btc",
          on: Annotated[str | None, typer.Option(
              "--on", help="Screen against the lists as they stood on this date (YYYY-MM-DD).")] = None,
          home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Are the addresses on a sanctions list? EVM addresses match in any letter case; Tron in base58 or hex.

    One address prints one document ({"chain", "address", "sanctioned", "matches"}); several addresses
    or --file print {"chain", "checked", "sanctioned", "results": [one document per address]}.
    """
    from fundtrail.intel.sanctions import check_address
    from fundtrail.store import ChainStore

    wanted = list(addresses or [])
    if file is not None:
        wanted += ([line.strip() for line in sys.stdin if line.strip() and not line.strip().startswith("#")]
                   if str(file) == "-" else _addresses_of(file))
    if not wanted:
        raise InputError("no address to screen: give addresses or --file FILE")
    day = _day(on, "--on")
    with ChainStore.open_home(home) as store:
        docs: list[dict[str, Any]] = []
        for address in wanted:
            hits = check_address(store, chain, address, on=day)
            docs.append({"chain": chain, "address": _shown(chain, address),
                         "sanctioned": any(h.is_listed for h in hits), "matches": hits})
    if fmt is OutputFormat.JSON:
        out = [{**d, "matches": [h.to_dict() for h in d["matches"]]} for d in docs]
        if len(out) == 1 and file is None:
            print_json(out[0])
        else:
            print_json({"chain": chain, "checked": len(out), "sanctioned": sum(d["sanctioned"] for d in out),
                        "results": out})
        return
    for d in docs:
        _print_check(d["chain"], d["address"], d["matches"])
    if len(docs) > 1:
        listed = sum(d["sanctioned"] for d in docs)
        console.print(f"{listed} of {len(docs)} addresses on an imported list", highlight=False)


def _print_check(chain: str, canonical: str, hits: list[SanctionHit]) -> None:
    listed = any(h.is_listed for h in hits)
    if not hits:
        console.print(f"{chain} {canonical}: not on any imported list", highlight=False)
        return
    state = "[bold red]SANCTIONED[/]" if listed else "[yellow]formerly listed[/]"
    console.print(f"{chain} {canonical}: {state}", highlight=False)
    for h in hits:
        where = "" if h.same_chain else f" (listed for {h.chain})"
        status = "listed" if h.is_listed else f"no longer listed (last {h.last_listed_on})"
        flag = "" if h.is_valid else f"  [yellow]invalid for {h.chain}: {h.problem}[/]"
        console.print(f"  {h.list_name} {h.asset_code}{where}: {status}, first seen {h.first_listed_on}, "
                      f"source {h.source}{flag}")


@app.command("diff")
@handle_errors
def diff(old: Annotated[Path, typer.Argument(help="Older snapshot: a list file or a folder of them.")],
         new: Annotated[Path, typer.Argument(help="Newer snapshot: a list file or a folder of them.")],
         fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Addresses added to and removed from each asset's list between two snapshots."""
    from fundtrail.intel.sanctions import diff_lists

    for p in (old, new):
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
    diffs = diff_lists([old], [new])
    if fmt is OutputFormat.JSON:
        print_json({"old": str(old), "new": str(new), "assets": [d.to_dict() for d in diffs]})
        return
    table = Table("asset", "old", "new", "added", "removed", "recased")
    for d in diffs:
        table.add_row(d.asset_code, str(d.old_count), str(d.new_count), str(len(d.added)),
                      str(len(d.removed)), str(len(d.recased)))
    console.print(table)
    for d in diffs:
        for a in d.added:
            console.print(f"+ {d.asset_code} {a}", highlight=False)
        for a in d.removed:
            console.print(f"- {d.asset_code} {a}", highlight=False)


@app.command("lists")
@handle_errors
def lists(home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """The imported list snapshots."""
    from fundtrail.intel.sanctions import snapshots
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home) as store:
        rows = snapshots(store)
    if fmt is OutputFormat.JSON:
        print_json(rows)
        return
    table = Table("list", "asset", "date", "date from", "addresses", "invalid")
    for r in rows:
        table.add_row(r["list_name"], r["asset_code"], r["listed_on"], r["date_basis"], str(r["addresses"]),
                      str(r["invalid"]))
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``sanctions`` to the root application."""
    root.add_typer(app, name="sanctions")
