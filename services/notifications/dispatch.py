"""From intents to deliveries: preferences decide the channels; each channel is sent at most once per event and user.

In-app rows are written in the consumer's transaction (rolled back with it on a
failure). Email and SMS leave the building, so each is claimed in its own short
transaction: the `(event_id, user_id, channel)` delivery row is inserted and
locked, and sent only while still `pending`; once committed as `sent`, a retried
or redelivered event finds it and sends nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

import structlog
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from events.envelope import CloudEvent
from events.failures import is_transient
from models.base import utcnow
from models.notifications import Category, Channel, Delivery, DeliveryStatus, Notification
from pap.db import SessionFactory, insert_unless_conflict, transaction
from services.errors import NotFound
from services.identity import get_user
from services.identity.tokens import KeyRing
from services.identity.trail import PASSWORD_RESET_REQUESTED
from services.notifications.email import Recipient, SmtpMailer, build_message
from services.notifications.handlers import intents_for
from services.notifications.intents import Intent, as_uuid
from services.notifications.preferences import effective_preferences, sms_phone
from services.notifications.sms import SmsProvider

log = structlog.get_logger(__name__)

Send = Callable[[uuid.UUID], Awaitable[str | None]]


@dataclass(frozen=True)
class EmailLinks:
    """The links emails carry: app pages (an intent's action path) and password-reset links, minted here as
    the email goes out, so the reset token is never stored or published."""

    keyring: KeyRing
    base_url: str

    def absolute(self, url: str) -> str:
        return f"{self.base_url}{url}" if url.startswith("/") else url

    def password_reset(self, reset_id: uuid.UUID, user_id: uuid.UUID, expires_at: datetime) -> str:
        token = self.keyring.issue_password_reset(reset_id, user_id, expires_at)
        return self.absolute(f"/app/password-reset/confirm?token={token}")


class Notifier:
    """The notifications consumer's handler: `await notifier.handle(session, event)`."""

    def __init__(self, sessions: SessionFactory, mailer: SmtpMailer, sms: SmsProvider, links: EmailLinks) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.sms = sms
        self.links = links

    async def handle(self, session: AsyncSession, event: CloudEvent) -> None:
        if event.type == PASSWORD_RESET_REQUESTED:
            await self._send_reset_link(session, event)
            return
        for intent in await intents_for(session, event):
            await self.notify(session, event.id, intent)

    async def notify(self, session: AsyncSession, event_id: uuid.UUID, intent: Intent) -> None:
        choices = (await effective_preferences(session, intent.user_id))[intent.category]
        if choices[Channel.IN_APP]:
            await self._in_app(session, event_id, intent)
        recipient = await _recipient(session, intent.user_id)
        if choices[Channel.EMAIL] and intent.email:
            await self._email(event_id, intent, recipient)
        if choices[Channel.SMS]:
            phone = await sms_phone(session, intent.user_id) if recipient else None

            async def send_sms(delivery_id: uuid.UUID) -> str | None:
                assert phone is not None
                return await self.sms.send(phone, f"PAP: {intent.title}", idempotency_key=f"sms-{delivery_id}")

            await self._deliver(event_id, intent, Channel.SMS, phone, send_sms)

    async def _email(self, event_id: uuid.UUID, intent: Intent, recipient: Recipient | None) -> None:
        if intent.action is not None:
            intent = replace(intent, action=(intent.action[0], self.links.absolute(intent.action[1])))

        async def send_email(delivery_id: uuid.UUID) -> str | None:
            assert recipient is not None
            message = build_message(intent, recipient, sender=self.mailer.sender, delivery_id=delivery_id)
            await self.mailer.send(message)
            return str(message["Message-ID"])

        await self._deliver(event_id, intent, Channel.EMAIL, recipient.email if recipient else None, send_email)

    async def _send_reset_link(self, session: AsyncSession, event: CloudEvent) -> None:
        """By email only, whatever the preferences (it is how a locked-out user gets back in); nothing in the app."""
        d = event.data
        reset_id, user_id = as_uuid(d.get("reset_id")), as_uuid(d.get("user_id"))
        try:
            expires_at = datetime.fromisoformat(str(d.get("expires_at")))
        except ValueError:
            return
        if reset_id is None or user_id is None:
            return
        intent = Intent(
            user_id,
            Category.SECURITY,
            "password_reset_link",
            "Reset your password",
            "Someone, we hope you, asked to reset the password of your account. "
            "The link below works once, for 30 minutes.",
            details=[("Asked from", str(d.get("ip") or "unknown")), ("Link valid until", expires_at.isoformat())],
            template="password_reset",
            action=("Choose a new password", self.links.password_reset(reset_id, user_id, expires_at)),
        )
        await self._email(event.id, intent, await _recipient(session, user_id))

    async def _in_app(self, session: AsyncSession, event_id: uuid.UUID, intent: Intent) -> None:
        now = utcnow()
        await insert_unless_conflict(
            session,
            Notification,
            {
                "id": uuid.uuid4(),
                "user_id": intent.user_id,
                "event_id": event_id,
                "kind": intent.kind,
                "category": intent.category.value,
                "title": intent.title,
                "body": intent.body,
                "created_at": now,
            },
            constraint="uq_notification_event_id_user_id",
        )
        await _insert_delivery(
            session, event_id, intent, Channel.IN_APP, DeliveryStatus.SENT, sent_at=now, created_at=now
        )

    async def _deliver(
        self, event_id: uuid.UUID, intent: Intent, channel: Channel, address: str | None, send: Send
    ) -> None:
        async with transaction(self.sessions) as session:
            await _insert_delivery(session, event_id, intent, channel, DeliveryStatus.PENDING, address=address)
            delivery = (
                await session.exec(
                    select(Delivery)
                    .where(
                        col(Delivery.event_id) == event_id,
                        col(Delivery.user_id) == intent.user_id,
                        col(Delivery.channel) == channel.value,
                    )
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            ).one()
            if delivery.status != DeliveryStatus.PENDING:
                return  # already sent (or skipped) by an earlier attempt
            if address is None:
                delivery.status = DeliveryStatus.SKIPPED.value
                delivery.detail = f"no {channel.value} address"
            else:
                try:
                    delivery.provider_ref = await send(delivery.id)
                except Exception as error:
                    if is_transient(error):
                        raise  # the consumer retries the event; this delivery is still pending
                    delivery.status = DeliveryStatus.FAILED.value  # one recipient's refusal never holds up the rest
                    delivery.detail = f"{type(error).__name__}: {error}"[:1000]
                    log.warning("notification refused", channel=channel.value, kind=intent.kind, error=delivery.detail)
                else:
                    delivery.status = DeliveryStatus.SENT.value
                    delivery.sent_at = utcnow()
            session.add(delivery)
            log.info("notification delivered", channel=channel.value, kind=intent.kind, status=delivery.status)


DELIVERY_NAMESPACE = uuid.UUID("5b0f4c52-8f3e-4a57-9d8e-2f7c1a6d3e90")


def delivery_id(event_id: uuid.UUID, user_id: uuid.UUID, channel: Channel) -> uuid.UUID:
    """The same id for every attempt at one delivery: a resend after a crash carries the same
    Message-ID and SMS idempotency key, so the mail server and the SMS provider see a duplicate."""
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}:{user_id}:{channel.value}")


async def _insert_delivery(
    session: AsyncSession,
    event_id: uuid.UUID,
    intent: Intent,
    channel: Channel,
    status: DeliveryStatus,
    **columns: object,
) -> None:
    """The `(event, user, channel)` delivery row, unless an earlier attempt wrote it."""
    row = {
        "id": delivery_id(event_id, intent.user_id, channel),
        "event_id": event_id,
        "user_id": intent.user_id,
        "channel": channel.value,
        "kind": intent.kind,
        "status": status.value,
        "created_at": utcnow(),
        **columns,
    }
    await insert_unless_conflict(session, Delivery, row, constraint="uq_delivery_event_id_user_id_channel")


async def _recipient(session: AsyncSession, user_id: uuid.UUID) -> Recipient | None:
    """Email and name from the identity context; None for a user it does not know."""
    try:
        user = await get_user(session, user_id)
    except NotFound:
        return None
    return Recipient(email=user.email, name=user.full_name or user.email)
