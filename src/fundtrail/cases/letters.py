"""Letters for legal requests: Jinja2 text blocks rendered into DOCX (to edit) and PDF (to send).

A language is one template file, ``letter.<lang>.j2``: shipped ones live beside this module under
``letters/``, an agency's own (letterhead, wording) under ``HOME/templates/letters/`` and win. A
template defines one block per required section (:data:`SECTIONS`); inside a block, a line starting
with ``# `` is a heading, ``- `` a bullet, and blank lines separate paragraphs. A template lacking a
section, or using a field the letter does not have, is an InputError naming it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import jinja2

from fundtrail.cases.context import Context
from fundtrail.cases.models import LegalRequest
from fundtrail.cases.requests import deadline_book, get_request
from fundtrail.cases.users import agency
from fundtrail.domain.cases import format_amount
from fundtrail.domain.chains import CHAINS
from fundtrail.domain.deadlines import DeadlineRule, deadlines
from fundtrail.domain.requests import RequestType
from fundtrail.errors import InputError

SHIPPED = Path(__file__).resolve().parent / "letters"
SECTIONS = (
    "title",
    "header",
    "authority",
    "subject",
    "facts",
    "assets",
    "evidence",
    "measures",
    "time_limits",
    "closing",
)
"""The sections every letter has, in order: a template must define a block for each."""

FORMATS = ("docx", "pdf")


class MissingField(jinja2.UndefinedError):
    """A template used a field the letter's data does not have."""

    def __init__(self, name: str) -> None:
        self.field = name
        super().__init__(name)


class _Strict(jinja2.StrictUndefined):
    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise MissingField(str(self._undefined_name))

    __str__ = __iter__ = __len__ = __eq__ = __ne__ = __bool__ = __hash__ = __contains__ = (
        _fail_with_undefined_error
    )


def template_dirs(home: Path | None) -> list[Path]:
    """Where templates are looked up, the agency's first."""
    dirs = []
    if home is not None and (Path(home) / "templates" / "letters").is_dir():
        dirs.append(Path(home) / "templates" / "letters")
    dirs.append(SHIPPED)
    return dirs


def languages(home: Path | None = None) -> list[str]:
    """The languages letters can be written in (one template file each)."""
    found = set()
    for d in template_dirs(home):
        found |= {p.name[len("letter.") : -len(".j2")] for p in d.glob("letter.*.j2")}
    return sorted(found)


def _environment(home: Path | None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(home)]),
        undefined=_Strict,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=False,
        lstrip_blocks=True,
    )
    return env


def _require(data: dict[str, Any], req: LegalRequest) -> None:
    """Raise InputError naming the first required content the request lacks."""
    checks = [
        ("authority.name", data["authority"]["name"], "set the agency: fundtrail db agency --name ..."),
        ("request.recipient", data["request"]["recipient"], "draft the request with --to"),
        ("request.subject_matter", data["request"]["subject_matter"], "give --subject-matter"),
        ("request.facts", data["request"]["facts"], "give --facts, or a case summary"),
        (
            "assets",
            data["assets"],
            "add the addresses/accounts as case subjects, or name them with --subject",
        ),
        ("evidence", data["evidence"], "preserve the trace and draft with --evidence"),
    ]
    for name, value, hint in checks:
        if not value:
            raise InputError(f"request {req.number}: the letter needs {name}, which is empty ({hint})")


def _asset(subject: Any) -> dict[str, Any]:
    chain = CHAINS.get(subject.chain or "")
    amount = subject.amount
    display = None
    if amount is not None and chain is not None and (subject.asset in (None, "native")):
        display = f"{format_amount(amount, chain.decimals)} {chain.symbol}"
    elif amount is not None:
        display = f"{amount} base units of {subject.asset}"
    return {
        "kind": subject.kind,
        "chain": subject.chain,
        "value": subject.value,
        "label": subject.label,
        "role": subject.role,
        "asset": subject.asset or ("native" if subject.chain else None),
        "amount": None if amount is None else str(amount),
        "amount_display": display,
    }


