"""What the cooperation routes keep between a partner's calls, when several worker processes serve them.

A partner's follow-up call may reach any worker of ``fundtrail serve``: the contacts step of a PSI query
(:mod:`fundtrail.sharing.psi`) and the status of a TAXII addition (:mod:`fundtrail.api.routers.taxii`)
are kept as small files in a folder the workers share (the server's private folder, 0700), one file per
session or status, named by a hash of its id (an id a partner sends never becomes a path). Each file is
written whole (a temporary file, then ``os.replace``, mode 0600) and read under a size bound; a file that
is too large or not what this module writes is refused as if it were not there.

- PSI sessions (:class:`SharedPsiSessions`): opening writes the partner's key id, the query's item count
  and the wall time; closing first claims the file by renaming it to a name of its own, so that exactly
  one call of any process gets it, then checks partner, expiry and count as :class:`PsiSessions` does.
  At most :data:`MAX_OPEN_SESSIONS` files at once; expired ones are pruned now and then.
- TAXII statuses (:class:`SharedStatuses`): one JSON file per status, kept :data:`STATUS_SECONDS` (24 h)
  and at most :data:`MAX_STATUSES` of them (the oldest go first past that bound). A status larger than
  :data:`MAX_STATUS_BYTES` is kept with its counts only (its lists are optional in TAXII 2.1).

:class:`MemoryStatuses` is the one-process store of TAXII statuses (``fundtrail serve --server uvicorn``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fundtrail.errors import ConflictError, IntegrityError
from fundtrail.sharing.psi import MAX_CLIENT_ITEMS, SESSION_SECONDS

log = logging.getLogger(__name__)

MAX_SESSION_BYTES = 2048
"""The largest PSI session file read (what this module writes is about 150 bytes)."""

MAX_OPEN_SESSIONS = 10_000
"""The most PSI queries open at once across the workers; a query past it is refused (409)."""

MAX_STATUS_BYTES = 256 * 1024
"""The largest TAXII status file kept whole and read."""

MAX_STATUSES = 5_000
"""The most TAXII statuses kept across the workers (the oldest are pruned past it)."""

STATUS_SECONDS = 24 * 3600
"""How long a TAXII status is kept."""

PRUNE_EVERY = 64
"""Each process prunes its folder at every this many writes (and whenever the folder is full)."""

CLOCK_LEEWAY = 5.0
"""How far in the future (seconds) a session's creation time may lie before it is refused."""

_NO_SESSION = "no open deconfliction query with this session (unknown, used or expired)"


