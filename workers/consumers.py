"""The Kafka consumers of the platform, each a named group with its own de-duplication."""

from __future__ import annotations

import asyncio
import uuid

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from events import topics
from events.consumer import ConsumerRunner, ConsumerSpec
from events.envelope import CloudEvent
from pap.resources import Resources
from services import diagnostics
from temporal.client import connect
from workers.deal_signals import FORWARDED, DealSignalForwarder


async def _confirm_echo(session: AsyncSession, event: CloudEvent) -> None:
    await diagnostics.mark_consumed(session, uuid.UUID(event.data["echo_id"]))


def consumer_specs(resources: Resources, temporal: Client) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            name="deal-signals",
            topics=(topics.DOCUMENTS, topics.PAYMENTS),
            handler=DealSignalForwarder(temporal),
            event_types=FORWARDED,
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
        )
        for spec in consumer_specs(resources, temporal)
    ]
    await asyncio.gather(*(runner.run(stop) for runner in runners))
