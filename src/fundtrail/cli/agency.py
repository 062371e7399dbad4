"""``fundtrail agency``: this agency as partners know it (name, country, key id, Ed25519 public key).

The public key is public: partners record it in their agreement (``fundtrail agreement create
--public-key``) to check what this agency signs. The private key never leaves ``HOME/keys/``.
"""

from __future__ import annotations

import typer

from fundtrail.cli.case import emit
from fundtrail.cli.common import DEFAULT_HOME, FormatOpt, HomeOpt, OutputFormat, handle_errors

app = typer.Typer(help="This agency's identity for partner agencies.", no_args_is_help=True)


@app.command("key")
@handle_errors
def key(home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """The key id and public key partners need (created on first use)."""
    from fundtrail.audit import trust
    from fundtrail.audit.keys import load_or_create

    agency_key = load_or_create(home)
    doc = {
        "key_id": agency_key.key_id,
        "public_key": agency_key.public_b64,
        "algorithm": "ed25519",
        "fingerprint": trust.fingerprint(agency_key.public_b64),
    }
    emit(
        fmt,
        doc,
        f"key id      {doc['key_id']}\npublic key  {doc['public_key']}\nfingerprint {doc['fingerprint']}\n"
        "(partners and auditors compare the fingerprint with you over another channel)\n"
        f"(give both to a partner: fundtrail agreement create ... --public-key {doc['public_key']} "
        f"--key-id {doc['key_id']})",
    )


@app.command("show")
@handle_errors
def show(home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Name, country, key id and public key (the agency is set with `fundtrail db agency`)."""
    from fundtrail.cases.context import open_operation
    from fundtrail.sharing.agreements import agency_identity

    with open_operation(home, None, user_required=False) as ctx:
        doc = agency_identity(ctx).to_dict()
    emit(
        fmt,
        doc,
        f"{doc['name']} ({doc['country']})\nkey id      {doc['key_id']}\npublic key  {doc['public_key']}",
    )


def register(root: typer.Typer) -> None:
    """Add ``agency`` to the root application."""
    root.add_typer(app, name="agency")
