"""The CLI reference (docs/cli.md), generated from the commands themselves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

# Commands are inspected by shape (groups have ``commands``, arguments have ``param_type_name ==
# "argument"``), so the reference works whichever click implementation typer is built on.


def _is_group(command: Any) -> bool:
    return isinstance(getattr(command, "commands", None), Mapping)


def _walk(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    found = [(path, command)]
    if _is_group(command):
        for name in sorted(command.commands):
            found.extend(_walk(command.commands[name], [*path, name]))
    return found


def _root(app: Any) -> Any:
    """The click command of ``app`` (a Typer application), or ``app`` itself when it is one already."""
    return typer.main.get_command(app) if isinstance(app, typer.Typer) else app


def command_paths(app: Any) -> list[str]:
    """Every command as it is typed, e.g. ``fundtrail case open``."""
    root = _root(app)
    return [" ".join(["fundtrail", *p]) for p, _ in _walk(root, [])]


def render_reference(app: Any) -> str:
    """Markdown reference of every command with its arguments and options (``app``: a Typer application
    or its click command)."""
    root = _root(app)
    lines = ["# Command reference", "",
             "Generated from the commands (`fundtrail docs cli > docs/cli.md`); a test checks it is current.",
             "All commands take `--home DIR` (default `$FUNDTRAIL_HOME`, else `./.fundtrail`); "
             "`--format json`",
             "prints one JSON document on stdout. Exit code 0 on success, 2 on bad input (one line on stderr",
             "naming the problem), 1 when an integrity check fails.", ""]
    for path, cmd in _walk(root, []):
        if not path:
            continue
        title = " ".join(["fundtrail", *path])
        lines += [f"## `{title}`", ""]
        help_text = (cmd.help or "").strip()
        if help_text:
            lines += [help_text.split("\n\n")[0].replace("\n", " "), ""]
        if _is_group(cmd):
            lines += ["Sub-commands: " + ", ".join(f"`{n}`" for n in sorted(cmd.commands)), ""]
        params = [p for p in cmd.params if p.name != "help"]
        if params:
            lines += ["| argument / option | help |", "|---|---|"]
            for p in params:
                if p.param_type_name == "argument":
                    name = f"`{(p.metavar or p.name or '').upper()}`"
                    doc = getattr(p, "help", "") or ""
                else:
                    name = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
                    doc = (getattr(p, "help", "") or "").replace("\n", " ")
                lines.append(f"| {name} | {doc.replace('|', '/')} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def register(root: typer.Typer) -> None:
    """Add ``docs cli`` to the root application."""
    docs = typer.Typer(help="Generated documentation.", no_args_is_help=True)

    @docs.command("cli")
    def cli_reference(ctx: typer.Context) -> None:
        """Print the command reference as Markdown."""
        typer.echo(render_reference(ctx.find_root().command), nl=False)

    root.add_typer(docs, name="docs")
