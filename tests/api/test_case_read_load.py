"""What keeps the audited case read fast under load without changing what it answers: the process's
settings while the app serves (the collector's, the interpreter lock's switch interval), and the route's
one dependency (the signed-in user)."""

from __future__ import annotations

import gc
import sys

from fundtrail.api import app as app_module
from fundtrail.api.app import GC_THRESHOLDS, SWITCH_INTERVAL, serving_process


def test_while_serving_the_collector_waits_longer_the_lock_switches_sooner_then_both_are_restored() -> None:
    saved = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(700, 10, 10)
    sys.setswitchinterval(0.005)
    app_module._freeze_start_up_heap.cache_clear()  # as in a new process
    before = gc.get_freeze_count()
    kept = [[n] for n in range(1000)]  # made after anything was frozen
    try:
        with serving_process():
            assert gc.get_threshold() == GC_THRESHOLDS
            assert sys.getswitchinterval() == SWITCH_INTERVAL
            frozen = gc.get_freeze_count()
            assert frozen >= before + len(kept)  # what exists at the start is left out of collections
            with serving_process():  # another app of the same process freezes nothing more
                assert gc.get_freeze_count() == frozen
            assert gc.get_threshold() == GC_THRESHOLDS and sys.getswitchinterval() == SWITCH_INTERVAL
        assert gc.get_threshold() == (700, 10, 10)
        assert sys.getswitchinterval() == 0.005
    finally:
        gc.set_threshold(*saved[0])
        sys.setswitchinterval(saved[1])


def test_the_app_serves_with_the_process_settings(agency) -> None:
    number = agency.cases["cyber"]
    assert agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo")).status_code == 200
    assert gc.get_threshold() == GC_THRESHOLDS and sys.getswitchinterval() == SWITCH_INTERVAL


def test_the_case_read_checks_its_caller_before_its_parameters_and_records_nothing_refused(agency) -> None:
    number = agency.cases["cyber"]
    before = len(agency.audit())
    assert agency.client.get(f"/api/cases/{number}").status_code == 401
    # a malformed number and reason without credentials: still 401, not a word on the parameters
    answer = agency.client.get(f"/api/cases/{'X' * 40}", headers={"X-Reason": "x" * 501})
    assert answer.status_code == 401
    answer = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo", reason="x" * 501))
    assert answer.status_code == 422 and "Ransomware" not in answer.text
    assert "x-reason" in answer.text.lower()
    assert len(agency.audit()) == before
    answer = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo", reason="weekly review"))
    assert answer.status_code == 200 and answer.json()["title"].startswith("Ransomware")
    assert [(r["action"], r["reason"]) for r in agency.audit()[before:]] == [
        ("case.read", "weekly review"), ("api.get_case", "weekly review")]
