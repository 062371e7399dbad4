"""Deadlines from the governing instruments: the shipped rules, business days, overrides, due status."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fundtrail.cases.requests import deadline_book
from fundtrail.domain.deadlines import (
    DueStatus,
    add_days,
    deadlines,
    due_status,
    merge,
    parse_deadline_book,
)
from fundtrail.domain.requests import RequestType
from fundtrail.errors import InputError, NotFoundError


def test_shipped_rules_carry_the_instruments_time_limits() -> None:
    book = deadline_book()
    art29 = book.rule_for(RequestType.PRESERVATION)
    assert (art29.key, art29.hold_days, art29.minimum_hold, art29.renewable) == (
        "budapest-art29",
        60,
        True,
        True,
    )
    assert book.rule_for(RequestType.DISCLOSURE).answer_days == 30  # Second Additional Protocol, Art. 7
    assert book.rule_for(RequestType.DISCLOSURE, "protocol2-art8-subscriber").answer_days == 20
    assert book.rule_for(RequestType.DISCLOSURE, "protocol2-art8-traffic").answer_days == 45
    assert book.rule_for(RequestType.MLA).key == "budapest-art31"
    freeze = book.rule_for(RequestType.FREEZE)
    assert (freeze.answer_days, freeze.business_days, freeze.hold_days, freeze.hold_business_days) == (
        5,
        True,
        30,
        False,
    )
    assert "Article 29" in art29.title and "60 jours" in art29.text("fr")[1]


def test_freeze_sent_on_a_thursday_is_due_the_next_thursday_and_holds_30_days_from_acknowledgement() -> None:
    rule = deadline_book().rule_for(RequestType.FREEZE)
    thursday = date(2026, 1, 8)
    due = deadlines(rule, thursday)
    assert due.answer_due == date(2026, 1, 15)  # 5 business days: Fri, Mon, Tue, Wed, Thu
    assert due.hold_until == date(2026, 2, 7)  # not acknowledged: from sending
    acked = deadlines(rule, thursday, date(2026, 1, 12))
    assert acked.hold_until == date(2026, 2, 11)


def test_business_days_skip_weekends_and_holidays() -> None:
    friday = date(2026, 1, 2)
    assert add_days(friday, 1, business=True) == date(2026, 1, 5)
    assert add_days(friday, 1, business=True, holidays=[date(2026, 1, 5)]) == date(2026, 1, 6)
    assert add_days(friday, 3) == date(2026, 1, 5)


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    st.integers(0, 60),
    st.sets(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 6, 1)), max_size=10),
)
def test_business_day_arithmetic(start: date, n: int, holidays: set[date]) -> None:
    end = add_days(start, n, business=True, holidays=holidays)
    if n == 0:
        assert end == start
        return
    assert end.weekday() < 5 and end not in holidays
    days = [start + timedelta(days=i) for i in range(1, (end - start).days + 1)]
    assert sum(1 for d in days if d.weekday() < 5 and d not in holidays) == n


def test_due_status() -> None:
    today = date(2026, 3, 10)
    assert due_status(date(2026, 3, 9), today, 7) is DueStatus.OVERDUE
    assert due_status(today, today, 0) is DueStatus.DUE_SOON
    assert due_status(date(2026, 3, 17), today, 7) is DueStatus.DUE_SOON
    assert due_status(date(2026, 3, 18), today, 7) is DueStatus.LATER


def _data() -> dict:
    return {
        "instruments": {"a": {"title": "A", "request_types": ["freeze"], "answer_days": 5}},
        "defaults": {"freeze": "a"},
    }


def test_agreement_overrides_the_instruments_deadlines() -> None:
    data = _data()
    data["agreements"] = {"fast-partner": {"instruments": {"a": {"answer_days": 2}}}}
    book = parse_deadline_book(data)
    assert book.rule_for(RequestType.FREEZE).answer_days == 5
    assert book.rule_for(RequestType.FREEZE, agreement="fast-partner").answer_days == 2
    with pytest.raises(NotFoundError, match="agreement 'nobody'"):
        book.rule_for(RequestType.FREEZE, agreement="nobody")


def test_agency_file_overrides_the_shipped_rules(tmp_path) -> None:
    (tmp_path / "deadlines.yaml").write_text(
        yaml.safe_dump(
            {"instruments": {"domestic-exchange-freeze": {"answer_days": 3}}, "holidays": ["2026-01-06"]}
        )
    )
    book = deadline_book(tmp_path)
    freeze = book.rule_for(RequestType.FREEZE)
    assert (freeze.answer_days, freeze.hold_days) == (3, 30)
    assert date(2026, 1, 6) in book.holidays


@pytest.mark.parametrize(
    "change, field",
    [
        ({"instruments": {"a": {"title": "A", "request_types": ["bail"]}}}, "unknown request type 'bail'"),
        (
            {"instruments": {"a": {"title": "A", "request_types": ["freeze"], "answer_days": -1}}},
            "instruments.a.answer_days",
        ),
        ({"instruments": {"a": {"request_types": ["freeze"]}}}, r"instruments.a.title is missing"),
        ({"defaults": {"freeze": "zzz"}}, "defaults.freeze names unknown instrument 'zzz'"),
        ({"holidays": ["someday"]}, "holidays: 'someday' is not a date"),
    ],
)
def test_bad_rules_name_the_field(change: dict, field: str) -> None:
    data = merge(_data(), change)
    if "instruments" in change:
        data["instruments"] = change["instruments"]
    with pytest.raises(InputError, match=field):
        parse_deadline_book(data)


def test_instrument_must_govern_the_request_type() -> None:
    with pytest.raises(InputError, match="does not govern freeze requests"):
        deadline_book().rule_for(RequestType.FREEZE, "budapest-art29")
