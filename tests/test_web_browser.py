"""The investor app in a real browser (Debian's Chromium via Playwright): sign-up to a closed deal.

A seller and a buyer, each in their own browser context (the buyer on a 375 px
wide phone viewport), do every investor step in the browser; compliance, the
issuer and the payment rail act through the API as they would in production.
Pages are checked with axe-core for serious/critical accessibility violations.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from services.identity.permissions import Role
from tests.deal_support import TokenFor
from tests.factories import PASSWORD
from tests.support import eventually

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = (Path(__file__).parent / "assets" / "axe.min.js").read_text()
SLOW = 60_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is installed by `make test`")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        await browser.close()


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def accessible(page: Page) -> None:
    """No serious or critical axe-core violations (injected with evaluate: the CSP forbids foreign scripts)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE)
    found: list[str] = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations.filter(v => ['serious', 'critical'].includes(v.impact))
                .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(' | '));
        }"""
    )
    assert found == [], f"{page.url}: {found}"


async def fits_width(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size
    assert viewport is not None and width <= viewport["width"], f"{page.url} scrolls sideways ({width}px)"


async def sign_up_and_log_in(context: BrowserContext, base: str, name: str) -> tuple[Page, str]:
    email = f"web-{uuid.uuid4().hex[:10]}@example.com"
    page = await context.new_page()
    await page.goto(f"{base}/app/signup")
    await expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    await page.get_by_label("Full name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up").click()
    await expect(page.get_by_text("Account created: log in.")).to_be_visible()
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page, email


async def bearer(api: httpx.AsyncClient, email: str) -> dict[str, str]:
    """The same user's API token (the test reads ids with it, as a mobile app would)."""
    tokens = (await api.post("/v1/auth/token", data={"username": email, "password": PASSWORD})).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def new_company(api: httpx.AsyncClient, admin: dict[str, str]) -> tuple[str, str, str]:
    name = f"Orbital {uuid.uuid4().hex[:6]}"
    company = await api.post(
        "/v1/companies",
        json={
            "name": name,
            "legal_name": f"{name}, Inc.",
            "jurisdiction": "US-DE",
            "sector": "space",
            "fully_diluted_shares": 10_000_000,
            "description": "Reusable launch vehicles.",
            "transfer_policy": {"rofr_days": 30, "issuer_approval_required": False},
        },
        headers=admin,
    )
    assert company.status_code == 201, company.text
    company_id = company.json()["id"]
    money = {"currency": "USD"}
    funding_round = await api.post(
        f"/v1/companies/{company_id}/funding-rounds",
        json={
            "round_name": "Series B",
            "round_date": "2026-03-01",
            "price_per_share": money | {"amount": "18.00"},
            "amount_raised": money | {"amount": "50000000"},
            "post_money_valuation": money | {"amount": "180000000"},
        },
        headers=admin,
    )
    assert funding_round.status_code == 201, funding_round.text
    security = await api.post(
        f"/v1/companies/{company_id}/securities", json={"class_name": "Common", "kind": "common"}, headers=admin
    )
    assert security.status_code == 201, security.text
    return company_id, security.json()["id"], name


async def stage_is(page: Page, stage: str) -> None:
    """The deal page's live fragment (htmx polling every 5 s) reaches `stage` without a reload."""
    await expect(page.locator("#deal-stage")).to_have_attribute("data-stage", stage, timeout=SLOW)


async def sign(page: Page, kind: str, name: str, *, across_a_poll: bool = False) -> None:
    """Fill in and submit the sign form (`across_a_poll`: let the live fragment's next poll pass between
    filling it in and submitting, which must leave what was typed in place)."""
    document = page.locator(f'li.document[data-kind="{kind}"]')
    await expect(document.get_by_role("button", name="Sign")).to_be_visible(timeout=SLOW)
    await document.get_by_label("Type your full name").fill(name)
    await document.get_by_label("I have read this document").check()
    if across_a_poll:
        async with page.expect_response(lambda response: "/live" in response.url, timeout=SLOW):
            pass
        await expect(document.get_by_label("Type your full name")).to_have_value(name)
        await expect(document.get_by_label("I have read this document")).to_be_checked()
    await document.get_by_role("button", name="Sign").click()
    await expect(page.locator(f'li.document[data-kind="{kind}"] .sign')).to_have_count(0, timeout=SLOW)


