"""``fundtrail tags``: import, export and show attribution tags (GraphSense TagPacks, Etherscan labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

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

app = typer.Typer(help="Attribution tags: GraphSense TagPacks and Etherscan labels.", no_args_is_help=True)

ChainOpt = Annotated[str, typer.Option("--chain", "-c", help="Chain name (btc, ltc, eth ...).")]


def _tag_files(files: list[Path]) -> tuple[list[Path], dict[Path, int]]:
    """The files to import, and per folder of TagPacks how many Etherscan-shaped files it leaves out."""
    from fundtrail.intel.etherscan import is_etherscan_file
    from fundtrail.intel.tagpacks import tagpack_files

    out: list[Path] = []
    skipped: dict[Path, int] = {}
    for given in files:
        if not given.is_dir():
            out.append(given)
            continue
        packs = tagpack_files([given])
        labels = sorted(q for q in given.rglob("*") if q.is_file() and is_etherscan_file(q))
        if not packs and not labels:
            raise InputError(f"{given}: holds no TagPack (.yaml, .yaml.xz) and no Etherscan labels "
                             "(.json, .csv)")
        if packs and labels:
            skipped[given] = len(labels)
        out.extend(packs or labels)
    return out, skipped


@app.command("import")
@handle_errors
def import_(files: Annotated[list[Path], typer.Argument(
                help="TagPacks (.yaml, .yaml.xz) or folders of them; Etherscan labels (.json, .csv).")],
            actors: Annotated[list[Path] | None, typer.Option(
                "--actors", help="ActorPack(s) giving actors' names and jurisdictions.")] = None,
            home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Validate and import tags; re-importing a pack replaces its tags.

    A folder gives its TagPacks; a folder without TagPacks gives its Etherscan label files (.json, .csv).
    """
    from fundtrail.intel.etherscan import import_etherscan_labels, is_etherscan_file
    from fundtrail.intel.tagpacks import import_actorpack, import_tagpack, is_actorpack
    from fundtrail.store import ChainStore

    paths, skipped = _tag_files(files)
    for folder, count in skipped.items():
        err_console.print(f"note: {folder}: {count} .json/.csv files left out: a folder of TagPacks gives "
                          "only its TagPacks; name Etherscan label files or their folder on their own",
                          markup=False, highlight=False, soft_wrap=True)
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such file")
    actor_files = list(actors or []) + [p for p in paths if is_actorpack(p)]
    packs = [p for p in paths if not is_actorpack(p)]
    results: list[dict[str, Any]] = []
    actor_counts: dict[str, int] = {}
    with ChainStore.open_home(home) as store:
        for path in actor_files:
            actor_counts[str(path)] = import_actorpack(store, path)
        with progress("importing tags", total=len(packs)) as advance:
            for path in packs:
                if is_etherscan_file(path):
                    result = import_etherscan_labels(store, path)
                else:
                    result = import_tagpack(store, path)
                results.append(result.to_dict())
                advance(1)
    total = sum(r["tags"] for r in results)
    invalid = sum(len(r["invalid_addresses"]) for r in results)
    if fmt is OutputFormat.JSON:
        print_json({"packs": results, "actors": actor_counts, "tags": total, "invalid_addresses": invalid})
        return
    for source, n in actor_counts.items():
        console.print(f"actors: {n} from {source}")
    table = Table("pack", "title", "tags", "chains", "invalid addresses")
    for r in results:
        chains = ", ".join(f"{c} {n}" for c, n in sorted(r["chains"].items(), key=lambda x: -x[1])[:4])
        table.add_row(Path(r["uri"]).name, r["title"] or "", str(r["tags"]), chains,
                      str(len(r["invalid_addresses"])))
    console.print(table)
    console.print(f"{total} tags from {len(results)} packs")
    for r in results:
        for bad in r["invalid_addresses"]:
            err_console.print(f"warning: {Path(r['uri']).name} tag {bad['tag']}: {bad['reason']}",
                              markup=False, highlight=False, soft_wrap=True)