def _file_name(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _write_whole(path: Path, data: bytes) -> None:
    """``data`` into ``path`` (0600): readers see the old file, no file, or the whole new one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_bounded(path: Path, limit: int) -> bytes | None:
    """The bytes of the regular file ``path``; None when it is missing, not a regular file or too large."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # missing, or a symbolic link (ELOOP)
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        data = file.read(limit + 1)
    return data if len(data) <= limit else None


def _json_object(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _prune(folder: Path, older_than: float, keep_at_most: int | None = None) -> int:
    """Remove the files of ``folder`` last written before ``older_than`` (wall time), then the oldest
    past ``keep_at_most``; returns how many are left."""
    left: list[tuple[float, Path]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                written = entry.stat(follow_symlinks=False).st_mtime
                if written < older_than:
                    os.unlink(entry.path)
                else:
                    left.append((written, Path(entry.path)))
            except FileNotFoundError:  # another worker took it first
                continue
    if keep_at_most is not None and len(left) > keep_at_most:
        left.sort()
        for _written, path in left[: len(left) - keep_at_most]:
            path.unlink(missing_ok=True)
        left = left[len(left) - keep_at_most :]
    return len(left)


class SharedPsiSessions:
    """:class:`fundtrail.sharing.psi.PsiSessions` for every worker of a server: one file per open query."""

    def __init__(self, folder: Path, ttl: float = SESSION_SECONDS, *, max_open: int = MAX_OPEN_SESSIONS,
                 clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(folder)
        self.ttl = ttl
        self.max_open = max_open
        self._clock = clock
        self._opened = itertools.count(1)

    def open(self, partner_key_id: str, client_items: int) -> str:
        """A new session for a partner's query of ``client_items`` items; ConflictError when too many
        queries are open."""
        now = self._clock()
        if next(self._opened) % PRUNE_EVERY == 0 or len(os.listdir(self.folder)) >= self.max_open:
            if _prune(self.folder, now - self.ttl) >= self.max_open:
                raise ConflictError(f"{self.max_open} deconfliction queries are open: ask again later")
        session = secrets.token_urlsafe(18)
        record = {"partner": partner_key_id, "items": client_items, "created": now}
        _write_whole(self.folder / _file_name(session), json.dumps(record).encode())
        return session

    def close(self, session: str, partner_key_id: str, asked: int) -> None:
        """Use a session up (in whichever process); IntegrityError when unknown, expired, another
        partner's, or asking for more."""
        found = self._claim(session)
        now = self._clock()
        if found is None or found[0] != partner_key_id or not -CLOCK_LEEWAY <= now - found[2] < self.ttl:
            raise IntegrityError(_NO_SESSION)
        if asked > found[1]:
            raise IntegrityError(f"{asked} contacts asked for a query of {found[1]} items")

    def _claim(self, session: str) -> tuple[str, int, float] | None:
        """The session's record, taken out of the folder: the one rename that succeeds claims it."""
        path = self.folder / _file_name(session)
        claimed = path.with_name(f"{path.name}.{secrets.token_hex(8)}.claimed")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        try:
            document = _json_object(_read_bounded(claimed, MAX_SESSION_BYTES))
        finally:
            claimed.unlink(missing_ok=True)
        return _session_record(document)


def _session_record(document: dict[str, Any] | None) -> tuple[str, int, float] | None:
    """(partner key id, item count, creation time) of a session file; None unless it is one."""
    if document is None or set(document) != {"partner", "items", "created"}:
        return None
    partner, items, created = document["partner"], document["items"], document["created"]
    if not isinstance(partner, str) or not partner or not _is_count(items) or not _is_time(created):
        return None
    if not 0 < items <= MAX_CLIENT_ITEMS:
        return None
    return partner, items, float(created)


class MemoryStatuses:
    """TAXII statuses of one process: the newest :data:`MAX_STATUSES`, by status id."""

    def __init__(self, max_statuses: int = MAX_STATUSES) -> None:
        self.max_statuses = max_statuses
        self._kept: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put(self, sid: str, record: dict[str, Any]) -> None:
        """Keep ``record`` (``{"partner": key id, "status": the TAXII status}``) under ``sid``."""
        with self._lock:
            self._kept[sid] = record
            while len(self._kept) > self.max_statuses:
                del self._kept[next(iter(self._kept))]

    def get(self, sid: str) -> dict[str, Any] | None:
        """The record kept under ``sid``, if any."""
        with self._lock:
            return self._kept.get(sid)


class SharedStatuses:
    """TAXII statuses for every worker of a server: one JSON file per status (see the module docstring)."""

    def __init__(self, folder: Path, *, keep_seconds: float = STATUS_SECONDS,
                 max_statuses: int = MAX_STATUSES, clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(folder)
        self.keep_seconds = keep_seconds
        self.max_statuses = max_statuses
        self._clock = clock
        self._written = itertools.count(1)

    def put(self, sid: str, record: dict[str, Any]) -> None:
        """Keep ``record`` (``{"partner": key id, "status": the TAXII status}``) under ``sid``."""
        now = self._clock()
        if next(self._written) % PRUNE_EVERY == 0 or len(os.listdir(self.folder)) >= self.max_statuses:
            _prune(self.folder, now - self.keep_seconds, self.max_statuses - 1)
        data = _status_bytes(record["partner"], record["status"], now)
        _write_whole(self.folder / f"{_file_name(sid)}.json", data)

    def get(self, sid: str) -> dict[str, Any] | None:
        """The record kept under ``sid``; None when there is none, it is too old, or its file is not one
        this store writes."""
        document = _json_object(_read_bounded(self.folder / f"{_file_name(sid)}.json", MAX_STATUS_BYTES))
        if document is None or set(document) != {"partner", "status", "saved"}:
            return None
        partner, status, saved = document["partner"], document["status"], document["saved"]
        if not isinstance(partner, str) or not isinstance(status, dict) or not _is_time(saved):
            return None
        if not -CLOCK_LEEWAY <= self._clock() - saved < self.keep_seconds:
            return None
        return {"partner": partner, "status": status}


def _status_bytes(partner: str, status: dict[str, Any], now: float) -> bytes:
    """The file of a status; past :data:`MAX_STATUS_BYTES`, without its per-object lists."""
    data = json.dumps({"partner": partner, "status": status, "saved": now}).encode()
    if len(data) > MAX_STATUS_BYTES:
        counts = {k: v for k, v in status.items() if k not in ("successes", "failures", "pendings")}
        log.info("TAXII status %s is kept with its counts only (%d bytes whole)", status.get("id"), len(data))
        data = json.dumps({"partner": partner, "status": counts, "saved": now}).encode()
    return data
