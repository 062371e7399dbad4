"""``fundtrail spark``: the chain store's tables as partitioned Parquet, and whole-chain jobs on Spark.

Spark runs locally (``local[2]``) unless ``--spark-master`` or ``FUNDTRAIL_SPARK_MASTER`` names a cluster;
the Parquet folder (default ``HOME/parquet``) must then be one every executor reads. Clustering on Spark
is ``fundtrail cluster --engine spark``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    Table,
    amount_text,
    console,
    handle_errors,
    print_json,
)

if TYPE_CHECKING:
    from fundtrail.store.spark import SparkEngine

ChainOpt = Annotated[str, typer.Option("--chain", "-c", help="Chain name (btc, ltc ...).")]
ParquetOpt = Annotated[Path | None, typer.Option(
    "--parquet", help="Folder of the partitioned Parquet export (default HOME/parquet).")]
MasterOpt = Annotated[str | None, typer.Option(
    "--spark-master", envvar="FUNDTRAIL_SPARK_MASTER", show_default=False,
    help="Spark master URL (default local[2]; $FUNDTRAIL_SPARK_MASTER).")]
MemoryOpt = Annotated[str, typer.Option("--driver-memory", help="Spark driver memory.")]
PartitionsOpt = Annotated[int, typer.Option("--shuffle-partitions", min=1, max=100_000,
                                            help="Spark shuffle partitions.")]

app = typer.Typer(help="Whole-chain jobs on Spark: Parquet export, exposure of every address, taint.",
                  no_args_is_help=True)


def parquet_folder(home: Path, parquet: Path | None) -> Path:
    """The export folder: the option, else HOME/parquet."""
    return (parquet or Path(home) / "parquet").resolve()


@contextmanager
def spark_engine(folder: Path, master: str | None, driver_memory: str = "1g",
                 shuffle_partitions: int = 4) -> Iterator[SparkEngine]:
    """A Spark session over an export folder (imports pyspark: the ``spark`` extra)."""
    from fundtrail.store.spark import SparkEngine, SparkSettings, spark_session

    settings = SparkSettings.from_env(master, driver_memory=driver_memory,
                                      shuffle_partitions=shuffle_partitions, local_dir=str(folder / "_spark"))
    with spark_session(settings) as session:
        yield SparkEngine(session, folder)


def export_chain(home: Path, chain: str, folder: Path,
                 tables: tuple[str, ...] | None = None) -> dict[str, int]:
    """Export ``chain``'s tables from the home's chain store as partitioned Parquet."""
    from fundtrail.store import ChainStore
    from fundtrail.store.spark import export_partitioned

    with ChainStore.open_home(home) as store:
        return export_partitioned(store, chain, folder, tables)


@app.command("export")
@handle_errors
def export(chain: ChainOpt = "btc", parquet: ParquetOpt = None,
           heights_per_part: Annotated[int, typer.Option(
               "--heights-per-part", min=1, max=10_000_000, help="Blocks per height_range partition.")
           ] = 100_000,
           home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Write the chain's tables as Parquet partitioned by chain and height range (what Spark reads)."""
    from fundtrail.domain.chains import get_chain
    from fundtrail.store import ChainStore
    from fundtrail.store.spark import export_partitioned

    chain = get_chain(chain).name
    folder = parquet_folder(home, parquet)
    with ChainStore.open_home(home) as store:
        counts = export_partitioned(store, chain, folder, heights_per_part=heights_per_part)
    doc = {"chain": chain, "folder": str(folder), "rows": counts}
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    table = Table("table", "rows", title=f"{chain} Parquet in {folder}")
    for name, n in counts.items():
        table.add_row(name, str(n))
    console.print(table)


