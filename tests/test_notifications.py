"""Notifications: events become in-app rows, emails (SMTP sink) and texts (sandbox SMS), once per user and channel."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from events.consumer import ConsumerRunner, ConsumerSpec
from events.envelope import CloudEvent
from events.kafka import create_producer
from models.notifications import Channel, Delivery
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services.notifications.dispatch import delivery_id
from tests.factories import TestUser, register_and_login
from tests.support import consumer_runner, eventually, mails, read_topic
from workers.consumers import notifications_spec


@pytest.fixture
def runner(sessions: SessionFactory, settings: Settings) -> ConsumerRunner:
    return consumer_runner(notifications_spec(sessions, settings), sessions, settings)


def order_created(user_id: uuid.UUID, *, quantity: int = 100) -> CloudEvent:
    order_id = uuid.uuid4()
    return CloudEvent(
        source="/tests/marketplace",
        type="marketplace.order.created",
        subject=str(order_id),
        data={
            "order_id": str(order_id),
            "user_id": str(user_id),
            "security_id": str(uuid.uuid4()),
            "company_id": str(uuid.uuid4()),
            "side": "buy",
            "quantity": quantity,
            "filled_quantity": 0,
            "remaining_quantity": quantity,
            "limit_price": {"amount": "12.5000", "currency": "USD"},
            "status": "open",
            "time_in_force": "gtc",
            "expires_at": None,
        },
    )


async def deliveries(sessions: SessionFactory, event_id: uuid.UUID, channel: str) -> int:
    async with transaction(sessions) as session:
        query = (
            select(func.count())
            .select_from(Delivery)
            .where(col(Delivery.event_id) == event_id, col(Delivery.channel) == channel)
        )
        return int((await session.execute(query)).scalar_one())


async def inbox(api: httpx.AsyncClient, user: TestUser, **params: Any) -> dict[str, Any]:
    response = await api.get("/v1/notifications", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_order_confirmation_email_reaches_the_smtp_sink_once(
    api: httpx.AsyncClient, runner: ConsumerRunner, sessions: SessionFactory, settings: Settings
) -> None:
    user = await register_and_login(api, full_name="Grace Hopper")
    event = order_created(user.id)
    assert await runner.handle_once(event) is True
    assert await runner.handle_once(event) is False  # redelivered: nothing again

    # Even a second consumer group handling the same event finds the sent delivery and sends nothing.
    again = consumer_runner(notifications_spec(sessions, settings), sessions, settings)
    again.spec = ConsumerSpec(f"replay-{uuid.uuid4().hex[:6]}", again.spec.topics, again.spec.handler)
    assert await again.handle_once(event) is True

    [message] = mails(settings, user.email, "order_created")
    assert message["Subject"] == "Order received: buy 100 shares at 12.5 USD"
    assert user.email in message["To"] and "Grace Hopper" in message["To"]
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert "Hello Grace Hopper" in text.get_content()
    assert event.data["order_id"] in text.get_content()
    assert "<h1" in html.get_content() and "Order confirmation" in html.get_content()
    assert await deliveries(sessions, event.id, "email") == 1
    # Any resend of this delivery (a crash before its row committed) carries the same Message-ID.
    assert message["Message-ID"] == f"<{delivery_id(event.id, user.id, Channel.EMAIL)}@pap.local>"

    page = await inbox(api, user)
    assert [n["kind"] for n in page["items"]].count("order_created") == 1


async def test_an_email_refused_for_one_party_still_notifies_the_other(
    api: httpx.AsyncClient, runner: ConsumerRunner, sessions: SessionFactory, settings: Settings
) -> None:
    """A name that cannot go into a mail header (stored before names were checked) fails that email for good;
    the event's other notifications are not rolled back or dead-lettered with it."""
    refused = await api.post(
        "/v1/auth/register",
        json={
            "email": f"m-{uuid.uuid4().hex[:8]}@example.com",
            "password": "Kestrel-Harbour-91!",
            "full_name": "M\r\nBcc: x@y.z",
        },
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "full_name"
    buyer, seller = await register_and_login(api, full_name="Bad Header"), await register_and_login(api)
    async with transaction(sessions) as session:
        await session.execute(
            text("UPDATE identity.user SET full_name = :n WHERE id = :u"), {"n": "Mallory\r\nBcc: x@y.z", "u": buyer.id}
        )
    quantity, price = 10, {"amount": "12.5000", "currency": "USD"}
    event = CloudEvent(
        source="/tests/marketplace",
        type="marketplace.trade.matched",
        subject=str(uuid.uuid4()),
        data={
            "trade_id": str(uuid.uuid4()),
            "deal_id": str(uuid.uuid4()),
            "quantity": quantity,
            "price": price,
            "buyer_id": str(buyer.id),
            "seller_id": str(seller.id),
        },
    )

    assert await runner.handle_once(event) is True

    assert len(mails(settings, seller.email, "trade_matched")) == 1
    assert mails(settings, buyer.email, "trade_matched") == []
    for user in (buyer, seller):
        assert [n["kind"] for n in (await inbox(api, user))["items"]].count("trade_matched") == 1
    async with transaction(sessions) as session:
        statuses = await session.execute(
            select(col(Delivery.user_id), col(Delivery.status), col(Delivery.detail)).where(
                col(Delivery.event_id) == event.id, col(Delivery.channel) == "email"
            )
        )
        by_user = {row[0]: (row[1], row[2]) for row in statuses.all()}
    assert by_user[seller.id][0] == "sent"
    assert by_user[buyer.id][0] == "failed" and "Header" in (by_user[buyer.id][1] or "")


async def test_email_turned_off_still_leaves_the_in_app_notification(
    api: httpx.AsyncClient, runner: ConsumerRunner, sessions: SessionFactory, settings: Settings
) -> None:
    user = await register_and_login(api)
    put = await api.put(
        "/v1/notifications/preferences", json={"preferences": {"orders": {"email": False}}}, headers=user.headers
    )
    assert put.status_code == 200, put.text
    assert put.json()["preferences"]["orders"] == {"email": False, "sms": False, "in_app": True}
    event = order_created(user.id)
    await runner.handle_once(event)
    assert mails(settings, user.email, "order_created") == []
    assert await deliveries(sessions, event.id, "email") == 0
    assert "order_created" in [n["kind"] for n in (await inbox(api, user))["items"]]


async def test_security_notices_cannot_be_turned_off(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    for channel in ("email", "in_app"):
        response = await api.put(
            "/v1/notifications/preferences", json={"preferences": {"security": {channel: False}}}, headers=user.headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("security-notices-locked")
    current = (await api.get("/v1/notifications/preferences", headers=user.headers)).json()
    assert current["preferences"]["security"]["email"] is True
    assert current["preferences"]["security"]["in_app"] is True


async def test_funding_instructions_go_to_the_buyer_by_sms_through_the_sandbox(
    api: httpx.AsyncClient, runner: ConsumerRunner, settings: Settings
) -> None:
    buyer, seller = await register_and_login(api), await register_and_login(api)
    phone = f"+1555{uuid.uuid4().int % 10**7:07d}"
    profile = {"kind": "individual", "name": "Buyer", "residence_country": "US", "phone": phone}
    assert (await api.put("/v1/profiles/me", json=profile, headers=buyer.headers)).status_code == 200
    prefs = {"preferences": {"payments": {"sms": True}}}
    assert (await api.put("/v1/notifications/preferences", json=prefs, headers=buyer.headers)).status_code == 200
    deal_id = uuid.uuid4()
    event = CloudEvent(
        source="/tests/deals",
        type="deals.stage.changed",
        subject=str(deal_id),
        data={
            "deal_id": str(deal_id),
            "stage": "awaiting_funding",
            "previous_stage": "awaiting_signatures",
            "buyer_id": str(buyer.id),
            "seller_id": str(seller.id),
            "quantity": 10,
            "price": {"amount": "5.00", "currency": "USD"},
            "next_actor": "buyer: fund the escrow",
            "deadline": "2026-12-10T00:00:00Z",
        },
    )
    await runner.handle_once(event)
    texts = (await api.get("/v1/sandbox/sms/messages", params={"to": phone})).json()["items"]
    assert [t["body"] for t in texts] == [f"PAP: Deal {str(deal_id)[:8]}: fund the escrow"]
    [funding] = mails(settings, buyer.email, "funding_instructions")
    assert "2026-12-10T00:00:00Z" in funding.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    [stage] = mails(settings, seller.email, "deal_stage_changed")
    assert "Next: buyer: fund the escrow." in stage.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


async def test_a_signature_request_email_links_to_the_deal_page(
    api: httpx.AsyncClient, runner: ConsumerRunner, settings: Settings
) -> None:
    signer = await register_and_login(api)
    deal_id, document_id = uuid.uuid4(), uuid.uuid4()
    event = CloudEvent(
        source="/tests/documents",
        type="documents.document.generated",
        subject=str(document_id),
        data={
            "document_id": str(document_id),
            "deal_id": str(deal_id),
            "kind": "stock_transfer_agreement",
            "signers": [{"user_id": str(signer.id), "role": "buyer"}],
        },
    )
    await runner.handle_once(event)
    [request] = mails(settings, signer.email, "signature_requested")
    text = request.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert f"Review and sign: {settings.public_url}/app/deals/{deal_id}" in text
    html = request.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert f'href="{settings.public_url}/app/deals/{deal_id}"' in html


async def test_inbox_is_own_newest_first_and_read_state_is_per_user(
    api: httpx.AsyncClient, runner: ConsumerRunner, token_for: Callable[..., dict[str, str]]
) -> None:
    user, other = await register_and_login(api), await register_and_login(api)
    # The running consumers turn each login into a notice; let it land first so it cannot be the newest.
    await eventually(
        lambda: inbox(api, user), lambda p: "new_login" in [n["kind"] for n in p["items"]], what="login notice"
    )
    first, second = order_created(user.id, quantity=1), order_created(user.id, quantity=2)
    await runner.handle_once(first)
    await runner.handle_once(second)
    await runner.handle_once(order_created(other.id))
    page = await inbox(api, user, limit=1)
    assert page["items"][0]["title"].startswith("Order received: buy 2 shares")
    assert page["next_cursor"] is not None
    older = await inbox(api, user, limit=1, cursor=page["next_cursor"])
    assert older["items"][0]["title"].startswith("Order received: buy 1 shares")
    unread_before = page["unread_count"]

    newest = page["items"][0]["id"]
    assert (await api.post(f"/v1/notifications/{newest}/read", headers=other.headers)).status_code == 404
    read = await api.post(f"/v1/notifications/{newest}/read", headers=user.headers)
    assert read.status_code == 200 and read.json()["read"] is True
    count = (await api.get("/v1/notifications/unread-count", headers=user.headers)).json()["unread_count"]
    assert count == unread_before - 1
    assert (await api.post("/v1/notifications/read-all", headers=user.headers)).status_code == 200
    assert (await api.get("/v1/notifications/unread-count", headers=user.headers)).json()["unread_count"] == 0
    assert (await inbox(api, other))["unread_count"] >= 1
    assert (await api.get("/v1/notifications")).status_code == 401


async def test_events_on_the_broker_notify_through_the_running_consumers(
    api: httpx.AsyncClient, sessions: SessionFactory, settings: Settings
) -> None:
    user = await register_and_login(api)
    # The login itself is a security event that travels outbox -> relay -> Kafka -> consumer.
    await eventually(
        lambda: inbox(api, user), lambda p: "new_login" in [n["kind"] for n in p["items"]], what="login notice"
    )

    duplicated, later = order_created(user.id, quantity=3), order_created(user.id, quantity=4)
    producer = create_producer(settings.require("kafka_bootstrap"))
    await producer.start()
    try:
        for event in (duplicated, duplicated, later):
            await producer.send_and_wait("pap.marketplace", event.to_bytes(), key=str(user.id).encode())
    finally:
        await producer.stop()
    await eventually(
        lambda: asyncio.to_thread(mails, settings, user.email, "order_created"),
        lambda m: len(m) == 2,
        what="two emails",
    )
    titles = [n["title"] for n in (await inbox(api, user))["items"] if n["kind"] == "order_created"]
    assert sorted(titles) == ["Order received: buy 3 shares at 12.5 USD", "Order received: buy 4 shares at 12.5 USD"]
    assert await deliveries(sessions, duplicated.id, "email") == 1


async def test_a_dead_lettered_event_is_replayed_by_the_ops_command(
    sessions: SessionFactory, settings: Settings
) -> None:
    bootstrap = settings.require("kafka_bootstrap")
    name = f"ops-{uuid.uuid4().hex[:8]}"
    event = CloudEvent(source="/tests", type="test.replayable", subject=name)
    state = {"broken": True, "handled": 0}

    async def handler(_: AsyncSession, incoming: CloudEvent) -> None:
        if incoming.subject != name:
            return
        if state["broken"]:
            raise RuntimeError("downstream unavailable")
        state["handled"] += 1

    spec = ConsumerSpec(name, ("pap.diagnostics",), handler, event_types=frozenset({"test.replayable"}))
    runner = consumer_runner(spec, sessions, settings, group_prefix=f"test-{name}", max_attempts=2, base_backoff=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        producer = create_producer(bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("pap.diagnostics", event.to_bytes(), key=name.encode())
        finally:
            await producer.stop()

        async def dead() -> list[CloudEvent]:
            return [e for _, e in await read_topic(bootstrap, "pap.dlq") if e.subject == name]

        await eventually(dead, lambda d: len(d) == 1, what="the event in pap.dlq")
        listed = await _pap(settings, "ops", "dlq", "list", "--consumer", name)
        assert str(event.id) in listed

        state["broken"] = False
        replayed = await _pap(settings, "ops", "dlq", "replay", "--consumer", name)
        assert "1 event(s) replayed" in replayed

        async def handled() -> int:
            return state["handled"]

        await eventually(handled, lambda n: n == 1, what="the replayed event handled")
    finally:
        stop.set()
        await task


async def _pap(settings: Settings, *args: str) -> str:
    env = {**os.environ, "PAP_KAFKA_BOOTSTRAP": settings.require("kafka_bootstrap"), "COLUMNS": "250"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pap", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    return out.decode()


def deal_event(type_: str, stage: str, buyer: TestUser, seller: TestUser, deal_id: uuid.UUID) -> CloudEvent:
    return CloudEvent(
        source="/tests/deals",
        type=type_,
        subject=str(deal_id),
        data={
            "deal_id": str(deal_id),
            "stage": stage,
            "previous_stage": "created",
            "buyer_id": str(buyer.id),
            "seller_id": str(seller.id),
            "quantity": 10,
            "price": {"amount": "5.00", "currency": "USD"},
        },
    )


async def test_platform_steps_show_in_the_app_only_and_a_closed_deal_is_announced_once(
    api: httpx.AsyncClient, runner: ConsumerRunner, sessions: SessionFactory, settings: Settings
) -> None:
    buyer, seller = await register_and_login(api), await register_and_login(api)
    deal_id = uuid.uuid4()
    step = deal_event("deals.stage.changed", "documents_generated", buyer, seller, deal_id)
    await runner.handle_once(step)
    assert await deliveries(sessions, step.id, "in_app") == 2
    assert await deliveries(sessions, step.id, "email") == 0

    closing = deal_event("deals.stage.changed", "closed", buyer, seller, deal_id)
    closed = deal_event("deals.closed", "closed", buyer, seller, deal_id)
    await runner.handle_once(closing)
    await runner.handle_once(closed)
    assert await deliveries(sessions, closing.id, "in_app") == 0
    assert await deliveries(sessions, closed.id, "email") == 2
    assert len(mails(settings, seller.email, "deal_closed")) == 1
    assert mails(settings, seller.email, "deal_stage_changed") == []
