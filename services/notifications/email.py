"""Email: Jinja2 text + HTML bodies, sent over SMTP with aiosmtplib (the sink in dev/tests, a relay in production)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, TemplateNotFound, select_autoescape

from services.notifications.intents import Intent

TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str


def _template(name: str | None, ext: str) -> str:
    if name:
        try:
            _env.get_template(f"{name}.{ext}.j2")
            return f"{name}.{ext}.j2"
        except TemplateNotFound:
            pass
    return f"generic.{ext}.j2"


def render(intent: Intent, recipient: Recipient) -> tuple[str, str]:
    """(text, html) bodies of an intent for a recipient."""
    context = {"intent": intent, "recipient": recipient, "details": intent.details}
    text = _env.get_template(_template(intent.template, "txt")).render(context)
    html = _env.get_template(_template(intent.template, "html")).render(context)
    return text, html


def build_message(intent: Intent, recipient: Recipient, *, sender: str, delivery_id: uuid.UUID) -> EmailMessage:
    """A multipart/alternative message; the Message-ID derives from the delivery so a resend is recognisable."""
    text, html = render(intent, recipient)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((recipient.name, recipient.email))
    message["Subject"] = intent.title
    message["Message-ID"] = make_msgid(idstring=str(delivery_id), domain="pap.local")
    message["X-PAP-Kind"] = intent.kind
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


class SmtpMailer:
    """Sends one message per call over a short-lived SMTP connection."""

    def __init__(self, host: str, port: int, sender: str, *, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message, hostname=self.host, port=self.port, timeout=self.timeout, start_tls=False, use_tls=False
        )