@app.command("export")
@handle_errors
def export(out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write TagPacks into.")],
           chain: Annotated[str | None, typer.Option("--chain", "-c", help="Only tags of this chain.")
                            ] = None,
           by: Annotated[str, typer.Option("--by", help="One pack per imported 'pack' or per 'category'.")
                         ] = "pack",
           home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Write the stored tags as TagPacks (importing them again gives the same tags)."""
    from fundtrail.intel.tagpacks import export_tagpacks
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home) as store:
        written = export_tagpacks(store, out, chain=chain, by=by)
    if fmt is OutputFormat.JSON:
        print_json({"out": str(out), "files": [str(p) for p in written]})
        return
    console.print(f"{len(written)} TagPacks written to {out}")


@app.command("show")
@handle_errors
def show(address: Annotated[str, typer.Argument(help="The address.")], chain: ChainOpt = "btc",
         home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """The tags of an address, direct and through its cluster, with confidence and source."""
    from fundtrail.intel.tagstore import canonical_or_given, cluster_of, tags_for
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home) as store:
        views = tags_for(store, chain, address)
        cluster = cluster_of(store, chain, address)
    canonical = canonical_or_given(chain, address)
    if fmt is OutputFormat.JSON:
        print_json({"chain": chain, "address": canonical,
                    "cluster": None if cluster is None else {"id": cluster[0], "size": cluster[1]},
                    "tags": [v.to_dict() for v in views]})
        return
    if not views:
        console.print(f"no tags for {chain} {canonical}")
        return
    table = Table("how", "label", "category", "abuse", "confidence", "source", title=f"{chain} {canonical}")
    for v in views:
        how = "direct" if not v.via_cluster else f"cluster ({v.cluster_addresses} addr.)"
        table.add_row(how, v.entity or v.label or "", v.category or "", v.abuse or "",
                      f"{v.confidence or 'unknown'} ({v.confidence_level})", v.source or "")
    console.print(table)


@app.command("packs")
@handle_errors
def packs(home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """The imported packs."""
    from fundtrail.intel.tagstore import tagpack_summary
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home) as store:
        rows = tagpack_summary(store)
    if fmt is OutputFormat.JSON:
        print_json(rows)
        return
    table = Table("kind", "title", "tags", "uri")
    for r in rows:
        table.add_row(r["kind"], r["title"] or "", str(r["tags"]), r["uri"])
    console.print(table)


# ------------------------------------------------------------------------------------------------
# The cluster, tags, sanctions, exposure and risk sections of ``fundtrail address``


_LEVEL_STYLE = {"severe": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan",
                "none": "green"}


def render_risk_panel(doc: dict[str, Any]) -> None:
    """A short panel: risk level and the indicators that fired, tags, sanctions, main exposures."""
    from rich.panel import Panel

    risk = doc.get("risk")
    if risk is None:
        return
    lines: list[str] = []
    for ind in risk["indicators"]:
        lines.append(f"[bold]{escape(ind['title'])}[/] ({ind['id']}, weight {ind['weight']}): "
                     f"{escape(ind['summary'])}")
    if not risk["indicators"]:
        lines.append("no indicator fired")
    tags = doc.get("tags") or []
    if tags:
        shown = [f"{escape(t['entity'] or t['label'] or '?')} ({escape(t['category'] or t['abuse'] or '-')}, "
                 f"{t['confidence'] or 'unknown'} {t['confidence_level']}, {t['how']})" for t in tags[:3]]
        more = f" and {len(tags) - 3} more" if len(tags) > 3 else ""
        lines.append("tags: " + "; ".join(shown) + more)
    sanctions = doc.get("sanctions") or {}
    if sanctions.get("matches"):
        lists = sorted({f"{m['list_name']} {m['asset_code']}" for m in sanctions["matches"]})
        lines.append(("[bold red]sanctioned[/]: " if sanctions.get("sanctioned") else "formerly listed: ")
                     + escape(", ".join(lists)))
    direct = (doc.get("exposure") or {}).get("direct") or {}
    for asset, sides in direct.items():
        for side in ("received", "sent"):
            cats = sides[side]["by_category"]
            top = [f"{c} {v['share']:.0%}" for c, v in cats.items() if c != "unattributed"][:4]
            if top:
                lines.append(f"{side} ({asset}): " + ", ".join(top))
    for note in risk.get("notes", []):
        lines.append(f"[dim]{escape(note)}[/]")
    level = risk["level"]
    title = f"risk [{_LEVEL_STYLE.get(level, 'bold')}]{level.upper()}[/] (score {risk['score']})"
    console.print(Panel("\n".join(lines), title=title, title_align="left", expand=False))


def register(root: typer.Typer) -> None:
    """Add ``tags`` to the root application."""
    root.add_typer(app, name="tags")
