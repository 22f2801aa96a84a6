"""Long polling `GET /v1/deals/{id}` on the real stack: ETags, 304s, `Prefer: wait` woken by NOTIFY on commit.

Changes are made while a long poll is provably waiting (the API's
`pap_deal_long_polls_waiting` gauge says so), and the response must come back
well before its wait ends: only a notification can have woken it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from api import etags, prefer
from api.deal_changes import APPLICATION_NAME
from models.base import Money
from models.deals import DealStage, StageChange
from pap.db import SessionFactory, transaction
from pap.pg_notify import Listener, asyncpg_dsn
from pap.settings import Settings
from services import deals, payments
from services.deals.changes import CHANNEL, announce
from services.identity.permissions import Role
from tests.deal_support import Parties, TokenFor, brokered_deal, deal_request, parties
from tests.support import eventually

WAIT = 20
PROMPT = 5.0
"""A woken long poll answers within this many seconds: far below WAIT, so no timeout can pass for a wake-up."""


@pytest.fixture(scope="module")
async def people(api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor) -> Parties:
    return await parties(api, sessions, token_for)


@pytest.fixture
async def deal_id(sessions: SessionFactory, people: Parties) -> uuid.UUID:
    """A deal row whose workflow is not started: it changes only when a test changes it."""
    return (await brokered_deal(sessions, people, quantity=1)).deal_id


async def move(sessions: SessionFactory, deal_id: uuid.UUID, stage: DealStage) -> None:
    """A workflow step, projected exactly as the deal activities do it."""
    change = StageChange(
        deal_id=deal_id, event_key=f"test:{uuid.uuid4()}", stage=stage, actor="test", detail="moved by the test"
    )
    async with transaction(sessions) as session:
        assert await deals.record_stage(session, change)


async def hold(sessions: SessionFactory, deal_id: uuid.UUID, _stage: DealStage) -> None:
    """A compliance hold mirrored into the projection (the other writer of the deal row)."""
    async with transaction(sessions) as session:
        await deals.set_on_hold(session, deal_id, True)


async def waiting_polls(api: httpx.AsyncClient) -> float:
    for line in (await api.get("/metrics")).text.splitlines():
        if line.startswith("pap_deal_long_polls_waiting "):
            return float(line.split()[1])
    return 0.0


async def until_waiting(api: httpx.AsyncClient, count: int = 1) -> None:
    await eventually(lambda: waiting_polls(api), lambda n: n >= count, timeout=15, what=f"{count} waiting long poll")


async def timed_get(api: httpx.AsyncClient, path: str, headers: dict[str, str]) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = await api.get(path, headers=headers)
    return response, time.monotonic() - began


async def test_the_deal_carries_an_etag_and_an_unchanged_deal_answers_304(
    api: httpx.AsyncClient, people: Parties, deal_id: uuid.UUID
) -> None:
    first = await api.get(f"/v1/deals/{deal_id}", headers=people.manager)
    assert first.status_code == 200, first.text
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    assert first.json()["stage"] == "created"
    assert "Preference-Applied" not in first.headers

    again = await api.get(f"/v1/deals/{deal_id}", headers=people.seller.headers)
    assert again.headers["ETag"] == etag  # the same representation for every viewer

    for known in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        unchanged = await api.get(f"/v1/deals/{deal_id}", headers=people.manager | {"If-None-Match": known})
        assert unchanged.status_code == 304, known
        assert unchanged.content == b""
        assert unchanged.headers["ETag"] == etag

    stale = await api.get(f"/v1/deals/{deal_id}", headers=people.manager | {"If-None-Match": '"stale"'})
    assert stale.status_code == 200
    assert stale.json() == first.json()


async def expect_payment(sessions: SessionFactory, deal_id: uuid.UUID, _stage: DealStage) -> None:
    """Funding instructions: the deal's payments (part of its body, the buyer's own) change, its stage does not."""
    async with transaction(sessions) as session:
        await payments.create_funding_instructions(
            session,
            deal_id=deal_id,
            buyer_id=(await deals.get_deal(session, deal_id)).buyer_id,
            amount=Money(amount=Decimal("20.00"), currency="USD"),
            reference=f"test-{deal_id}",
        )


@pytest.mark.parametrize(
    "change", [move, hold, expect_payment], ids=["record_stage", "set_on_hold", "funding_instructions"]
)
async def test_a_long_poll_answers_as_soon_as_the_deal_changes(
    api: httpx.AsyncClient, sessions: SessionFactory, people: Parties, deal_id: uuid.UUID, change: Any
) -> None:
    first = await api.get(f"/v1/deals/{deal_id}", headers=people.buyer.headers)
    etag = first.headers["ETag"]
    headers = people.buyer.headers | {"If-None-Match": etag, "Prefer": f"wait={WAIT}"}
    poll = asyncio.create_task(timed_get(api, f"/v1/deals/{deal_id}", headers))
    await until_waiting(api)
    assert not poll.done()

    changed_at = time.monotonic()
    await change(sessions, deal_id, DealStage.PARTICIPANTS_CONFIRMED)
    response, _ = await poll
    answered_after = time.monotonic() - changed_at

    assert answered_after < PROMPT, f"the long poll answered {answered_after:.1f}s after the change"
    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == f"wait={WAIT}"
    assert response.headers["ETag"] != etag
    latest = await api.get(f"/v1/deals/{deal_id}", headers=people.buyer.headers)
    assert response.json() == latest.json()
    assert response.headers["ETag"] == latest.headers["ETag"]


async def test_a_long_poll_on_an_unchanged_deal_answers_304_when_the_wait_ends(
    api: httpx.AsyncClient, people: Parties, deal_id: uuid.UUID
) -> None:
    etag = (await api.get(f"/v1/deals/{deal_id}", headers=people.seller.headers)).headers["ETag"]
    headers = people.seller.headers | {"If-None-Match": etag, "Prefer": "respond-async, wait=1; x=y"}
    response, took = await timed_get(api, f"/v1/deals/{deal_id}", headers)
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Preference-Applied"] == "wait=1"
    assert 0.9 <= took < PROMPT


async def test_a_change_to_another_deal_does_not_end_the_wait(
    api: httpx.AsyncClient, sessions: SessionFactory, people: Parties, deal_id: uuid.UUID
) -> None:
    other = (await brokered_deal(sessions, people, quantity=1)).deal_id
    etag = (await api.get(f"/v1/deals/{deal_id}", headers=people.manager)).headers["ETag"]
    headers = people.manager | {"If-None-Match": etag, "Prefer": "wait=2"}
    poll = asyncio.create_task(timed_get(api, f"/v1/deals/{deal_id}", headers))
    await until_waiting(api)
    await move(sessions, other, DealStage.PARTICIPANTS_CONFIRMED)
    response, took = await poll
    assert response.status_code == 304
    assert took >= 1.9


async def test_strangers_get_the_same_404_at_once_even_when_asking_to_wait(
    api: httpx.AsyncClient, people: Parties, deal_id: uuid.UUID, token_for: TokenFor
) -> None:
    etag = (await api.get(f"/v1/deals/{deal_id}", headers=people.manager)).headers["ETag"]
    stranger = token_for(uuid.uuid4(), Role.INVESTOR)
    plain = await api.get(f"/v1/deals/{deal_id}", headers=stranger)
    assert plain.status_code == 404
    for deal in (deal_id, uuid.uuid4()):
        headers = stranger | {"If-None-Match": etag, "Prefer": f"wait={WAIT}"}
        response, took = await timed_get(api, f"/v1/deals/{deal}", headers)
        assert response.status_code == 404
        assert took < PROMPT
        assert "ETag" not in response.headers
        assert response.json()["type"] == plain.json()["type"]
    unauthenticated = await api.get(f"/v1/deals/{deal_id}", headers={"If-None-Match": etag, "Prefer": "wait=20"})
    assert unauthenticated.status_code == 401


@pytest.mark.parametrize(
    "preference",
    ["wait=abc", "wait=-1", "wait=1.5", "wait", "wait=", "wait=0", "=;,", 'wait="', "wait=12abc", "wait=1e3"],
)
async def test_a_malformed_prefer_is_ignored(
    api: httpx.AsyncClient, people: Parties, deal_id: uuid.UUID, preference: str
) -> None:
    etag = (await api.get(f"/v1/deals/{deal_id}", headers=people.manager)).headers["ETag"]
    headers = people.manager | {"If-None-Match": etag, "Prefer": preference}
    response, took = await timed_get(api, f"/v1/deals/{deal_id}", headers)
    assert response.status_code == 304
    assert "Preference-Applied" not in response.headers
    assert took < PROMPT
    stale = await api.get(f"/v1/deals/{deal_id}", headers=headers | {"If-None-Match": '"stale"'})
    assert stale.status_code == 200


async def test_long_polls_survive_the_listener_connection_dropping(
    api: httpx.AsyncClient, sessions: SessionFactory, people: Parties, deal_id: uuid.UUID
) -> None:
    async def listener_pids() -> list[int]:
        async with sessions() as session:
            rows = await session.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"), {"name": APPLICATION_NAME}
            )
            return [row[0] for row in rows]

    [old] = await eventually(listener_pids, lambda pids: len(pids) == 1, what="the API's listener")
    async with transaction(sessions) as session:
        await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": old})
    await eventually(listener_pids, lambda pids: len(pids) == 1 and old not in pids, what="a new listener")

    etag = (await api.get(f"/v1/deals/{deal_id}", headers=people.manager)).headers["ETag"]
    headers = people.manager | {"If-None-Match": etag, "Prefer": f"wait={WAIT}"}
    poll = asyncio.create_task(timed_get(api, f"/v1/deals/{deal_id}", headers))
    await until_waiting(api)
    await move(sessions, deal_id, DealStage.CANCELLED)
    response, took = await poll
    assert response.status_code == 200
    assert response.json()["stage"] == "cancelled"
    assert took < WAIT - PROMPT


async def test_a_running_deal_long_polled_until_it_is_cancelled(api: httpx.AsyncClient, people: Parties) -> None:
    """The real path: the workflow's activity projects the cancellation and its NOTIFY wakes the poll."""
    body = deal_request(people, quantity=1, price="10")
    created = await api.post("/v1/deals", json=body, headers=people.manager)
    assert created.status_code == 201, created.text
    path = f"/v1/deals/{created.json()['id']}"

    async def long_poll_until(stage: str, etag: str | None) -> tuple[dict[str, Any], str]:
        deal: dict[str, Any] = {}
        while deal.get("stage") != stage:
            headers = people.manager | ({"If-None-Match": etag, "Prefer": f"wait={WAIT}"} if etag else {})
            response = await api.get(path, headers=headers)
            assert response.status_code in (200, 304), response.text
            if response.status_code == 200:
                deal, etag = response.json(), response.headers["ETag"]
        assert etag is not None
        return deal, etag

    _, etag = await asyncio.wait_for(long_poll_until("awaiting_issuer", None), 120)
    cancelled = asyncio.create_task(long_poll_until("cancelled", etag))
    await until_waiting(api)
    cancel_sent = time.monotonic()
    response = await api.post(f"{path}/cancel", json={"reason": "long-poll test"}, headers=people.manager)
    assert response.status_code == 200, response.text
    deal, _ = await asyncio.wait_for(cancelled, WAIT)
    assert time.monotonic() - cancel_sent < WAIT - PROMPT
    assert deal["cancel_reason"] == "long-poll test"