@app.command("exposure")
@handle_errors
def exposure(address: Annotated[list[str] | None, typer.Argument(
                 help="Addresses to show (the job computes every address; without any, a summary).")] = None,
             chain: ChainOpt = "btc", parquet: ParquetOpt = None, master: MasterOpt = None,
             driver_memory: MemoryOpt = "1g", shuffle_partitions: PartitionsOpt = 4,
             home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Direct exposure of every address of a UTXO chain by counterparty category (the address profile's
    direct exposure, all addresses at once); written to PARQUET/results/exposure-CHAIN."""
    import duckdb

    from fundtrail.analysis.exposure import counterparty_categories
    from fundtrail.domain.chains import get_chain
    from fundtrail.errors import InputError
    from fundtrail.intel.tagstore import canonical_or_given
    from fundtrail.store import ChainStore

    info = get_chain(chain)
    chain = info.name
    if not info.is_utxo:
        raise InputError(f"the Spark exposure job covers UTXO chains; {chain} is an account chain "
                         f"(use `fundtrail address ADDR --chain {chain}`)")
    folder = parquet_folder(home, parquet)
    wanted = [canonical_or_given(chain, a) for a in address or []]
    with ChainStore.open_home(home) as store:
        from fundtrail.store.spark import export_partitioned

        export_partitioned(store, chain, folder)
        labels = counterparty_categories(store, chain)
        ids = {a: store.address_id(chain, a) for a in wanted}
    unknown = [a for a, i in ids.items() if i is None]
    if unknown:
        raise InputError(f"{chain} address {unknown[0]} is not in the chain store")
    out = folder / "results" / f"exposure-{chain}"
    with spark_engine(folder, master, driver_memory, shuffle_partitions) as engine:
        path = engine.exposure(chain, engine.labels(labels, chain), out)
    source = str(path / "*.parquet").replace("'", "''")
    con = duckdb.connect()
    try:
        (rows, addresses), = con.execute(
            f"SELECT count(*), count(DISTINCT address_id) FROM read_parquet('{source}')").fetchall()
        doc: dict[str, Any] = {"chain": chain, "path": str(path), "rows": int(rows),
                               "addresses": int(addresses)}
        per: dict[str, Any] = {}
        for a, aid in ids.items():
            found = con.execute(f"SELECT direction, category, value, counterparties, total FROM "
                                f"read_parquet('{source}') WHERE address_id = ? "
                                "ORDER BY direction, value DESC, category", [aid]).fetchall()
            entry: dict[str, Any] = {d: {"total": "0", "by_category": {}} for d in ("received", "sent")}
            for direction, category, value, parties, total in found:
                entry[direction]["total"] = str(int(total))
                entry[direction]["by_category"][category] = {"value": str(int(value)),
                                                             "counterparties": parties}
            per[a] = {"native": entry}
    finally:
        con.close()
    doc["exposure"] = per
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    console.print(f"[bold]{chain}[/]: exposure of {doc['addresses']} addresses ({doc['rows']} rows) "
                  f"in {path}")
    for a, entry in per.items():
        table = Table("direction", "category", "value", "counterparties", title=a)
        for direction, side in entry["native"].items():
            for category, e in side["by_category"].items():
                table.add_row(direction, category, amount_text(e["value"], chain), str(e["counterparties"]))
        console.print(table)


@app.command("taint")
@handle_errors
def taint(seeds: Annotated[list[str], typer.Argument(help="Addresses, txids or txid:n outputs.")],
          chain: ChainOpt = "btc",
          policy: Annotated[str, typer.Option("--policy", help="haircut or poison.")] = "haircut",
          steps: Annotated[int, typer.Option("--steps", min=1, max=1_000,
                                             help="Transactions to follow from the seeds.")] = 6,
          parquet: ParquetOpt = None, master: MasterOpt = None, driver_memory: MemoryOpt = "1g",
          shuffle_partitions: PartitionsOpt = 4, home: HomeOpt = DEFAULT_HOME,
          fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Forward taint from the seeds over N transactions (stopping at CoinJoins), every tainted output
    written to PARQUET/results/taint-CHAIN; the trace's taint without service and hub stops."""
    from fundtrail.analysis.graph import COINJOIN_PATTERNS
    from fundtrail.domain.chains import get_chain
    from fundtrail.errors import InputError
    from fundtrail.intel.tagstore import canonical_or_given
    from fundtrail.store import ChainStore

    info = get_chain(chain)
    chain = info.name
    if not info.is_utxo:
        raise InputError(f"the Spark taint job covers UTXO chains; {chain} is an account chain "
                         f"(use `fundtrail trace --chain {chain}`)")
    folder = parquet_folder(home, parquet)
    parsed: list[str] = []
    with ChainStore.open_home(home) as store:
        for seed in seeds:
            head = seed.strip().partition(":")[0]
            if len(head) == 64 and all(c in "0123456789abcdefABCDEF" for c in head):
                parsed.append(seed.strip())
                continue
            aid = store.address_id(chain, canonical_or_given(chain, seed))
            if aid is None:
                raise InputError(f"seed {seed!r} is neither a txid, txid:n nor a {chain} address "
                                 "of the chain store")
            parsed.append(f"#{aid}")
        from fundtrail.store.spark import export_partitioned

        export_partitioned(store, chain, folder, ("txs", "outputs", "inputs", "tx_patterns"))
    with spark_engine(folder, master, driver_memory, shuffle_partitions) as engine:
        stats = engine.taint(chain, parsed, folder / "results" / f"taint-{chain}", steps=steps, policy=policy,
                             coinjoin_patterns=COINJOIN_PATTERNS)
    doc = {"chain": chain, "policy": stats.policy, "steps": stats.steps, "seeds": list(seeds),
           "seed_outputs": stats.seed_outputs, "seeded": str(stats.seeded),
           "tainted_outputs": stats.tainted_outputs, "tainted_value": str(stats.tainted_value),
           "rounds": stats.rounds, "seconds": round(stats.seconds, 3), "path": str(stats.path)}
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    console.print(f"[bold]{chain}[/] {stats.policy} taint over {stats.steps} steps: "
                  f"{stats.seed_outputs} seed outputs ({amount_text(stats.seeded, chain)}) reached "
                  f"{stats.tainted_outputs} outputs holding {amount_text(stats.tainted_value, chain)}; "
                  f"rows in {stats.path}")


def register(root: typer.Typer) -> None:
    """Add ``spark`` to the root application."""
    root.add_typer(app, name="spark")
