"""The documents' word wrap: every line fits the page and no word is lost (no database needed)."""

from __future__ import annotations

import datetime as dt

from fpdf import FPDF
from hypothesis import given, settings
from hypothesis import strategies as st

from services.documents.rendering import new_pdf, wrap

WIDTH = 170.0  # A4 less the 20 mm margins


def _pdf() -> FPDF:
    pdf = new_pdf("wrap", dt.datetime(2026, 11, 27, tzinfo=dt.UTC))
    pdf.add_page()
    pdf.set_font("Helvetica", "", 10)
    return pdf


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789.,()$-", min_size=1, max_size=30), min_size=1
    )
)
def test_wrapped_lines_fit_and_keep_every_word_in_order(words: list[str]) -> None:
    pdf = _pdf()
    lines = wrap(pdf, " ".join(words), WIDTH)
    assert all(pdf.get_string_width(line) <= WIDTH for line in lines)
    assert " ".join(lines).split(" ") == words  # short words: only spaces become line breaks


def test_a_word_longer_than_the_line_is_cut_into_pieces_that_fit() -> None:
    pdf = _pdf()
    word = "W" * 300
    lines = wrap(pdf, f"start {word} end", WIDTH)
    assert lines[0] == "start" and lines[-1].endswith(" end")
    assert "".join(lines[1:])[: len(word)] == word
    assert all(pdf.get_string_width(line) <= WIDTH for line in lines)
    assert len(lines) >= 4