def letter_data(ctx: Context, req: LegalRequest, language: str | None = None) -> dict[str, Any]:
    """Everything a letter may say, as plain values (instrument texts in ``language``)."""
    language = language or req.language
    settings = agency(ctx)
    book = deadline_book(ctx.home)
    rule = book.rule_for(RequestType(req.type), req.instrument, req.agreement)
    ev = req.evidence
    answer_days, hold_days = _period_wording(req, rule, book.holidays)
    return {
        "today": ctx.now.date().isoformat(),
        "language": language,
        "authority": {
            "name": settings.name if settings else None,
            "jurisdiction": settings.jurisdiction if settings else req.case.jurisdiction,
            "address": settings.address if settings else None,
            "email": settings.email if settings else None,
            "phone": settings.phone if settings else None,
        },
        "officer": {"name": req.author.display_name, "unit": req.author.unit, "email": req.author.email},
        "approver": (
            {"name": req.approved_by.display_name, "date": req.approved_at.date().isoformat()}
            if req.approved_by and req.approved_at
            else None
        ),
        "case": {
            "number": req.case.number,
            "title": req.case.title,
            "offence": req.case.offence,
            "severity": req.case.severity,
            "lead_agency": req.case.lead_agency,
        },
        "request": {
            "number": req.number,
            "type": req.type,
            "state": req.state,
            "recipient": req.recipient,
            "recipient_jurisdiction": req.recipient_jurisdiction,
            "recipient_contact": req.recipient_contact,
            "subject_matter": req.subject_matter,
            "facts": req.facts,
            "measures": req.measures,
        },
        "instrument": dict(zip(("title", "note"), rule.text(language), strict=True), key=rule.key),
        "assets": [_asset(s) for s in req.subjects],
        "evidence": (
            {
                "id": ev.id,
                "sha256": ev.tagmanifest_sha256,
                "trace_sha256": ev.trace_sha256,
                "date": ev.created_at.date().isoformat(),
                "key_id": ev.key_id,
            }
            if ev
            else None
        ),
        "limits": {
            "answer_due": req.answer_due.isoformat() if req.answer_due else None,
            "answer_days": answer_days,
            "business_days": rule.business_days,
            "hold_until": req.hold_until.isoformat() if req.hold_until else None,
            "hold_days": hold_days,
            "hold_business_days": rule.hold_business_days,
            "renewable": rule.renewable,
            "minimum_hold": rule.minimum_hold,
        },
    }


def _period_wording(req: LegalRequest, rule: DeadlineRule,
                    holidays: Iterable[date]) -> tuple[int | None, int | None]:
    """The answer and hold periods a letter may state beside the request's own dates.

    A request keeps the dates fixed when it was sent (and acknowledged). When the rules changed since,
    the current periods no longer lead to those dates: the letter then states the dates alone, never a
    period that contradicts them.
    """
    answer_days, hold_days = rule.answer_days, rule.hold_days
    if req.sent_at is not None:
        sent = req.sent_at.date()
        acknowledged = req.acknowledged_at.date() if req.acknowledged_at else None
        now = deadlines(rule, sent, acknowledged, holidays=holidays)
        if req.answer_due is not None and now.answer_due != req.answer_due:
            answer_days = None
        if req.hold_until is not None and now.hold_until != req.hold_until:
            hold_days = None
    return answer_days, hold_days


@dataclass(frozen=True)
class Block:
    """One piece of a rendered section: a heading, a paragraph or a bullet."""

    kind: str
    text: str


def parse_blocks(text: str) -> list[Block]:
    """A rendered section's text as headings, paragraphs and bullets."""
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("paragraph", " ".join(para)))
            para.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("# "):
            flush()
            blocks.append(Block("heading", line[2:].strip()))
        elif line.startswith("- "):
            flush()
            blocks.append(Block("bullet", line[2:].strip()))
        else:
            para.append(line)
    flush()
    return blocks


def render_sections(data: dict[str, Any], language: str, home: Path | None = None) -> dict[str, list[Block]]:
    """Render each section of the ``language`` template with ``data``."""
    name = f"letter.{language}.j2"
    env = _environment(home)
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound:
        raise InputError(
            f"no letter template for language {language!r} (known: {', '.join(languages(home))}); "
            f"add {name} under HOME/templates/letters"
        ) from None
    except jinja2.TemplateSyntaxError as error:
        raise InputError(f"letter template {name}, line {error.lineno}: {error.message}") from None
    missing = [s for s in SECTIONS if s not in template.blocks]
    if missing:
        raise InputError(
            f"letter template {name} lacks the section(s) {', '.join(missing)} "
            f"(each needs a {{% block NAME %}})"
        )
    context = template.new_context(data)
    out: dict[str, list[Block]] = {}
    for section in SECTIONS:
        try:
            text = "".join(template.blocks[section](context))
        except MissingField as error:
            raise InputError(
                f"letter template {name}, section {section!r}: field {error.field!r} is not "
                f"available to letters"
            ) from None
        except jinja2.UndefinedError as error:
            raise InputError(f"letter template {name}, section {section!r}: {error.message}") from None
        out[section] = parse_blocks(text)
    return out


