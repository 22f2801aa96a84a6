"""`pap seed --demo`: demo data through the services, safe to run again (everything is looked up first).

Companies with funding rounds and a year of closed-trade price prints, a demo
seller with a verified holding and an open sell order (its workflow started
like the API does), a demo buyer verified through the sandbox KYC provider and a
compliance approval, and a brokered deal between them in progress, all through
the running API exactly as users would (tokens minted with the API's key ring).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
from sqlmodel.ext.asyncio.session import AsyncSession

from events.envelope import CloudEvent
from models.base import Money
from models.companies import CompanyCreate, FundingRoundCreate, SecurityCreate, SecurityKind, TransferPolicy
from models.holdings import HoldingCreate
from models.marketplace import OrderCreate, OrderStatus, Side
from pap.db import SessionFactory, create_engine, create_session_factory, transaction
from pap.settings import Settings
from services import companies, holdings, identity, marketplace, pricing
from services.identity.permissions import Role
from services.identity.tokens import KeyRing, Principal
from services.identity.users import find_by_email

DEMO_PASSWORD = "Demo-Investor-Password-1!"
NAMESPACE = uuid.UUID("6f1d2a4e-2b8c-4c71-9d0a-5e1f0c3b7a10")
COMPANIES = [
    ("Orbital Launch", "space", "18.00", 60_000_000),
    ("Helix Therapeutics", "biotech", "42.50", 25_000_000),
    ("Quanta Ledger", "fintech", "7.25", 120_000_000),
]
USERS = [("seller@demo.pap.dev", "Sally Seller"), ("buyer@demo.pap.dev", "Bob Buyer")]
SEED_ACTOR = Principal(user_id=NAMESPACE, roles=frozenset({Role.COMPLIANCE}), mfa=True)


@dataclass
class SeedReport:
    companies: list[str]
    users: list[tuple[str, str]]
    order_id: uuid.UUID | None
    deal_id: uuid.UUID | None = None


def _usd(amount: str | Decimal) -> Money:
    return Money(amount=Decimal(amount), currency="USD")


async def seed_demo(settings: Settings) -> SeedReport:
    engine = create_engine(settings.require("database_url"))
    sessions = create_session_factory(engine)
    try:
        security_ids: list[tuple[uuid.UUID, uuid.UUID, str]] = []
        async with transaction(sessions) as session:
            for name, sector, price, shares in COMPANIES:
                found = [c for c in (await companies.list_companies(session, q=name, limit=10)).items if c.name == name]
                if found:
                    detail = await companies.get_company(session, found[0].id)
                else:
                    created = await companies.create_company(
                        session,
                        CompanyCreate(
                            name=name,
                            legal_name=f"{name}, Inc.",
                            jurisdiction="US-DE",
                            sector=sector,
                            fully_diluted_shares=shares,
                            description=f"Demo {sector} company.",
                            transfer_policy=TransferPolicy(rofr_days=30),
                        ),
                    )
                    await companies.add_funding_round(
                        session,
                        created.id,
                        FundingRoundCreate(
                            round_name="Series B",
                            round_date=date(2026, 3, 1),
                            price_per_share=_usd(price),
                            amount_raised=_usd("50000000"),
                            post_money_valuation=_usd(Decimal(price) * shares),
                        ),
                    )
                    await companies.create_security(
                        session,
                        created.id,
                        SecurityCreate(class_name="Common", kind=SecurityKind.COMMON, last_round_price=_usd(price)),
                    )
                    detail = await companies.get_company(session, created.id)
                security_ids.append((detail.id, detail.securities[0].id, price))
            for company_id, security_id, price in security_ids:
                await _price_history(session, company_id, security_id, Decimal(price))
            for email, full_name in USERS:
                await identity.register(session, email=email, password=DEMO_PASSWORD, full_name=full_name)
        async with transaction(sessions) as session:
            seller = await find_by_email(session, USERS[0][0])
            assert seller is not None
            company_id, security_id, price = security_ids[0]
            positions = await holdings.list_holdings(session, seller.id, security_id=security_id, limit=10)
            if not positions.items:
                holding = await holdings.submit_holding(
                    session, seller.id, HoldingCreate(security_id=security_id, quantity=5_000)
                )
                await holdings.verify_holding(session, SEED_ACTOR, holding.id, "demo data")
        order_id = await _open_order(settings, sessions, seller.id, security_id, Decimal(price) + 2)
        async with sessions() as session:
            buyer = await find_by_email(session, USERS[1][0])
        assert buyer is not None
        deal_id = await _deal_in_progress(settings, seller.id, buyer.id, security_id, Decimal(price))
        return SeedReport(
            companies=[c[0] for c in COMPANIES],
            users=[(e, DEMO_PASSWORD) for e, _ in USERS],
            order_id=order_id,
            deal_id=deal_id,
        )
    finally:
        await engine.dispose()


async def _price_history(session: AsyncSession, company_id: uuid.UUID, security_id: uuid.UUID, price: Decimal) -> None:
    """Weekly closed-trade prints over the last year (fixed event ids: a rerun inserts nothing)."""
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    for week in range(52):
        drift = Decimal(1) + Decimal((week * 7) % 23 - 11) / Decimal(200) + Decimal(week) / Decimal(400)
        event = CloudEvent(
            id=uuid.uuid5(NAMESPACE, f"{security_id}:{week}"),
            source="pap/seed",
            type="deals.closed",
            time=now - timedelta(weeks=52 - week),
            data={
                "security_id": str(security_id),
                "company_id": str(company_id),
                "price": {"amount": str((price * drift).quantize(Decimal("0.01"))), "currency": "USD"},
                "quantity": 100 + (week * 37) % 400,
                "deal_id": str(uuid.uuid5(NAMESPACE, f"deal:{security_id}:{week}")),
            },
        )
        await pricing.ingest(session, event)


async def _open_order(
    settings: Settings, sessions: SessionFactory, seller_id: uuid.UUID, security_id: uuid.UUID, price: Decimal
) -> uuid.UUID | None:
    """One resting sell order of the demo seller, with its OrderLifecycle workflow (needs Temporal)."""
    from pap.redis import create_redis
    from temporal.client import connect
    from temporal.ids import order_workflow_id
    from temporal.start_hints import mark_started
    from temporal.starters import start_lifecycle

    principal = Principal(user_id=seller_id, roles=frozenset({Role.INVESTOR}))
    async with transaction(sessions) as session:
        page = await marketplace.list_orders(
            session, principal, status=OrderStatus.OPEN, security_id=security_id, limit=10, cursor=None
        )
        if page.items:
            return page.items[0].id
        outcome = await marketplace.place_order(
            session,
            seller_id,
            OrderCreate(security_id=security_id, side=Side.SELL, quantity=500, limit_price=_usd(price)),
        )
    client = await connect(settings.require("temporal_address"), settings.temporal_namespace)
    await start_lifecycle(client, outcome.order, settings.task_queue)
    redis = create_redis(settings.require("redis_url"))
    try:
        await mark_started(redis, order_workflow_id(outcome.order.id))  # as the API does: no backstop start
    finally:
        await redis.aclose()
    return outcome.order.id


async def _deal_in_progress(
    settings: Settings, seller_id: uuid.UUID, buyer_id: uuid.UUID, security_id: uuid.UUID, price: Decimal
) -> uuid.UUID:
    """Verify the demo buyer (sandbox KYC, compliance approval) and start a brokered deal, through the API."""
    ring = KeyRing.load(settings.state_dir / "keys", settings.jwt_private_key_file)

    def bearer(user_id: uuid.UUID, *roles: Role) -> dict[str, str]:
        return {"Authorization": "Bearer " + ring.issue(Principal(user_id=user_id, roles=frozenset(roles), mfa=True))}

    buyer = bearer(buyer_id, Role.INVESTOR)
    async with httpx.AsyncClient(base_url=f"http://{settings.api_host}:{settings.api_port}", timeout=30) as api:
        open_deals = [
            d for d in (await api.get("/v1/deals", headers=buyer)).json()["items"] if d["stage"] != "cancelled"
        ]
        if open_deals:
            return uuid.UUID(open_deals[0]["id"])
        me = (await api.get("/v1/me", headers=buyer)).json()
        if me["kyc_status"] != "approved":
            kyc = {"legal_name": "Bob Buyer", "date_of_birth": "1980-01-01", "country": "US", "tax_id_last4": "4321"}
            (await api.post("/v1/profiles/me/kyc", json=kyc, headers=buyer)).raise_for_status()
            for _ in range(300):  # the sandbox provider answers through its webhook within a second or two
                if (await api.get("/v1/me", headers=buyer)).json()["kyc_status"] == "approved":
                    break
                await asyncio.sleep(0.1)
        if me["accreditation_status"] != "approved":
            request = await api.post("/v1/profiles/me/accreditation", json={"method": "income"}, headers=buyer)
            request.raise_for_status()
            decision = {"decision": "approve", "reason": "demo data"}
            compliance = bearer(NAMESPACE, Role.COMPLIANCE)
            for _ in range(100):  # the review workflow must be running before it takes the decision
                answer = await api.post(
                    f"/v1/compliance/accreditations/{request.json()['id']}/decision", json=decision, headers=compliance
                )
                if answer.status_code == 200:
                    break
                await asyncio.sleep(0.1)
        deal = await api.post(
            "/v1/deals",
            json={
                "security_id": str(security_id),
                "seller_id": str(seller_id),
                "buyer_id": str(buyer_id),
                "quantity": 200,
                "price": {"amount": str(price), "currency": "USD"},
            },
            headers=bearer(uuid.uuid5(NAMESPACE, "deal-manager"), Role.DEAL_MANAGER),
        )
        deal.raise_for_status()
        return uuid.UUID(deal.json()["id"])
