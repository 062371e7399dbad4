"""Legal requests: the workflow with its approval rule, deadlines from the instruments, what is due, and
letters rendered from templates into DOCX and PDF (opened and read back here)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
import yaml
from docx import Document
from pypdf import PdfReader

from fundtrail.audit import log as audit_log
from fundtrail.cases import cases, evidence, requests
from fundtrail.cases.context import operation
from fundtrail.cases.letters import SECTIONS, languages, render_letter
from fundtrail.cases.testing import EXCHANGE, EXCHANGE_NAME
from fundtrail.errors import InputError, InvalidTransitionError, PermissionDeniedError

THURSDAY = datetime(2026, 1, 8, 9, 0, tzinfo=UTC)


@pytest.fixture()
def freeze(agency_db, chain_store, ransom_trace):
    """A case with its trace preserved and a freeze request to the (domestic) exchange drafted by ivo."""
    with operation(agency_db, "ivo", now=THURSDAY) as ctx:
        number = cases.open_case(
            ctx,
            "LockBit affiliate payments",
            offence="ransomware extortion",
            summary="A hospital paid a ransom of 0.05 BTC on 5 January 2026.",
        ).number
        ev = evidence.preserve_trace(ctx, number, ransom_trace, chain_store, add_subjects=True).item
        req = requests.draft_request(
            ctx,
            number,
            "freeze",
            EXCHANGE_NAME,
            recipient_jurisdiction="EE",
            evidence_id=ev.id,
            measures="Keep the assets until a seizure order.",
        )
        return {"case": number, "evidence": ev.id, "sha256": ev.tagmanifest_sha256, "request": req.number}


def test_a_freeze_abroad_goes_by_mutual_legal_assistance(agency_db, freeze) -> None:
    # The agency is in EE: an exchange in LT is frozen through the treaty route, not a domestic order.
    with operation(agency_db, "ivo", now=THURSDAY) as ctx:
        draft = requests.draft_request
        abroad = draft(ctx, freeze["case"], "freeze", "Vilnius X", recipient_jurisdiction="LT")
        named = draft(ctx, freeze["case"], "freeze", "Vilnius X", recipient_jurisdiction="LT",
                      instrument="domestic-exchange-freeze")
        unknown = draft(ctx, freeze["case"], "freeze", "Somewhere Exchange")
        home = requests.show_request(ctx, freeze["request"])
        instruments = [abroad.instrument, named.instrument, unknown.instrument, home.instrument]
    assert instruments == ["warsaw-art21-freeze", "domestic-exchange-freeze", "domestic-exchange-freeze",
                           "domestic-exchange-freeze"]


def _step(db, user: str, number: str, action: str, when: datetime = THURSDAY, **kw):
    with operation(db, user, now=when) as ctx:
        return requests.transition(ctx, number, action, **kw)


def test_draft_picks_the_instrument_and_the_assets_at_the_recipient(agency_db, freeze) -> None:
    with operation(agency_db, "ivo") as ctx:
        req = requests.show_request(ctx, freeze["request"])
        doc = requests.request_doc(req)
    assert doc["number"] == f"{freeze['case']}-R01" and doc["state"] == "draft"
    assert doc["instrument"] == "domestic-exchange-freeze"
    assert [s["value"] for s in doc["subjects"]] == [EXCHANGE]
    assert doc["facts"].startswith("A hospital paid")


def test_the_author_cannot_approve_nor_can_a_non_supervisor(agency_db, freeze) -> None:
    with operation(agency_db, "admin") as ctx:
        from fundtrail.cases.users import add_user

        add_user(ctx, "sam", "Sam Supervisor", "supervisor", "Cybercrime Unit", "EE")
    with operation(agency_db, "sam") as ctx:
        own = requests.draft_request(ctx, freeze["case"], "preservation", "Northwind Exchange").number
    with pytest.raises(PermissionDeniedError, match="they drafted it"):
        _step(agency_db, "sam", own, "approve")
    with pytest.raises(PermissionDeniedError, match="may not request.approve"):
        _step(agency_db, "ivo", freeze["request"], "approve")
    assert _step(agency_db, "sue", own, "approve").state == "approved"


def test_an_unapproved_request_cannot_be_sent(agency_db, freeze) -> None:
    with pytest.raises(InvalidTransitionError, match="is draft; cannot send it"):
        _step(agency_db, "lia", freeze["request"], "send")


def test_sending_starts_the_instruments_clocks_and_each_step_is_recorded(agency_db, freeze) -> None:
    number = freeze["request"]
    _step(agency_db, "sue", number, "approve", reason="facts checked")
    sent = _step(agency_db, "lia", number, "send")
    assert (sent.answer_due, sent.hold_until) == (
        date(2026, 1, 15),
        date(2026, 2, 7),
    )  # 5 business days; 30 days
    acked = _step(agency_db, "lia", number, "acknowledge", when=datetime(2026, 1, 12, tzinfo=UTC))
    assert acked.hold_until == date(2026, 2, 11)  # the hold runs from the acknowledgement
    done = _step(
        agency_db,
        "lia",
        number,
        "answer",
        when=datetime(2026, 1, 14, tzinfo=UTC),
        outcome="2 accounts frozen",
    )
    assert done.state == "answered" and done.outcome == "2 accounts frozen"
    with operation(agency_db, "aud") as ctx:
        doc = requests.request_doc(requests.get_request(ctx, number))
        actions = [r.action for r in audit_log.records(ctx.session, object_type="request")]
    assert [(h["from"], h["to"], h["by"]) for h in doc["history"]] == [
        (None, "draft", "ivo"),
        ("draft", "approved", "sue"),
        ("approved", "sent", "lia"),
        ("sent", "acknowledged", "lia"),
        ("acknowledged", "answered", "lia"),
    ]
    assert actions == [
        "request.draft",
        "request.approve",
        "request.send",
        "request.acknowledge",
        "request.answer",
    ]
    with pytest.raises(InvalidTransitionError, match="final state"):
        _step(agency_db, "lia", number, "expire")


def test_due_lists_overdue_and_due_soon_deadlines(agency_db, freeze) -> None:
    number = freeze["request"]
    _step(agency_db, "sue", number, "approve")
    _step(agency_db, "lia", number, "send")
    with operation(agency_db, "lia") as ctx:
        assert requests.due_requests(ctx, within_days=3, today=date(2026, 1, 9)) == []
        soon = requests.due_requests(ctx, within_days=7, today=date(2026, 1, 9))
        late = requests.due_requests(ctx, within_days=0, today=date(2026, 2, 8))
    assert [(i.deadline, i.status.value, i.days_left) for i in soon] == [("answer", "due_soon", 6)]
    assert [(i.deadline, i.status.value, i.due) for i in late] == [
        ("answer", "overdue", date(2026, 1, 15)),
        ("hold_ends", "overdue", date(2026, 2, 7)),
    ]


def test_the_agency_can_override_deadlines(agency_db, home, freeze) -> None:
    (home / "deadlines.yaml").write_text(
        yaml.safe_dump({"instruments": {"domestic-exchange-freeze": {"answer_days": 2}}})
    )
    _step(agency_db, "sue", freeze["request"], "approve")
    assert _step(agency_db, "lia", freeze["request"], "send").answer_due == date(2026, 1, 12)


def _docx_text(path) -> str:
    return "\n".join(p.text for p in Document(str(path)).paragraphs)


def _pdf_text(path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(path.read_bytes())).pages)


@pytest.mark.parametrize(
    "language, words",
    [
        (
            "en",
            [
                "Request to freeze virtual assets",
                "Requesting authority",
                "Summary of the facts",
                "Measures requested",
                "Time limits",
                "5 business days",
            ],
        ),
        (
            "fr",
            [
                "Demande de gel d'actifs virtuels",
                "Autorité requérante",
                "Résumé des faits",
                "Mesures demandées",
                "Délais",
                "5 jours ouvrables",
            ],
        ),
        (
            "es",
            [
                "Solicitud de congelación de activos virtuales",
                "Autoridad requirente",
                "Resumen de los hechos",
                "Medidas solicitadas",
                "Plazos",
                "5 días hábiles",
            ],
        ),
    ],
)
def test_letters_carry_the_required_contents_in_docx_and_pdf(
    agency_db, freeze, tmp_path, language, words
) -> None:
    _step(agency_db, "sue", freeze["request"], "approve")
    _step(agency_db, "lia", freeze["request"], "send")
    with operation(agency_db, "lia", now=THURSDAY) as ctx:
        docx, pdf = render_letter(ctx, freeze["request"], tmp_path, language=language)
    assert (docx.name, pdf.name) == (
        f"{freeze['request']}.{language}.docx",
        f"{freeze['request']}.{language}.pdf",
    )
    for text in (_docx_text(docx), " ".join(_pdf_text(pdf).split())):
        for expected in [
            *words,
            "Estonian Police and Border Guard Board",
            "Ivo Investigator",
            freeze["request"],
            "ransomware extortion",
            "A hospital paid a ransom",
            EXCHANGE,
            "0.03 BTC",
            "3000000",
            freeze["evidence"],
            freeze["sha256"],
            "Keep the assets until a seizure order",
            "2026-01-15",
            "Sue Supervisor",
        ]:
            assert expected in text, (expected, language)


def test_adding_a_language_is_adding_a_template_file(agency_db, home, freeze, tmp_path) -> None:
    folder = home / "templates" / "letters"
    folder.mkdir(parents=True)
    blocks = "\n".join(
        f"{{% block {s} %}}\n# {s.upper()}\n{{{{ request.number }}}} Beweis {{{{ evidence.id }}}}"
        f"\n{{% endblock %}}"
        for s in SECTIONS
    )
    (folder / "letter.de.j2").write_text(blocks)
    assert "de" in languages(home) and {"en", "fr", "es"} <= set(languages(home))
    with operation(agency_db, "ivo") as ctx:
        (docx,) = render_letter(ctx, freeze["request"], tmp_path, formats=("docx",), language="de")
    assert f"Beweis {freeze['evidence']}" in _docx_text(docx)


def test_a_template_missing_a_section_or_using_an_unknown_field_names_it(
    agency_db, home, freeze, tmp_path
) -> None:
    folder = home / "templates" / "letters"
    folder.mkdir(parents=True)
    blocks = {s: f"{{% block {s} %}}x{{% endblock %}}" for s in SECTIONS}
    (folder / "letter.xa.j2").write_text("\n".join(v for k, v in blocks.items() if k != "measures"))
    blocks["facts"] = "{% block facts %}{{ request.motive }}{% endblock %}"
    (folder / "letter.xb.j2").write_text("\n".join(blocks.values()))
    with operation(agency_db, "ivo") as ctx:
        with pytest.raises(InputError, match="letter template letter.xa.j2 lacks the section.s. measures"):
            render_letter(ctx, freeze["request"], tmp_path, language="xa")
        with pytest.raises(InputError, match="section 'facts': field 'motive' is not available"):
            render_letter(ctx, freeze["request"], tmp_path, language="xb")
        with pytest.raises(InputError, match="no letter template for language 'zz'"):
            render_letter(ctx, freeze["request"], tmp_path, language="zz")


def test_a_request_lacking_required_contents_cannot_be_rendered(agency_db, freeze, tmp_path) -> None:
    with operation(agency_db, "ivo") as ctx:
        bare = requests.draft_request(
            ctx, freeze["case"], "disclosure", "Northwind Exchange", facts=" ", subject_ids=[]
        ).number
    with operation(agency_db, "ivo") as ctx:
        with pytest.raises(InputError, match="the letter needs request.facts"):
            render_letter(ctx, bare, tmp_path)


def test_a_letter_rendered_after_the_rules_changed_keeps_the_request_s_own_dates(
    agency_db, home, freeze, tmp_path
) -> None:
    _step(agency_db, "sue", freeze["request"], "approve")
    assert _step(agency_db, "lia", freeze["request"], "send").answer_due == date(2026, 1, 15)
    (home / "deadlines.yaml").write_text(  # the rules change after the request was sent
        yaml.safe_dump({"instruments": {"domestic-exchange-freeze": {"answer_days": 10}}})
    )
    with operation(agency_db, "lia", now=THURSDAY) as ctx:
        (docx,) = render_letter(ctx, freeze["request"], tmp_path, formats=("docx",), language="en")
    text = _docx_text(docx)
    assert "Please answer by 2026-01-15." in text
    assert "Please answer within" not in text  # no period that contradicts the date
