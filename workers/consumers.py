"""The Kafka consumers of the platform, each a named group with its own de-duplication, and housekeeping."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from events import topics
from events.consumer import ConsumerRunner, ConsumerSpec
from events.envelope import CloudEvent
from pap.db import SessionFactory
from pap.resources import Resources
from pap.settings import Settings
from services import diagnostics
from services.identity.tokens import KeyRing
from services.notifications import EmailLinks, HttpSmsProvider, Notifier, SmtpMailer
from services.pricing import HANDLED_TYPES, PricingIngest
from temporal.client import connect
from workers.bid_eligibility import INELIGIBILITY_EVENTS, IneligibleBidCanceller
from workers.deal_signals import FORWARDED, DealSignalForwarder
from workers.deal_workflows import DEAL_CREATED, DealWorkflowStarter
from workers.housekeeping import Housekeeper, Retention
from workers.order_workflows import ORDER_EVENTS, OrderWorkflowBackstop
from workers.transfer_minimum import POLICY_EVENTS, BelowMinimumCanceller


async def _confirm_echo(session: AsyncSession, event: CloudEvent) -> None:
    await diagnostics.mark_consumed(session, uuid.UUID(event.data["echo_id"]))


NOTIFICATION_TOPICS = (
    topics.MARKETPLACE,
    topics.DEALS,
    topics.DOCUMENTS,
    topics.PAYMENTS,
    topics.IDENTITY,
    topics.PROFILES,
)

SILENT_TYPES = frozenset({"marketplace.book.changed"})
"""The busiest event no one is told about (one per order change): skipped before any database work."""


def sms_provider(settings: Settings) -> HttpSmsProvider:
    """The configured provider (`PAP_SMS_PROVIDER_URL`, required in production); else our API's sandbox."""
    url = settings.sms_provider_url or f"http://{settings.api_host}:{settings.api_port}/v1/sandbox/sms"
    return HttpSmsProvider(url)


def notifications_spec(sessions: SessionFactory, settings: Settings) -> ConsumerSpec:
    mailer = SmtpMailer(settings.smtp_host, settings.smtp_port, settings.smtp_sender)
    keyring = KeyRing.load(settings.state_dir / "keys", settings.jwt_private_key_file)
    notifier = Notifier(sessions, mailer, sms_provider(settings), EmailLinks(keyring, settings.public_url))
    return ConsumerSpec(
        name="notifications", topics=NOTIFICATION_TOPICS, handler=notifier.handle, ignored_types=SILENT_TYPES
    )


def pricing_spec(redis: Redis | None) -> ConsumerSpec:
    return ConsumerSpec(
        name="pricing",
        topics=(topics.MARKETPLACE, topics.DEALS, topics.COMPANIES),
        handler=PricingIngest(redis).handle,
        event_types=HANDLED_TYPES,
    )


def consumer_specs(resources: Resources, temporal: Client) -> list[ConsumerSpec]:
    return [
        notifications_spec(resources.sessions, resources.settings),
        pricing_spec(resources.redis),
        ConsumerSpec(
            name="deal-signals",
            topics=(topics.DOCUMENTS, topics.PAYMENTS),
            handler=DealSignalForwarder(temporal),
            event_types=FORWARDED,
            delay_seconds=resources.settings.workflow_backstop_delay_seconds,
        ),
        ConsumerSpec(
            name="order-workflows",
            topics=(topics.MARKETPLACE,),
            handler=OrderWorkflowBackstop(temporal, resources.redis, resources.settings.task_queue),
            event_types=ORDER_EVENTS,
            delay_seconds=resources.settings.workflow_backstop_delay_seconds,
        ),
        ConsumerSpec(
            name="deal-workflows",
            topics=(topics.DEALS,),
            handler=DealWorkflowStarter(temporal, resources.settings.task_queue),
            event_types=frozenset({DEAL_CREATED}),
            delay_seconds=resources.settings.workflow_backstop_delay_seconds,
        ),
        ConsumerSpec(
            name="bid-eligibility",
            topics=(topics.PROFILES,),
            handler=IneligibleBidCanceller(temporal, resources.settings.task_queue),
            event_types=INELIGIBILITY_EVENTS,
        ),
        ConsumerSpec(
            name="transfer-minimum",
            topics=(topics.COMPANIES,),
            handler=BelowMinimumCanceller(temporal, resources.settings.task_queue),
            event_types=POLICY_EVENTS,
        ),
        ConsumerSpec(
            name="diagnostics",
            topics=(topics.DIAGNOSTICS,),
            handler=_confirm_echo,
            event_types=frozenset({diagnostics.echo.ECHO_PROCESSED}),
        ),
    ]


async def run_consumers(resources: Resources, stop: asyncio.Event) -> None:
    settings = resources.settings
    bootstrap = settings.require("kafka_bootstrap")
    temporal = await connect(settings.require("temporal_address"), settings.temporal_namespace)
    runners = [
        ConsumerRunner(
            spec,
            resources.sessions,
            bootstrap,
            group_prefix=settings.consumer_group_prefix,
            max_attempts=settings.consumer_max_attempts,
            max_backoff=settings.consumer_max_backoff_seconds,
            session_timeout_ms=settings.consumer_session_timeout_ms,
        )
        for spec in consumer_specs(resources, temporal)
    ]
    housekeeper = Housekeeper(
        resources.sessions,
        Retention.from_settings(settings),
        interval=settings.housekeeping_interval_seconds,
        batch_size=settings.housekeeping_batch_size,
    )
    await asyncio.gather(*(runner.run(stop) for runner in runners), housekeeper.run(stop))
