"""``fundtrail serve`` with several worker processes (granian) and with uvicorn: every worker answers for
tokens, revocations and background jobs alike; case writes queue across the workers; bad options are
one line and exit 2."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

FUNDTRAIL = [sys.executable, "-c", "from fundtrail.cli.main import run; run()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(home: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``fundtrail serve`` on ``home`` on a free loopback port; yields its base URL and process."""
    port = _free_port()
    env = {**os.environ}
    env.pop("FUNDTRAIL_DATABASE_URL", None)
    process = subprocess.Popen([*FUNDTRAIL, "serve", "--home", str(home), "--port", str(port),
                                "--no-access-log", "--log-level", "warning", *options],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise AssertionError(f"fundtrail serve stopped: {process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("fundtrail serve did not answer")
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(x) for x in text.split()]


def fresh(method: str, url: str, token: str, **kwargs: object) -> httpx.Response:
    """One request on a new connection (so that successive requests reach the workers in turn)."""
    return httpx.request(method, url, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                         **kwargs)  # type: ignore[arg-type]


def test_workers_answer_for_each_others_tokens_revocations_and_jobs(agency, world) -> None:
    from fundtrail.api.auth import Credentials

    with Credentials(agency.home) as credentials:
        token, info = credentials.issue("ana", name="workers", lifetime=timedelta(days=1))
    with serving(agency.home, "--workers", "2", "--token-cache-seconds", "1") as (base, process):
        assert len(_children(process.pid)) == 2
        for _ in range(12):
            assert fresh("GET", f"{base}/api/auth/me", token).json()["username"] == "ana"
        started = fresh("POST", f"{base}/api/traces", token,
                        json={"chain": "btc", "seeds": [world.R], "background": True})
        assert started.status_code == 202, started.text
        location = base + started.json()["location"]
        statuses = []
        for _ in range(40):
            polled = fresh("GET", location, token)
            assert polled.status_code == 200, polled.text  # a job of one worker, polled at any worker
            statuses.append(polled.json()["status"])
            if statuses[-1] == "done" and len(statuses) >= 12:
                break
            time.sleep(0.05)
        assert statuses[-1] == "done" and polled.json()["result"]["seeds"] == [world.R]
        other = agency.token("ivo")
        assert fresh("GET", location, other).status_code == 404  # another user's job
        with Credentials(agency.home) as credentials:
            credentials.revoke(info["id"])
        time.sleep(1.5)  # the bound given with --token-cache-seconds, and some
        for _ in range(12):
            assert fresh("GET", f"{base}/api/auth/me", token).status_code == 401


def test_uvicorn_still_serves_in_one_process(agency) -> None:
    token = agency.token("ana")
    with serving(agency.home, "--server", "uvicorn") as (base, process):
        assert _children(process.pid) == []
        answer = fresh("GET", f"{base}/api/auth/me", token)
        assert answer.status_code == 200 and answer.json()["username"] == "ana"


@pytest.mark.parametrize("options, named", [
    (["--server", "uvicorn", "--workers", "2"], "--workers"),
    (["--log-level", "loud"], "--log-level"),
    (["--workers", "0"], "--workers"),
])
def test_bad_serve_options_are_one_line_and_exit_2(options, named, tmp_path: Path) -> None:
    done = subprocess.run([*FUNDTRAIL, "serve", "--home", str(tmp_path / "home"), *options],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr


def test_case_operations_queue_behind_another_process_writing(agency) -> None:
    """A case read (audited: it writes) waits while another process holds the writers' queue."""
    number = agency.cases["cyber"]
    lock = os.open(f"{agency.home / 'cases.sqlite'}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
    answers: list[int] = []
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reader = threading.Thread(target=lambda: answers.append(
            agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo")).status_code))
        reader.start()
        reader.join(1.0)
        assert reader.is_alive() and answers == []  # queued behind the other writer
        fcntl.flock(lock, fcntl.LOCK_UN)
        reader.join(60)
        assert answers == [200]
    finally:
        os.close(lock)


def test_a_partner_nonce_seen_by_one_worker_is_a_replay_at_another(agency, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from fundtrail.api.app import create_app
    from fundtrail.api.state import ApiSettings
    from fundtrail.errors import IntegrityError

    settings = ApiSettings(password_time_cost=1, password_memory_kib=1024, shared_folder=tmp_path)
    apps = [create_app(agency.home, settings) for _ in range(2)]
    try:
        a, b = (app.state.fundtrail.extra["sharing"].guard for app in apps)
        now = datetime.now(UTC)
        a.check("partner-key", "n" * 32, now)
        with pytest.raises(IntegrityError, match="replay"):
            b.check("partner-key", "n" * 32, now)
        b.check("partner-key", "m" * 32, now)  # another nonce passes
        b.check("other-key", "n" * 32, now)  # the same nonce of another key passes
        later = now + 3 * a.window  # past the horizon, a nonce may come again
        a.check("partner-key", "n" * 32, later)
    finally:
        for app in apps:
            app.state.fundtrail.close()
