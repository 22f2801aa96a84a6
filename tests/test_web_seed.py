"""`pap seed --demo` loads the demo data through the services and can run twice without duplicating it."""

from __future__ import annotations

from redis.asyncio import Redis

from pap.db import SessionFactory
from pap.seed import COMPANIES, USERS, seed_demo
from pap.settings import Settings
from pap.stack.embedded import EmbeddedStack
from services import companies, deals, holdings, marketplace, pricing
from services.identity.users import find_by_email
from temporal.ids import order_workflow_id
from temporal.start_hints import was_started
from tests.market_support import COMPLIANCE


async def test_demo_seed_is_idempotent_and_complete(
    platform: EmbeddedStack, settings: Settings, sessions: SessionFactory, redis: Redis
) -> None:
    first = await seed_demo(settings)
    second = await seed_demo(settings)
    assert first.order_id is not None and first.order_id == second.order_id
    assert await was_started(redis, order_workflow_id(first.order_id))  # the backstop will not start it again
    assert first.deal_id is not None and first.deal_id == second.deal_id
    async with sessions() as session:
        for name, *_ in COMPANIES:
            found = [c for c in (await companies.list_companies(session, q=name, limit=10)).items if c.name == name]
            assert len(found) == 1, name
            detail = await companies.get_company(session, found[0].id)
            assert len(detail.funding_rounds) == 1 and len(detail.securities) == 1
            history = await pricing.candles(session, detail.securities[0].id, pricing.Interval.WEEK)
            assert len(history) >= 50
        seller = await find_by_email(session, USERS[0][0])
        assert seller is not None
        positions = await holdings.list_holdings(session, seller.id, limit=10)
        assert [(h.quantity, h.status) for h in positions.items] == [(5_000, "verified")]
        order = await marketplace.get_order_for(session, COMPLIANCE, first.order_id)
        assert order.status == "open" and order.side == "sell"
        deal = await deals.get_deal(session, first.deal_id)
        assert deal.seller_id == seller.id and deal.stage != "cancelled"
