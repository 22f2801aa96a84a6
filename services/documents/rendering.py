"""Deal documents rendered from Jinja2 text templates to PDF with fpdf2, byte-for-byte deterministic.

Determinism matters: a retried generation activity must produce the same bytes and
SHA-256, so the PDF creation date comes from the terms, never from the clock.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path

from fpdf import FPDF
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from models.base import Money
from models.documents import DealTerms, DocumentKind

TEMPLATES = Path(__file__).parent / "templates"
PRODUCER = "Private Assets Platform documents"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    autoescape=select_autoescape(enabled_extensions=("html",), default=False),  # .txt goes into a PDF, not HTML
    keep_trailing_newline=True,
    trim_blocks=True,
)


def money(value: Money) -> str:
    """The exact amount the ledger moves: two decimals, or up to four when it has them (10.0005)."""
    exponent = value.amount.normalize().as_tuple().exponent
    places = min(max(-exponent, 2), 4) if isinstance(exponent, int) else 2
    return f"{value.currency} {value.amount:,.{places}f}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def latin1(text: str) -> str:
    """The core PDF fonts only cover Latin-1: fold accents away and replace anything else."""
    folded = unicodedata.normalize("NFKD", text)
    kept = "".join(ch for ch in folded if not unicodedata.combining(ch))
    kept = kept.replace("\u2014", "-").replace("\u2013", "-").replace("\u2019", "'").replace("\u201c", '"')
    return kept.replace("\u201d", '"').encode("latin-1", "replace").decode("latin-1")


def render_text(kind: DocumentKind, terms: DealTerms) -> str:
    return _env.get_template(f"{kind.value}.txt").render(t=terms, money=money)


def new_pdf(title: str, created_at: datetime) -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_title(latin1(title))
    pdf.set_producer(PRODUCER)
    pdf.set_creator(PRODUCER)
    pdf.set_creation_date(created_at)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(20, 20, 20)
    return pdf


@dataclass(frozen=True)
class _Style:
    font: str
    size: float
    line_height: float
    before: float = 0.0
    after: float = 0.0
    prefix: str = ""


_TITLE = _Style("B", 16, 9, after=3)
_HEADING = _Style("B", 12, 7, before=2)
_BULLET = _Style("", 10, 5.5, prefix="  -  ")
_BODY = _Style("", 10, 5.5)
_NOTE = _Style("I", 9, 5)
_PARAGRAPH_GAP = 3.0
_PT_PER_MM = 72 / 25.4
_CAP_HEIGHT = 0.35
"""Half of Helvetica's cap height (0.7 em): the baseline sits this far below a line's middle."""


def _style_of(line: str) -> tuple[_Style, str]:
    if line.startswith("# "):
        return _TITLE, line[2:]
    if line.startswith("## "):
        return _HEADING, line[3:]
    if line.startswith("- "):
        return _BULLET, line[2:]
    return _BODY, line


def wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """Greedy word wrap with the current font's metrics (long words are cut where they overflow)."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if pdf.get_string_width(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while pdf.get_string_width(word) > width:
            cut = next((i for i in range(len(word) - 1, 0, -1) if pdf.get_string_width(word[:i]) <= width), 1)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    lines.append(current)
    return lines


def _write_lines(pdf: FPDF, style: _Style, text: str) -> None:
    """Draw wrapped text line by line with `FPDF.text` (fpdf2's `multi_cell` cost ~10 ms per page)."""
    pdf.set_font("Helvetica", style.font, style.size)
    pdf.set_y(pdf.get_y() + style.before)
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for line in wrap(pdf, style.prefix + text, width):
        if pdf.get_y() + style.line_height > pdf.page_break_trigger:
            pdf.add_page()
        baseline = pdf.get_y() + style.line_height / 2 + style.size * _CAP_HEIGHT / _PT_PER_MM
        pdf.text(pdf.l_margin, baseline, line)
        pdf.set_y(pdf.get_y() + style.line_height)
    pdf.set_y(pdf.get_y() + style.after)


def write_markup(pdf: FPDF, text: str) -> None:
    """A tiny markup: `# ` title, `## ` heading, `- ` bullet, blank line = paragraph break."""
    for raw in text.splitlines():
        line = latin1(raw.rstrip())
        if line:
            _write_lines(pdf, *_style_of(line))
        else:
            pdf.set_y(pdf.get_y() + _PARAGRAPH_GAP)


def render_document(kind: DocumentKind, terms: DealTerms) -> bytes:
    """The PDF of one document kind for these terms, with signature blocks for both parties."""
    created_at = datetime.combine(terms.date, time(0, 0), tzinfo=UTC)
    pdf = new_pdf(f"{kind.value} {terms.deal_id}", created_at)
    pdf.add_page()
    write_markup(pdf, render_text(kind, terms))
    pdf.set_y(pdf.get_y() + 8)
    _write_lines(
        pdf,
        _NOTE,
        "Signed electronically through the Private Assets Platform; the signature certificate "
        "appended to the executed copy lists every signer, time, IP address and document hash.",
    )
    return bytes(pdf.output())


def page_count(data: bytes) -> int:
    """Pages in a PDF (pyHanko's reader, so no extra dependency)."""
    from io import BytesIO

    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(BytesIO(data))
    return int(reader.root["/Pages"]["/Count"])
