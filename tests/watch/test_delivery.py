"""Alert delivery: a signed webhook (retried with back-off) and an email, both to servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from fundtrail.watch.delivery import DeliverySettings, verify, webhook_secret
from fundtrail.watch.runner import Watcher
from fundtrail.watch.service import add_watch

from .conftest import R1, Home, grow


class Hook(BaseHTTPRequestHandler):
    """Refuses the first call (503), then takes the alerts."""

    calls: list[dict[str, Any]] = []
    refuse = 1

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        Hook.calls.append({"body": body, "headers": dict(self.headers)})
        status = 503 if Hook.refuse > 0 else 200
        Hook.refuse -= 1
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def webhook() -> Iterator[str]:
    Hook.calls, Hook.refuse = [], 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def smtp() -> Iterator[tuple[str, list[bytes]]]:
    from aiosmtpd.controller import Controller

    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope.content)
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"127.0.0.1:{port}", received
    finally:
        controller.stop()


def test_alerts_arrive_by_signed_webhook_and_by_email(
    home: Home, webhook: str, smtp: tuple[str, list[bytes]]
) -> None:
    server, mails = smtp
    with home.op() as ctx:
        add_watch(ctx, "btc", [R1], case=home.case)
    settings = DeliverySettings(webhook=webhook, smtp=server, email_to=("duty@police.example",), backoff=0.01)
    watcher = Watcher(home.path, delivery=settings)
    watcher.cycle()
    with home.store() as store:
        grow(store)
    report = watcher.cycle()
    assert sorted(a["kind"] for a in report.alerts) == ["at_service", "moved"]
    assert report.delivered["webhook"] == 2 and report.delivered["email"] == 2
    secret = webhook_secret(home.path)
    accepted = Hook.calls[1:]  # the first call was refused and retried
    assert len(Hook.calls) == 3
    for call in accepted:
        headers = {k.lower(): v for k, v in call["headers"].items()}
        assert verify(
            secret, headers["x-fundtrail-timestamp"], call["body"], headers["x-fundtrail-signature"]
        )
        assert json.loads(call["body"])["case"] == home.case
    assert not verify(secret, "0", Hook.calls[1]["body"], Hook.calls[1]["headers"]["X-FundTrail-Signature"])
    subjects = sorted(message_from_bytes(m)["Subject"] for m in mails)
    assert len(subjects) == 2 and any("at_service at Northwind Exchange" in s for s in subjects)
    watcher.cycle()  # delivered once: nothing is sent again
    assert len(Hook.calls) == 3 and len(mails) == 2


def test_an_unreachable_webhook_is_retried_a_bounded_number_of_times() -> None:
    from fundtrail.watch.delivery import send_webhook

    waits: list[float] = []
    settings = DeliverySettings(webhook="http://127.0.0.1:9/none", attempts=4, backoff=0.5, max_backoff=1.5)
    assert not send_webhook(settings, b"k" * 32, {"id": 1}, sleep=waits.append)
    assert waits == [0.5, 1.0, 1.5]
