"""The signature certificate page appended to an executed document.

The page is added as an incremental update, so the original document's bytes (and
their SHA-256) remain a byte-exact prefix of the executed file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from io import BytesIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from services.documents.rendering import new_pdf, write_markup


@dataclass(frozen=True)
class CertificateSigner:
    name: str
    role: str
    user_id: str
    signature_name: str
    signed_at: datetime
    ip: str | None


@dataclass(frozen=True)
class CertificateEvent:
    kind: str
    at: datetime
    actor: str
    ip: str | None
    user_agent: str | None
    document_sha256: str


def _at(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def certificate_text(
    *,
    document_id: str,
    kind: str,
    deal_id: str,
    sha256: str,
    signers: list[CertificateSigner],
    events: list[CertificateEvent],
) -> str:
    lines = [
        "# Signature certificate",
        f"Document: {kind} ({document_id})",
        f"Deal: {deal_id}",
        f"SHA-256 of the signed original: {sha256}",
        "",
        "## Signers",
    ]
    for s in signers:
        lines.append(f'- {_one_line(s.name)} ({s.role}, {s.user_id}) signed as "{_one_line(s.signature_name)}"')
        lines.append(f"- at {_at(s.signed_at)} from IP {s.ip or 'unknown'}")
    lines += ["", "## Audit trail"]
    for e in events:
        lines.append(f"- {_at(e.at)} {e.kind} by {e.actor} from {e.ip or '-'} ({_one_line(e.user_agent or '-')[:60]})")
        lines.append(f"- document SHA-256 at the time: {e.document_sha256}")
    lines += [
        "",
        "The executed document carries a PAdES signature of the Private Assets Platform that seals "
        "these pages; any later change invalidates it.",
    ]
    return "\n".join(lines)


def render_certificate(text: str, created_at: datetime) -> bytes:
    pdf = new_pdf("Signature certificate", created_at)
    pdf.add_page()
    write_markup(pdf, text)
    return bytes(pdf.output())


def _dict(entries: dict[generic.NameObject, generic.PdfObject]) -> generic.DictionaryObject:
    return generic.DictionaryObject(entries)  # type: ignore[no-untyped-call]


def append_pages(original: bytes, extra: bytes) -> bytes:
    """`original` plus every page of `extra`, appended in an incremental update."""
    writer = IncrementalPdfFileWriter(BytesIO(original))
    source = PdfFileReader(BytesIO(extra))
    count = int(source.root["/Pages"]["/Count"])
    for index in range(count):
        xobject = writer.import_page_as_xobject(source, page_ix=index)
        media_box = source.root["/Pages"]["/Kids"][index].get_object().get("/MediaBox")
        if media_box is None:
            media_box = generic.ArrayObject(map(generic.NumberObject, (0, 0, 595, 842)))
        content = generic.StreamObject(stream_data=b"q /Cert Do Q")
        page = generic.DictionaryObject(  # type: ignore[no-untyped-call]
            {
                pdf_name("/Type"): pdf_name("/Page"),
                pdf_name("/MediaBox"): generic.ArrayObject(list(media_box)),
                pdf_name("/Resources"): _dict({pdf_name("/XObject"): _dict({pdf_name("/Cert"): xobject})}),
                pdf_name("/Contents"): writer.add_object(content),
            }
        )
        writer.insert_page(page)  # type: ignore[no-untyped-call]
    out = BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()


def _one_line(text: str) -> str:
    """Text people typed, on one line: nothing they send can start a line of the certificate."""
    return " ".join(text.split())