def write_docx(sections: dict[str, list[Block]], path: Path) -> None:
    """Write the letter as DOCX (python-docx), to be edited."""
    from docx import Document
    from docx.shared import Pt

    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "Calibri"
    style.font.size = Pt(11)
    for section in SECTIONS:
        for block in sections[section]:
            if section == "title" and block.kind != "bullet":
                doc.add_heading(block.text, level=0 if block.kind == "heading" else 1)
            elif block.kind == "heading":
                doc.add_heading(block.text, level=2)
            elif block.kind == "bullet":
                doc.add_paragraph(block.text, style="List Bullet")
            else:
                doc.add_paragraph(block.text)
    doc.core_properties.title = " ".join(b.text for b in sections["title"])[:250]
    doc.save(str(path))


def _pdf_font() -> tuple[str, str]:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for folder in (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu")):
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont("DejaVuSans", str(regular)))
                pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(bold)))
            return "DejaVuSans", "DejaVuSans-Bold"
    return "Helvetica", "Helvetica-Bold"


def write_pdf(sections: dict[str, list[Block]], path: Path, *, title: str = "", author: str = "") -> None:
    """Write the letter as PDF (reportlab), to be sent."""
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import ListFlowable, ListItem, Paragraph, SimpleDocTemplate, Spacer

    regular, bold = _pdf_font()
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontName=regular, fontSize=10.5, leading=14)
    h1 = ParagraphStyle("h1", parent=base["Title"], fontName=bold, fontSize=15, leading=19)
    h2 = ParagraphStyle("h2", parent=base["Heading2"], fontName=bold, fontSize=12, leading=15, spaceBefore=8)
    story: list[Any] = []
    for section in SECTIONS:
        bullets: list[Any] = []
        for block in sections[section] + [Block("end", "")]:
            if block.kind == "bullet":
                bullets.append(ListItem(Paragraph(escape(block.text), body), leftIndent=12))
                continue
            if bullets:
                story.append(ListFlowable(bullets, bulletType="bullet", start="•", leftIndent=12))
                bullets = []
            if block.kind == "end":
                continue
            style = h1 if section == "title" else (h2 if block.kind == "heading" else body)
            story.append(Paragraph(escape(block.text), style))
        story.append(Spacer(1, 3 * mm))
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=22 * mm,
        rightMargin=22 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        title=title,
        author=author,
        invariant=1,
    )
    doc.build(story)


def render_letter(
    ctx: Context, number: str, out: Path, *, formats: tuple[str, ...] = FORMATS, language: str | None = None
) -> list[Path]:
    """Render a request's letter into ``out`` as DOCX and/or PDF; audited with the files' hashes."""
    req = get_request(ctx, number)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise InputError(f"unknown letter format {unknown[0] if unknown else ''!r}; use docx and/or pdf")
    lang = (language or req.language).lower()
    data = letter_data(ctx, req, lang)
    _require(data, req)
    sections = render_sections(data, lang, ctx.home)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out / f"{req.number}.{lang}.{fmt}"
        if fmt == "docx":
            write_docx(sections, path)
        else:
            write_pdf(sections, path, title=f"{req.number}", author=data["authority"]["name"] or "")
        written.append(path)
    ctx.audit(
        "request.render",
        "request",
        req.number,
        case=req.case.number,
        details={
            "language": lang,
            "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in written},
        },
    )
    return written


def render_text(sections: dict[str, list[Block]]) -> str:
    """The letter as plain text (for previews and tests)."""
    lines = []
    for section in SECTIONS:
        for b in sections[section]:
            lines.append(("• " if b.kind == "bullet" else "") + b.text)
        lines.append("")
    return "\n".join(lines)