async def test_the_change_notification_is_delivered_on_commit_only(
    sessions: SessionFactory, settings: Settings
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = Listener(asyncpg_dsn(settings.require("database_url")), CHANNEL, heard.put_nowait)
    listener.start()
    try:
        await asyncio.wait_for(listener.wait_listening(), 15)
        rolled_back, uncommitted, marker = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

        async with sessions() as session:
            await announce(session, rolled_back)
            await session.rollback()
        async with sessions() as open_session:
            await announce(open_session, uncommitted)
            async with transaction(sessions) as session:
                await announce(session, marker)
            # Notifications arrive in commit order: the marker is first, so nothing else was sent before it.
            assert await asyncio.wait_for(heard.get(), 15) == str(marker)
            await open_session.commit()
        assert await asyncio.wait_for(heard.get(), 15) == str(uncommitted)
        assert heard.empty()
    finally:
        await listener.close()


def test_prefer_wait_is_parsed_as_rfc_7240_says() -> None:
    assert prefer.wait_seconds(["wait=10"]) == 10
    assert prefer.wait_seconds(["respond-async, WAIT = 5"]) == 5
    assert prefer.wait_seconds(['wait="7"; foo=bar']) == 7
    assert prefer.wait_seconds(["handling=lenient", "wait=3"]) == 3
    assert prefer.wait_seconds(["wait=600"]) == prefer.MAX_WAIT_SECONDS
    assert prefer.wait_seconds(["wait=99999999999999999999999"]) == prefer.MAX_WAIT_SECONDS
    assert prefer.wait_seconds(["wait=x, wait=5"]) is None  # only the first instance counts
    assert prefer.wait_seconds(["return=minimal"]) is None
    assert prefer.wait_seconds(["wait=\u0663"]) is None  # a digit, but not an ASCII one
    assert prefer.wait_seconds([]) is None


def test_if_none_match_uses_weak_comparison() -> None:
    tag = etags.etag_of(b"{}")
    assert etags.matches(etags.none_match_tags([f"W/{tag}"]), tag)
    assert etags.matches(etags.none_match_tags(['"a"', f'"b", {tag}']), tag)
    assert etags.matches(etags.none_match_tags(["*"]), tag)
    assert not etags.matches(etags.none_match_tags(['"a"']), tag)
    assert etags.none_match_tags(["garbage"]) is None
    assert not etags.matches(None, tag)


async def test_asking_for_funding_instructions_again_wakes_no_one(sessions: SessionFactory, settings: Settings) -> None:
    """The deal page asks on every view and poll: only the first ask changes the deal."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = Listener(asyncpg_dsn(settings.require("database_url")), CHANNEL, heard.put_nowait)
    listener.start()
    try:
        await asyncio.wait_for(listener.wait_listening(), 15)
        deal_id, buyer_id, marker = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        amount = Money(amount=Decimal("150.00"), currency="USD")
        for _ in range(3):
            async with transaction(sessions) as session:
                await payments.create_funding_instructions(
                    session, deal_id=deal_id, buyer_id=buyer_id, amount=amount, reference=f"deal-{deal_id}"
                )
        async with transaction(sessions) as session:
            await announce(session, marker)  # committed after the asks: everything they sent arrives before it
        assert await asyncio.wait_for(heard.get(), 15) == str(deal_id)
        assert await asyncio.wait_for(heard.get(), 15) == str(marker)
    finally:
        await listener.close()
