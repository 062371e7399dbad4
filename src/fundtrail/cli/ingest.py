"""``fundtrail ingest``: load chain data from files or a node into the chain store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    console,
    handle_errors,
    print_json,
    progress,
)
from fundtrail.domain.chains import ChainFamily, get_chain
from fundtrail.errors import InputError

if TYPE_CHECKING:
    from fundtrail.store import ChainStore
    from fundtrail.store.ingest import IngestReport

app = typer.Typer(help="Load chain data from files or a node into the chain store.", no_args_is_help=True)

ChainOpt = Annotated[
    str, typer.Option("--chain", "-c", help="Chain name: btc, ltc, ltc-regtest, bch, doge, eth ...")
]
FilesArg = Annotated[list[Path], typer.Argument(help="Input files.", show_default=False)]


def _report(report: IngestReport, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.JSON:
        print_json(report.as_dict())
        return
    console.print(f"[bold]{report.chain}[/]: {report.blocks_written} blocks written, "
                  f"{report.blocks_skipped} already stored, {report.txs_written} transactions"
                  + (f", {report.reorgs} reorgs followed" if report.reorgs else ""))
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def _keep_graph(store: ChainStore, chain: str) -> None:
    """Bring the transaction graph kept beside the store up to date, so that the next trace loads it."""
    if get_chain(chain).family is not ChainFamily.UTXO:
        return
    from fundtrail.analysis.graphstore import update_graphs

    with progress(f"transaction graph of {chain}"):
        update_graphs(store, [chain])


def _run(home: Path, chain: str, batches_factory, fmt: OutputFormat) -> None:  # type: ignore[no-untyped-def]
    from fundtrail.store import ChainStore
    from fundtrail.store.ingest import ingest_batches

    with ChainStore.open_home(home) as store:
        with progress(f"ingest {chain}") as advance:
            report = ingest_batches(store, chain, batches_factory(store), lambda b, r: advance(len(b)))
        if report.blocks_written:
            _keep_graph(store, chain)
    _report(report, fmt)


def _require_family(chain: str, family: ChainFamily) -> None:
    params = get_chain(chain)
    if params.family is not family:
        raise InputError(f"chain {chain!r} is an {params.family.value} chain; this reader is for "
                         f"{family.value} chains")


@app.command("bitcoin-etl")
@handle_errors
def bitcoin_etl(files: FilesArg, chain: ChainOpt = "btc", home: HomeOpt = DEFAULT_HOME,
                fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """bitcoin-etl transactions JSON lines (.json, .jsonl or .gz)."""
    from fundtrail.chains.bitcoin.etl import read_bitcoin_etl

    _require_family(chain, ChainFamily.UTXO)
    _run(home, chain, lambda store: read_bitcoin_etl(files, chain), fmt)


@app.command("blocks")
@handle_errors
def blocks(files: FilesArg, chain: ChainOpt = "btc", home: HomeOpt = DEFAULT_HOME,
           fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Raw serialized blocks or Bitcoin Core blk*.dat files (optionally .bz2/.gz/.xz)."""
    from fundtrail.chains.bitcoin.raw import read_block_files

    _require_family(chain, ChainFamily.UTXO)
    _run(home, chain,
         lambda store: read_block_files(files, chain, known_height=lambda h: store.height_of(chain, h)), fmt)


@app.command("ethereum-etl")
@handle_errors
def ethereum_etl(directory: Annotated[Path, typer.Argument(help="Folder with ethereum-etl CSV exports.")],
                 chain: ChainOpt = "eth", home: HomeOpt = DEFAULT_HOME,
                 fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """ethereum-etl CSVs of any EVM chain (eth, bsc, polygon, arbitrum, optimism, base ...): blocks,
    transactions, receipts, logs (swap, bridge and pool events are kept for conversions), token_transfers
    and traces when present."""
    from fundtrail.chains.evm.etl import read_ethereum_etl

    _require_family(chain, ChainFamily.ACCOUNT)
    _run(home, chain, lambda store: read_ethereum_etl(directory, chain), fmt)


@app.command("rpc")
@handle_errors
def rpc(url: Annotated[str, typer.Argument(help="Node JSON-RPC URL (credentials in the URL or "
                                           "$FUNDTRAIL_RPC_USER/$FUNDTRAIL_RPC_PASSWORD).")],
        chain: ChainOpt = "btc",
        start: Annotated[int, typer.Option("--from", help="First block height.")] = 0,
        end: Annotated[int | None,
                       typer.Option("--to", help="Last block height (default: the node's tip).")] = None,
        enrich_inputs: Annotated[bool, typer.Option(
            "--enrich-inputs", help="UTXO chains: fill an input's value and address from getrawtransaction "
                                    "when the output it spends is not in the same batch of blocks (for "
                                    "ranges that start after block 0; the node needs -txindex).")] = False,
        home: HomeOpt = DEFAULT_HOME,
        fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """A node's JSON-RPC: Bitcoin Core and forks, or Ethereum (with traces when the node has them)."""
    from fundtrail.store import ChainStore
    from fundtrail.store.ingest import ingest_from_source

    params = get_chain(chain)
    if params.family is ChainFamily.UTXO:
        from fundtrail.chains.bitcoin.rpc import BitcoinRpcSource as Source
    else:
        from fundtrail.chains.evm.rpc import EthereumRpcSource as Source  # type: ignore[assignment]
    if enrich_inputs and params.family is not ChainFamily.UTXO:
        raise InputError("--enrich-inputs applies to UTXO chains only")
    source = Source(url, chain, enrich_inputs=True) if enrich_inputs else Source(url, chain)
    try:
        last = source.tip() if end is None else end
        if start < 0 or last < start:
            raise InputError(f"bad block range --from {start} --to {last}")
        with ChainStore.open_home(home) as store:
            with progress(f"ingest {chain} over RPC", last - start + 1) as advance:
                report = ingest_from_source(store, source, start, last, lambda b, r: advance(len(b.blocks)))
            if report.blocks_written:
                _keep_graph(store, chain)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()  # let go of kept-alive connections: a node waits for them when it shuts down
    _report(report, fmt)


def register(root: typer.Typer) -> None:
    """Add ``ingest`` to the root application."""
    root.add_typer(app, name="ingest")
