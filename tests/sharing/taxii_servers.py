"""Servers the cooperation tests run on 127.0.0.1: OASIS medallion (memory backend) and FundTrail's app."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

TAXII = "application/taxii+json;version=2.1"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    url: str,
    *,
    seconds: float = 30,
    auth: Any = None,
    headers: dict[str, str] | None = None,
    process: subprocess.Popen | None = None,
) -> None:
    """Poll ``url`` until it answers (any status below 500)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url, auth=auth, headers=headers, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def stop(process: subprocess.Popen) -> None:
    """Stop a server process (SIGTERM, then SIGKILL)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Medallion:
    """A running medallion: its base URL, the hub collection's URL, and the user it accepts."""

    base: str
    collection: str
    user: str
    password: str


@contextmanager
def medallion(folder: Path) -> Iterator[Medallion]:
    """OASIS medallion on a free port, memory backend, one read-write collection, basic auth."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    collection = str(uuid.uuid4())
    data = {
        "/discovery": {
            "title": "Cooperation hub",
            "description": "test hub",
            "contact": "none",
            "default": f"{base}/hub/",
            "api_roots": [f"{base}/hub/"],
        },
        "hub": {
            "information": {
                "title": "hub",
                "description": "packages between agencies",
                "versions": [TAXII],
                "max_content_length": 64 * 1024 * 1024,
            },
            "status": [],
            "collections": [
                {
                    "id": collection,
                    "title": "EE-SC exchange",
                    "description": "",
                    "can_read": True,
                    "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [],
                    "manifest": [],
                }
            ],
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.json").write_text(json.dumps(data))
    config = {
        "backend": {
            "module": "medallion.backends.memory_backend",
            "module_class": "MemoryBackend",
            "filename": str(folder / "data.json"),
        },
        "users": {"agency": "hub-secret"},
        "taxii": {"max_page_size": 100},
    }
    (folder / "config.json").write_text(json.dumps(config))
    exe = Path(sys.executable).parent / "medallion"
    log = (folder / "medallion.log").open("w")
    process = subprocess.Popen(
        [str(exe), "--host", "127.0.0.1", "--port", str(port), str(folder / "config.json")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        wait_for(f"{base}/taxii2/", auth=("agency", "hub-secret"), headers={"Accept": TAXII}, process=process)
        yield Medallion(base, f"{base}/hub/collections/{collection}/", "agency", "hub-secret")
    finally:
        stop(process)
        log.close()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread on a free port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/api/cooperation/agency")
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
