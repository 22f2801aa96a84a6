"""The platform's PAdES signature (baseline B-B) over executed documents, with a self-managed certificate.

In development and tests the signing key and a self-signed certificate are created
on first use under `{state_dir}/keys/documents-signing.pem`; production points the
same loader at a key file issued by a real CA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from asn1crypto import keys as asn1_keys  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

KEY_FILE_NAME = "documents-signing.pem"
SIGNATURE_FIELD = "PlatformSignature"
SIGNATURE_BYTES = 8192
"""Room reserved for the CMS signature (an ECDSA P-256 one is ~1.5 KiB; a CA chain fits too). Without
it pyHanko signs twice, once only to measure the size."""


@dataclass(frozen=True)
class PlatformSigningKey:
    certificate_pem: bytes
    private_key_pem: bytes

    @property
    def certificate(self) -> asn1_x509.Certificate:
        cert = x509.load_pem_x509_certificate(self.certificate_pem)
        return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _generate() -> PlatformSigningKey:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Private Assets Platform document signing"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Private Assets Platform"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return PlatformSigningKey(
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def _split(pem: bytes) -> PlatformSigningKey:
    begin_cert = pem.index(b"-----BEGIN CERTIFICATE-----")
    end_marker = b"-----END CERTIFICATE-----"
    end_cert = pem.index(end_marker, begin_cert) + len(end_marker)
    certificate = pem[begin_cert:end_cert] + b"\n"
    private_key = pem[:begin_cert] + pem[end_cert:]
    return PlatformSigningKey(certificate_pem=certificate, private_key_pem=private_key.strip() + b"\n")


def load_signing_key(keys_dir: Path) -> PlatformSigningKey:
    """The key + certificate from one PEM file in `keys_dir`, created (0600) on first use."""
    path = keys_dir / KEY_FILE_NAME
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        generated = _generate()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(generated.private_key_pem + generated.certificate_pem)
        try:
            os.link(tmp, path)  # first writer wins when two processes race
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return _split(path.read_bytes())


@functools.cache
def _signer(key: PlatformSigningKey) -> signers.SimpleSigner:
    """One signer per key and process (parsing the key and certificate each time showed in profiles)."""
    private = serialization.load_pem_private_key(key.private_key_pem, password=None)
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert = key.certificate
    return signers.SimpleSigner(
        signing_cert=cert,
        signing_key=asn1_keys.PrivateKeyInfo.load(der),
        cert_registry=SimpleCertificateStore.from_certs([cert]),  # type: ignore[no-untyped-call]
    )


def _sign(pdf: bytes, key: PlatformSigningKey, reason: str) -> bytes:
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    meta = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
        name="Private Assets Platform",
    )
    out = signers.sign_pdf(writer, meta, signer=_signer(key), bytes_reserved=SIGNATURE_BYTES)
    return bytes(out.getvalue())


async def pades_sign(pdf: bytes, key: PlatformSigningKey, *, reason: str) -> bytes:
    """A PAdES B-B signature by the platform over the whole PDF (CPU work kept off the event loop)."""
    return await asyncio.to_thread(_sign, pdf, key, reason)