async def sign_in_order(
    api: httpx.AsyncClient, seller: Page, buyer: Page, deal_id: str, kind: str, headers: dict[str, str]
) -> None:
    """Each signer of `kind` signs in the browser, the seller first (the signing order)."""
    documents = (await api.get(f"/v1/deals/{deal_id}/documents", headers=headers)).json()
    signers = {s["role"] for d in documents if d["kind"] == kind for s in d["signers"]}
    assert signers, f"no {kind} to sign: {documents}"
    if "seller" in signers:
        await seller.reload()
        await sign(seller, kind, "Sally Seller", across_a_poll=kind == "stock_transfer_notice")
    if "buyer" in signers:
        await buyer.reload()
        await sign(buyer, kind, "Bob Buyer")


async def test_seller_and_buyer_go_from_sign_up_to_a_closed_deal_in_the_browser(
    api: httpx.AsyncClient, browser: Browser, token_for: TokenFor
) -> None:
    base = str(api.base_url).rstrip("/")
    admin = token_for(uuid.uuid4(), Role.ADMIN)
    compliance = token_for(uuid.uuid4(), Role.COMPLIANCE)
    company_id, security_id, company_name = await new_company(api, admin)
    seller_ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    buyer_ctx = await browser.new_context(viewport={"width": 375, "height": 812})

    # --- the seller signs up and declares a holding; compliance verifies it
    seller, seller_email = await sign_up_and_log_in(seller_ctx, base, "Sally Seller")
    await seller.goto(f"{base}/app/holdings")
    await seller.get_by_label("Security").select_option(security_id)
    await seller.get_by_label("Number of shares").fill("0")
    await seller.get_by_role("button", name="Submit for verification").click()
    await expect(seller.locator("#e-quantity")).to_be_visible()  # the validation message sits by its field
    await seller.get_by_label("Number of shares").fill("1000")
    await seller.get_by_role("button", name="Submit for verification").click()
    await expect(seller.locator(".position .status")).to_have_text("pending_verification")
    seller_api = await bearer(api, seller_email)
    holding_id = (await api.get("/v1/holdings", headers=seller_api)).json()["items"][0]["id"]
    verified = await api.post(f"/v1/holdings/{holding_id}/verify", json={}, headers=compliance)
    assert verified.status_code == 200, verified.text
    await seller.reload()
    await expect(seller.locator(".position .status")).to_have_text("verified")
    await accessible(seller)
    await shot(seller, "holdings")

    # --- the buyer signs up, passes KYC and asks for accreditation; compliance approves it
    buyer, buyer_email = await sign_up_and_log_in(buyer_ctx, base, "Bob Buyer")
    await buyer.goto(f"{base}/app/verification")
    await expect(buyer.locator("#eligibility")).to_contain_text("Before you can buy")
    await buyer.get_by_label("Legal name").fill("Bob Buyer")
    await buyer.get_by_label("Date of birth").fill("1980-04-02")
    await buyer.get_by_label("Country of residence").fill("US")
    await buyer.get_by_label("Last 4 digits").fill("4321")
    async with buyer.expect_navigation():  # the form's answer has loaded before the probe reloads the page
        await buyer.get_by_role("button", name="Submit identity check").click()

    async def kyc_text() -> str:
        await buyer.reload()
        return await buyer.locator("#kyc-status").inner_text()

    await eventually(kyc_text, lambda s: s == "approved", timeout=30, what="KYC approved in the page")
    await buyer.get_by_label("Basis of accreditation").select_option("income")
    await buyer.get_by_role("button", name="Request accreditation review").click()
    await expect(buyer.locator("#accreditation-status")).to_have_text("pending_review")
    buyer_api = await bearer(api, buyer_email)
    accreditation = (await api.get("/v1/profiles/me/accreditations", headers=buyer_api)).json()["items"][0]
    approved = await api.post(
        f"/v1/compliance/accreditations/{accreditation['id']}/decision",
        json={"decision": "approve", "reason": "income documents verified"},
        headers=compliance,
    )
    assert approved.status_code == 200, approved.text
    await buyer.reload()
    await expect(buyer.locator("#eligibility")).to_have_text("You may buy shares.")
    await accessible(buyer)
    await fits_width(buyer)
    await shot(buyer, "verification-mobile")

    # --- both see the company; the seller offers, the buyer's crossing bid makes a deal
    await buyer.goto(f"{base}/app/companies?sector=space")
    await buyer.get_by_role("link", name=company_name).click()
    await expect(buyer.get_by_role("heading", name=company_name)).to_be_visible()
    await expect(buyer.locator("#sector")).to_have_text("space")
    await expect(buyer.get_by_text("Series B on 2026-03-01")).to_be_visible()
    await accessible(buyer)
    await fits_width(buyer)

    await seller.goto(f"{base}/app/orders")
    await seller.get_by_label("Security").select_option(security_id)
    await seller.get_by_label("Sell").check()
    await seller.get_by_label("Quantity (shares)").fill("5000")
    await seller.get_by_label("Limit price per share").fill("20.00")
    await seller.get_by_role("button", name="Place order").click()
    await expect(seller.locator("#form-error")).to_be_visible()  # more than the verified shares: refused
    await seller.get_by_label("Quantity (shares)").fill("150")
    await seller.get_by_role("button", name="Place order").click()
    row = seller.locator(".order-row").first
    await expect(row.locator(".status")).to_have_text("open")
    await row.get_by_label("New quantity").fill("100")  # amend through htmx: the row is swapped in place
    await row.get_by_role("button", name="Amend").click()
    await expect(seller.locator(".order-row").first.locator("td").nth(2)).to_have_text("100", timeout=SLOW)
    await accessible(seller)
    await shot(seller, "orders")

    await seller.goto(f"{base}/app/companies/{company_id}")
    await expect(seller.get_by_role("table", name="Asks")).to_contain_text("100")
    await accessible(seller)
    await shot(seller, "company")

    await buyer.goto(f"{base}/app/orders")
    await buyer.get_by_label("Security").select_option(security_id)
    await buyer.get_by_label("Buy").check()
    await buyer.get_by_label("Quantity (shares)").fill("100")
    await buyer.get_by_label("Limit price per share").fill("20.00")
    async with buyer.expect_navigation():
        await buyer.get_by_role("button", name="Place order").click()

    async def deal_link(page: Page) -> str:
        await page.reload()
        link = page.get_by_role("link", name="view deal")
        return (await link.first.get_attribute("href") or "") if await link.count() else ""

    await seller.goto(f"{base}/app/orders")
    buyer_href = await eventually(lambda: deal_link(buyer), bool, timeout=30, what="the buyer's deal link")
    seller_href = await eventually(lambda: deal_link(seller), bool, timeout=30, what="the seller's deal link")
    assert buyer_href == seller_href
    deal_id = buyer_href.rsplit("/", 1)[-1]
    await buyer.goto(f"{base}{buyer_href}")
    await seller.goto(f"{base}{seller_href}")
    await expect(seller.get_by_text("You are the seller")).to_be_visible()
    await expect(buyer.get_by_text("You are the buyer")).to_be_visible()

    # --- ROFR: the seller signs the transfer notice; the issuer waives through the API
    await stage_is(seller, "awaiting_issuer")
    await expect(seller.locator("#next-actor")).to_be_visible()
    await expect(seller.locator('li.document[data-kind="stock_transfer_notice"]')).to_be_visible(timeout=SLOW)
    await accessible(seller)
    await shot(seller, "deal-awaiting-issuer")
    href = await seller.locator('li.document[data-kind="stock_transfer_notice"] a').first.get_attribute("href")
    pdf = await seller.request.get(f"{base}{href}")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    stranger_pdf = await buyer_ctx.request.get(f"{base}/app/documents/{uuid.uuid4()}/content")
    assert stranger_pdf.status == 404
    await sign_in_order(api, seller, buyer, deal_id, "stock_transfer_notice", buyer_api)
    issuer = token_for(uuid.uuid4(), Role.ISSUER, company_id=uuid.UUID(company_id))
    decision = await api.post(f"/v1/deals/{deal_id}/issuer-decision", json={"decision": "waive"}, headers=issuer)
    assert decision.status_code == 200, decision.text

    # --- the agreement and the joinder: the seller signs first, then the buyer
    await stage_is(seller, "awaiting_signatures")
    for kind in ("stock_transfer_agreement", "joinder"):
        await sign_in_order(api, seller, buyer, deal_id, kind, buyer_api)
    await expect(buyer.locator("#documents")).to_contain_text("Joinder")

    # --- funding: the buyer sees the instructions; the sandbox rail settles the payment
    await stage_is(buyer, "awaiting_funding")
    await expect(buyer.locator("#funding")).to_contain_text("2,000.00 USD")
    payment_id = await buyer.locator("#payment-id").inner_text()
    await accessible(buyer)
    await fits_width(buyer)
    await shot(buyer, "deal-funding-mobile")
    settled = await api.post(f"/v1/sandbox/payments/{payment_id}/settle", json={})
    assert settled.status_code == 202, settled.text

    await stage_is(buyer, "settling")
    confirmed = await api.post(f"/v1/deals/{deal_id}/settlement/confirm", headers=issuer)
    assert confirmed.status_code == 200, confirmed.text
    await stage_is(seller, "closed")
    await stage_is(buyer, "closed")
    statuses = await seller.locator("li.document").evaluate_all("els => els.map(e => e.dataset.status)")
    kinds = await seller.locator("li.document").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert all(s == "signed" for s, k in zip(statuses, kinds, strict=True) if k != "issuer_consent"), statuses
    await shot(seller, "deal-closed")

    # --- the closed trade becomes a print on the company's price chart (server-rendered SVG)
    async def chart_points() -> int:
        await seller.goto(f"{base}/app/companies/{company_id}")
        return await seller.locator("svg.chart polyline").count()

    await eventually(chart_points, lambda n: n == 1, timeout=30, what="the price chart")
    await expect(seller.locator("svg.chart")).to_have_attribute("aria-label", re.compile("between 20"))
    await shot(seller, "company-after-trade")

    # --- the shares moved: the buyer holds 100, the seller 900
    await buyer.goto(f"{base}/app/holdings")
    await expect(buyer.locator(".position .qty")).to_have_text("100")
    await seller.goto(f"{base}/app/holdings")
    quantities: list[Any] = await seller.locator(".position .qty").all_inner_texts()
    assert sum(int(q) for q in quantities) == 900

    # --- notifications: the header shows the unread count; marking all read clears it
    await seller.goto(f"{base}/app/notifications")
    await expect(seller.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    await accessible(seller)
    await seller.get_by_role("button", name="Mark all as read").click()
    await expect(seller.locator("#unread-count")).to_have_text("0")

    # --- security: MFA enrolment shows a QR code; sessions are listed
    await seller.goto(f"{base}/app/security")
    await seller.get_by_role("button", name="Set up an authenticator app").click()
    await expect(seller.locator(".qr svg")).to_be_visible()
    await expect(seller.get_by_role("table", name="Your signed-in sessions")).to_contain_text("this session")
    await accessible(seller)
    await shot(seller, "security")
    await seller_ctx.close()
    await buyer_ctx.close()
