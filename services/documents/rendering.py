"""Deal documents rendered from Jinja2 text templates to PDF with fpdf2, byte-for-byte deterministic.

Determinism matters: a retried generation activity must produce the same bytes and
SHA-256, so the PDF creation date comes from the terms, never from the clock.
"""

from __future__ import annotations

import hashlib
import unicodedata
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
    return f"{value.currency} {value.amount:,.2f}"


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


def write_markup(pdf: FPDF, text: str) -> None:
    """A tiny markup: `# ` title, `## ` heading, `- ` bullet, blank line = paragraph break."""
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for raw in text.splitlines():
        line = latin1(raw.rstrip())
        pdf.set_x(pdf.l_margin)
        if line.startswith("# "):
            pdf.set_font("Helvetica", "B", 16)
            pdf.multi_cell(width, 9, line[2:], align="L")
            pdf.ln(3)
        elif line.startswith("## "):
            pdf.ln(2)
            pdf.set_font("Helvetica", "B", 12)
            pdf.multi_cell(width, 7, line[3:], align="L")
        elif line.startswith("- "):
            pdf.set_font("Helvetica", "", 10)
            pdf.multi_cell(width, 5.5, "  -  " + line[2:], align="L")
        elif not line:
            pdf.ln(3)
        else:
            pdf.set_font("Helvetica", "", 10)
            pdf.multi_cell(width, 5.5, line, align="L")


def render_document(kind: DocumentKind, terms: DealTerms) -> bytes:
    """The PDF of one document kind for these terms, with signature blocks for both parties."""
    created_at = datetime.combine(terms.date, time(0, 0), tzinfo=UTC)
    pdf = new_pdf(f"{kind.value} {terms.deal_id}", created_at)
    pdf.add_page()
    write_markup(pdf, render_text(kind, terms))
    pdf.ln(8)
    pdf.set_font("Helvetica", "I", 9)
    pdf.multi_cell(
        pdf.w - pdf.l_margin - pdf.r_margin,
        5,
        "Signed electronically through the Private Assets Platform; the signature certificate "
        "appended to the executed copy lists every signer, time, IP address and document hash.",
        align="L",
    )
    return bytes(pdf.output())


def page_count(data: bytes) -> int:
    """Pages in a PDF (pyHanko's reader, so no extra dependency)."""
    from io import BytesIO

    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(BytesIO(data))
    return int(reader.root["/Pages"]["/Count"])
