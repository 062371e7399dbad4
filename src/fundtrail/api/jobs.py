"""Background jobs: long analyses (big traces, path searches on hubs) run off the request threads.

A route submits work and waits a short while; when the work is not done by then the route answers
``202 Accepted`` with the job's id, and the client polls ``GET /jobs/{id}``. Jobs belong to the user who
started them: another user asking for one gets 404. Finished jobs are kept for ``keep_seconds``.

Several worker processes (``fundtrail serve --workers N``) each run their own pool, and a poll may reach
any of them: with a ``spool`` folder (one per server, shared by its workers) a job is written there when
it starts (running) and again with its document when it finishes, so that every worker answers for every
job. The files are written whole and renamed into place; a worker removes its own jobs' files when they
expire. A job whose worker died while it ran stays ``running`` until the server restarts (the spool is a
fresh folder per server).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fundtrail.api.errors import FieldError, classify
from fundtrail.errors import FundTrailError, NotFoundError

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"[0-9a-f]{24}")
MAX_SPOOLED_BYTES = 256 * 1024 * 1024
"""A spooled job document larger than this is not read back (a trace document is far smaller)."""


def _when(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass
class Job:
    """One piece of background work and, once finished, its result or error.

    ``document`` is set for a job read from the spool (run by another worker): its state as that worker
    wrote it; ``future`` is then a finished placeholder.
    """

    id: str
    kind: str
    owner: int
    created: float
    future: Future[Any]
    finished: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    document: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        """``running``, ``done`` or ``failed``."""
        if self.document is not None:
            return str(self.document["status"])
        if not self.future.done():
            return "running"
        return "failed" if self.future.exception() is not None else "done"

    def to_document(self) -> dict[str, Any]:
        """The ``GET /jobs/{id}`` document: status, result once done, the problem once failed."""
        if self.document is not None:
            return self.document
        doc: dict[str, Any] = {"job_id": self.id, "kind": self.kind, "status": self.status,
                               "created_at": _when(self.created), "finished_at": _when(self.finished),
                               "result": None, "problem": None}
        if doc["status"] == "done":
            doc["result"] = self.future.result()
        elif doc["status"] == "failed":
            doc["problem"] = problem_of(self.future.exception())
        return doc


def problem_of(error: BaseException | None) -> dict[str, Any]:
    """The problem document of a failed job (internals of unexpected errors stay in the log)."""
    if isinstance(error, FieldError):
        status, slug, title = classify(error.error)
        errors: list[dict[str, Any]] | None = [{"field": error.field, "location": error.location,
                                                "message": str(error.error)}]
    else:
        status, slug, title = classify(error or RuntimeError())
        errors = None
    detail = str(error) if status != 500 else "the analysis failed; the error is in the service log"
    return {"type": f"urn:fundtrail:problem:{slug}", "title": title, "status": status, "detail": detail,
            "errors": errors}


class JobManager:
    """A small pool of worker threads and the jobs they ran (shared through ``spool`` when given)."""

    def __init__(self, workers: int = 2, keep_seconds: float = 3600.0, max_jobs: int = 200,
                 spool: Path | None = None) -> None:
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.keep_seconds = keep_seconds
        self.max_jobs = max_jobs
        self.spool = Path(spool) if spool is not None else None

    def submit(self, kind: str, owner: int, work: Callable[[], Any], **meta: Any) -> Job:
        """Start ``work`` in the pool; the job is registered (and spooled) before it runs."""
        self._expire()
        job_id = secrets.token_hex(12)

        def run() -> Any:
            try:
                return work()
            except (FundTrailError, FieldError):  # bad input or a refusal: the job's problem, not a failure
                raise
            except Exception:
                log.exception("job %s (%s) failed", job_id, kind)
                raise
            finally:
                with self._lock:
                    if job_id in self._jobs:
                        self._jobs[job_id].finished = time.time()

        with self._lock:
            if self._pool is None:  # started on first use, again after a shutdown (a new app lifespan)
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fundtrail-job")
            future: Future[Any] = Future()
            job = Job(job_id, kind, owner, time.time(), future, meta=meta)
            self._jobs[job_id] = job
        if self.spool is not None:
            self._write(job, job.to_document())
            inner = self._pool.submit(run)
            inner.add_done_callback(lambda done: self._finish(job, done, future))
        else:
            job.future = self._pool.submit(run)
        return job

    def _finish(self, job: Job, done: Future[Any], future: Future[Any]) -> None:
        """Spool the finished job's document, then release the waiters (so that a poll they answer with
        202 finds it in any worker)."""
        if job.finished is None:
            job.finished = time.time()
        probe: Future[Any] = Future()
        _chain(done, probe)
        spooled = Job(job.id, job.kind, job.owner, job.created, probe, job.finished, job.meta)
        try:
            self._write(job, spooled.to_document())
        except Exception:  # a result that cannot be written is still answered by this worker
            log.exception("could not spool job %s", job.id)
        _chain(done, future)

    def _path(self, job_id: str) -> Path:
        assert self.spool is not None
        return self.spool / f"{job_id}.json"

    def _write(self, job: Job, document: dict[str, Any]) -> None:
        from fastapi.encoders import jsonable_encoder

        assert self.spool is not None
        data = json.dumps({"owner": job.owner, "document": jsonable_encoder(document)},
                          separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(dir=self.spool, prefix=".job-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
            os.replace(tmp, self._path(job.id))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _read(self, job_id: str) -> Job | None:
        if self.spool is None or not JOB_ID.fullmatch(job_id):
            return None
        path = self._path(job_id)
        try:
            if path.stat().st_size > MAX_SPOOLED_BYTES:
                return None
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        placeholder: Future[Any] = Future()
        placeholder.set_result(None)
        document = stored["document"]
        return Job(job_id, document["kind"], int(stored["owner"]), 0.0, placeholder, document=document)

    def wait(self, job: Job, seconds: float) -> bool:
        """Wait up to ``seconds`` for the job; true when it finished (done or failed)."""
        try:
            job.future.exception(timeout=seconds)
        except FutureTimeout:
            return False
        return True

    def get(self, job_id: str, owner: int) -> Job:
        """The job, when ``owner`` started it; NotFoundError otherwise."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            job = self._read(job_id)
        if job is None or job.owner != owner:
            raise NotFoundError("job", job_id)
        return job

    def _expire(self) -> None:
        now = time.time()
        with self._lock:
            old = [k for k, j in self._jobs.items()
                   if j.finished is not None and now - j.finished > self.keep_seconds]
            finished = sorted((j.finished, k) for k, j in self._jobs.items()
                              if j.finished is not None and k not in old)
            while len(self._jobs) - len(old) > self.max_jobs and finished:
                old.append(finished.pop(0)[1])
            for key in old:
                del self._jobs[key]
        if self.spool is not None:
            for key in old:
                self._path(key).unlink(missing_ok=True)

    def shutdown(self) -> None:
        """Stop the workers; queued jobs are cancelled, running ones finish on their own."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _chain(done: Future[Any], future: Future[Any]) -> None:
    """Copy the outcome of ``done`` into ``future``."""
    if future.done():
        return
    if done.cancelled():
        future.cancel()
        future.set_running_or_notify_cancel()
        return
    error = done.exception()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(done.result())
