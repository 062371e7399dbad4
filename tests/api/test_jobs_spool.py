"""Background jobs shared by the worker processes of one server: a job started by one worker is answered
by another (running, then its result or problem), only to its owner; expired jobs leave the spool."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fundtrail.api.jobs import JobManager
from fundtrail.errors import InputError, NotFoundError


def test_a_job_of_one_worker_is_answered_by_another(tmp_path: Path) -> None:
    a, b = JobManager(spool=tmp_path), JobManager(spool=tmp_path)
    release = threading.Event()
    try:
        job = a.submit("trace", 7, lambda: release.wait(30) and {"flows": [1, 2]})
        seen = b.get(job.id, 7)
        assert seen.status == "running" and seen.to_document()["result"] is None
        release.set()
        assert a.wait(job, 30)
        done = b.get(job.id, 7).to_document()
        assert done["status"] == "done" and done["result"] == {"flows": [1, 2]}
        assert done["job_id"] == job.id and done["kind"] == "trace" and done["finished_at"] is not None
        assert done == a.get(job.id, 7).to_document()
        with pytest.raises(NotFoundError):
            b.get(job.id, 8)  # another user's job
        with pytest.raises(NotFoundError):
            b.get("../../etc/passwd", 7)
    finally:
        release.set()
        a.shutdown()
        b.shutdown()


def test_a_failed_job_carries_its_problem_to_the_other_worker(tmp_path: Path) -> None:
    a, b = JobManager(spool=tmp_path), JobManager(spool=tmp_path)

    def bad() -> None:
        raise InputError("seeds: no such address")

    def broken() -> None:
        raise RuntimeError("internal detail")

    try:
        job, crash = a.submit("trace", 1, bad), a.submit("trace", 1, broken)
        assert a.wait(job, 30) and a.wait(crash, 30)
        problem = b.get(job.id, 1).to_document()["problem"]
        assert problem["status"] == 422 and problem["detail"] == "seeds: no such address"
        hidden = b.get(crash.id, 1).to_document()["problem"]
        assert hidden["status"] == 500 and "internal detail" not in str(hidden)
    finally:
        a.shutdown()
        b.shutdown()


def test_expired_jobs_leave_the_spool(tmp_path: Path) -> None:
    a = JobManager(spool=tmp_path, max_jobs=2)
    try:
        jobs = [a.submit("paths", 1, lambda i=i: {"n": i}) for i in range(3)]
        for job in jobs:
            assert a.wait(job, 30)
        a.submit("paths", 1, lambda: {"n": 3})  # submitting expires the oldest beyond max_jobs
        with pytest.raises(NotFoundError):
            a.get(jobs[0].id, 1)
        assert not (tmp_path / f"{jobs[0].id}.json").exists()
        assert a.get(jobs[2].id, 1).to_document()["result"] == {"n": 2}
    finally:
        a.shutdown()


def test_without_a_spool_jobs_stay_in_memory(tmp_path: Path) -> None:
    a = JobManager()
    try:
        job = a.submit("risk", 1, lambda: {"score": 3})
        assert a.wait(job, 30) and a.get(job.id, 1).to_document()["result"] == {"score": 3}
        assert list(tmp_path.iterdir()) == []
    finally:
        a.shutdown()
