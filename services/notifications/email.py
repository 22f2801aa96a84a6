"""Email: Jinja2 text + HTML bodies, sent over SMTP with aiosmtplib (the sink in dev/tests, a relay in production)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr
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


def build_message(intent: Intent, recipient: Recipient, *, sender: str, delivery_id: uuid.UUID) -> Message:
    """A multipart/alternative message; the Message-ID derives from the delivery so a resend is recognisable.

    Built with the `email.mime` classes: the `EmailMessage` API's header registry cost twice as much
    per message, and a busy deal sends dozens.
    """
    text, html = render(intent, recipient)
    message = MIMEMultipart("alternative")
    message["From"] = sender
    message["To"] = formataddr((recipient.name, recipient.email))
    message["Subject"] = Header(intent.title, "utf-8").encode()
    message["Message-ID"] = f"<{delivery_id}@pap.local>"  # the same for a resend of this delivery
    message["X-PAP-Kind"] = intent.kind
    message.attach(MIMEText(text, "plain", "utf-8"))
    message.attach(MIMEText(html, "html", "utf-8"))
    return message


class SmtpMailer:
    """Sends messages over one reused SMTP connection (a new one per message cost more than the message).

    A connection idle for longer than `idle_seconds` is replaced before use, since servers
    drop idle clients; any failure drops the connection and propagates, so the caller's
    retry (the consumer redelivers the event) starts on a fresh one.
    """

    def __init__(self, host: str, port: int, sender: str, *, timeout: float = 10.0, idle_seconds: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout
        self.idle_seconds = idle_seconds
        self._client: aiosmtplib.SMTP | None = None
        self._last_used = 0.0
        self._lock = asyncio.Lock()

    async def send(self, message: Message) -> None:
        async with self._lock:
            client = await self._connection()
            try:
                await client.send_message(message)
            except BaseException:
                await self._drop()
                raise
            self._last_used = time.monotonic()

    async def _connection(self) -> aiosmtplib.SMTP:
        stale = time.monotonic() - self._last_used > self.idle_seconds
        if self._client is not None and (stale or not self._client.is_connected):
            await self._drop()
        if self._client is None:
            client = aiosmtplib.SMTP(
                hostname=self.host, port=self.port, timeout=self.timeout, start_tls=False, use_tls=False
            )
            await client.connect()
            self._client = client
        return self._client

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
