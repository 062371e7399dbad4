"""A partner's follow-up calls reach any worker of ``fundtrail serve --workers 2``: a TAXII status is read at
both workers, and a PSI query opened at one worker is answered for contacts at the other. Which worker
answered a call is found from the kernel's socket tables: the worker process holding the server end of
the call's connection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from test_serve_workers import _children, serving

from fundtrail.sharing.taxii_server import collection_id

AGREEMENT = "ee-partner"
ROUNDS = 12
MOST_TRIES = 200


def _partner_key(agency: Any, folder: Path) -> Any:
    """A partner agency's key, with an agreement for addresses recorded (and pinned) in ``agency``."""
    from fundtrail.audit.keys import load_or_create
    from fundtrail.cases.context import open_operation
    from fundtrail.domain.sharing import DataCategory, Pap, Tlp
    from fundtrail.sharing.agreements import AgreementSpec, create_agreement

    key = load_or_create(folder)
    with open_operation(agency.home, None, user_required=False) as ctx:
        create_agreement(ctx, AgreementSpec(
            name=AGREEMENT, partner_name="Partner Police", partner_country="FI",
            partner_public_key=key.public_b64, legal_basis="Budapest Convention, art. 29",
            categories=frozenset({DataCategory.ADDRESSES_AND_TRANSACTIONS}), tlp=Tlp("amber"),
            pap=Pap("amber")))
    return key


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server end of the loopback connection from ``client_port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
            if (local, remote) == (server_port, client_port):
                return fields[9]
    return None


def _worker_of(answer: httpx.Response, workers: list[int]) -> int:
    """The worker process that holds the connection ``answer`` came on (its client still open)."""
    stream = answer.extensions["network_stream"]
    client_port = stream.get_extra_info("client_addr")[1]
    server_port = stream.get_extra_info("server_addr")[1]
    inode = _socket_inode(server_port, client_port)
    assert inode is not None
    holders = [pid for pid in workers for fd in Path(f"/proc/{pid}/fd").iterdir()
               if _link(fd) == f"socket:[{inode}]"]
    assert len(holders) == 1, holders
    return holders[0]


def _link(fd: Path) -> str:
    try:
        return str(fd.readlink())
    except OSError:  # closed meanwhile
        return ""


@contextmanager
def _connection(base: str, key: Any) -> Iterator[httpx.Client]:
    """A new connection, whose requests the partner signs."""
    from fundtrail.sharing.signing import SignedAuth

    with httpx.Client(base_url=base, auth=SignedAuth(key), timeout=60) as client:
        yield client


@contextmanager
def _connection_to(base: str, key: Any, workers: list[int], wanted: bool,
                   worker: int) -> Iterator[httpx.Client]:
    """A new connection to ``worker`` (``wanted``) or to another worker (not ``wanted``)."""
    from fundtrail.sharing.partners import COOPERATION_PATH

    for _ in range(MOST_TRIES):
        with _connection(base, key) as client:
            if (_worker_of(client.get(f"{COOPERATION_PATH}/agency"), workers) == worker) == wanted:
                yield client
                return
    raise AssertionError(f"no connection reached the worker wanted in {MOST_TRIES} tries")


def test_a_taxii_status_is_answered_by_every_worker(agency, tmp_path: Path) -> None:
    key = _partner_key(agency, tmp_path / "partner")
    inbox = f"/taxii2/fundtrail/collections/{collection_id('inbox', AGREEMENT)}/objects/"
    with serving(agency.home, "--workers", "2") as (base, process):
        workers = _children(process.pid)
        assert len(workers) == 2
        with _connection(base, key) as client:
            not_a_package = {"objects": [{"type": "report", "id": f"report--{uuid.uuid4()}"}]}
            posted = client.post(inbox, json=not_a_package)  # refused whole, and its status says so
            assert posted.status_code == 202, posted.text
            status = posted.json()
            seen = {_worker_of(posted, workers)}
        answers = []
        for _ in range(MOST_TRIES):
            with _connection(base, key) as client:
                answer = client.get(f"/taxii2/fundtrail/status/{status['id']}/")
                answers.append((answer.status_code, answer.json()))
                seen.add(_worker_of(answer, workers))
            if len(seen) == 2 and len(answers) >= ROUNDS:
                break
        assert seen == set(workers)  # both workers answered
        assert answers == [(200, status)] * len(answers)


def test_psi_contacts_are_answered_by_the_worker_that_did_not_open_the_query(agency, world,
                                                                             tmp_path: Path) -> None:
    from fundtrail.sharing.partners import COOPERATION_PATH
    from fundtrail.sharing.psi import start_query

    key = _partner_key(agency, tmp_path / "partner")
    query = start_query([("btc", world.R), ("btc", world.M)])  # the agency's case holds R, not M
    with serving(agency.home, "--workers", "2") as (base, process):
        workers = _children(process.pid)
        with _connection(base, key) as client:
            opened = client.post(f"{COOPERATION_PATH}/psi", json={"request": query.request})
            assert opened.status_code == 200, opened.text
            opener = _worker_of(opened, workers)
        matches = query.matches(opened.json()["setup"], opened.json()["response"])
        assert matches == [("btc", world.R)]
        body = {"session": opened.json()["session"], "items": [{"chain": "btc", "address": world.R}]}
        with _connection_to(base, key, workers, False, opener) as client:
            contacts = client.post(f"{COOPERATION_PATH}/psi/contacts", json=body)
            assert _worker_of(contacts, workers) != opener
        assert contacts.status_code == 200, contacts.text
        assert [m["address"] for m in contacts.json()["matches"]] == [world.R]
        for wanted in (True, False):  # used up, at the worker that opened it and at the other
            with _connection_to(base, key, workers, wanted, opener) as client:
                again = client.post(f"{COOPERATION_PATH}/psi/contacts", json=body)
            assert again.status_code == 409 and "no open deconfliction query" in again.json()["detail"]
