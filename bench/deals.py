"""Deals end to end through the API vs a deal-shaped raw Temporal workflow, in the same run.

    python -m bench.deals [--deals 20] [--concurrency 8] [--in-flight 0] [--stack .pap/stack.json]

Each deal follows `tests/test_deals_e2e.py`: a deal manager creates a brokered deal
(`POST /v1/deals`), the seller and buyer sign the transfer notice, the issuer waives,
both sign the agreement and joinder, the buyer's funding is settled through the sandbox
rails, and the issuer confirms settlement; participants long-poll `GET /v1/deals/{id}`
(`If-None-Match` + `Prefer: wait`) between steps like a client would. The baseline
(`bench/raw_deal.py`) runs the same number of activities, timed waits, signals and
Updates with no domain work, on the same Temporal server, with a worker in this process.

`--in-flight N` also creates N brokered deals, waits until every one awaits the issuer
(a ROFR window of 30 days, so they stay in flight) and prints the worker's RSS.
Without `--stack` it starts an embedded stack of its own, like `bench.orders`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from bench.measure import Sample, Side, compare, cpu_report, measure, pct, ratio_report
from bench.raw_deal import ACTIVITIES_PER_DEAL, DOCUMENTS, BenchDeal, noop
from bench.stack import bench_stack
from pap.cli import UP_API_WORKERS
from pap.db import create_engine, create_session_factory
from pap.settings import Settings
from pap.telemetry import configure_tracing
from services.identity.permissions import Role
from services.identity.tokens import KeyRing, Principal
from temporal.client import connect
from tests.factories import make_verified_buyer, register_and_login
from tests.market_support import new_security, verified_lot

TOKEN_TTL = 4 * 3600
STAGE_TIMEOUT = 300.0
QUANTITY = 100
IN_FLIGHT_QUANTITY = 1
WARM_UP = 2


@dataclass
class Cast:
    """Who takes part: a deal manager, the issuer, one buyer and a few sellers (headers per person)."""

    security_id: uuid.UUID
    manager: dict[str, str]
    issuer: dict[str, str]
    buyer_id: uuid.UUID
    buyer: dict[str, str]
    sellers: list[tuple[uuid.UUID, dict[str, str]]]


def report(name: str, side: Side) -> None:
    print(
        f"{name:<24} {side.rate:8.2f}/s   p50 {pct(side.latencies, 50):8.2f} s   p99 {pct(side.latencies, 99):8.2f} s"
    )


def ok(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in (expected or (200,)):
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response.json() if response.content else None


class DealDriver:
    """Plays every participant of one deal over HTTP."""

    def __init__(self, api: httpx.AsyncClient, cast: Cast) -> None:
        self.api = api
        self.cast = cast
        self.phases: dict[str, list[float]] = {}
        """Seconds per step of the happy path (client view, polling included), for `report_phases`."""

    async def create(self, i: int, quantity: int) -> tuple[str, dict[str, str]]:
        seller_id, seller = self.cast.sellers[i % len(self.cast.sellers)]
        body = {
            "security_id": str(self.cast.security_id),
            "seller_id": str(seller_id),
            "buyer_id": str(self.cast.buyer_id),
            "quantity": quantity,
            "price": {"amount": "20.00", "currency": "USD"},
        }
        deal = ok(await self.api.post("/v1/deals", json=body, headers=self.cast.manager), 201)
        return str(deal["id"]), seller

    async def until(self, deal_id: str, stage: str) -> dict[str, Any]:
        """Long-poll the deal (`If-None-Match` + `Prefer: wait`) until it reaches `stage`."""
        deadline = time.monotonic() + STAGE_TIMEOUT
        deal: dict[str, Any] = {}
        etag: str | None = None
        while True:
            headers = self.cast.manager | ({"If-None-Match": etag, "Prefer": "wait=20"} if etag else {})
            response = await self.api.get(f"/v1/deals/{deal_id}", headers=headers)
            if response.status_code != 304:
                deal = ok(response)
                etag = response.headers.get("ETag")
            if deal["stage"] == stage:
                return deal
            if deal["stage"] == "cancelled" or time.monotonic() > deadline:
                raise RuntimeError(
                    f"deal {deal_id} is {deal['stage']}, waited for {stage}: {deal.get('cancel_reason')}"
                )

    async def sign(self, deal_id: str, seller: dict[str, str], kinds: set[str]) -> None:
        documents = ok(await self.api.get(f"/v1/deals/{deal_id}/documents", headers=self.cast.manager))
        for document in (d for d in documents if d["kind"] in kinds):
            for signer in sorted(document["signers"], key=lambda s: s["role"] != "seller"):
                headers = seller if signer["role"] == "seller" else self.cast.buyer
                body = {"signature_name": "Bench Signer", "consent": True}
                ok(await self.api.post(f"/v1/documents/{document['id']}/sign", json=body, headers=headers))

    async def run(self, i: int) -> None:
        began = time.perf_counter()

        def lap(phase: str) -> None:
            nonlocal began
            now = time.perf_counter()
            self.phases.setdefault(phase, []).append(now - began)
            began = now

        deal_id, seller = await self.create(i, QUANTITY)
        lap("POST /v1/deals")
        await self.until(deal_id, "awaiting_issuer")
        lap("-> awaiting_issuer")
        await self.sign(deal_id, seller, {"stock_transfer_notice"})
        lap("sign notice (2 signatures)")
        waive = {"decision": "waive"}
        ok(await self.api.post(f"/v1/deals/{deal_id}/issuer-decision", json=waive, headers=self.cast.issuer))
        lap("issuer waives (Update)")
        await self.until(deal_id, "awaiting_signatures")
        lap("-> awaiting_signatures")
        await self.sign(deal_id, seller, {"stock_transfer_agreement", "joinder"})
        lap("sign agreement + joinder")
        await self.until(deal_id, "awaiting_funding")
        lap("-> awaiting_funding")
        funding = ok(await self.api.post(f"/v1/deals/{deal_id}/funding", headers=self.cast.buyer))
        ok(await self.api.post(f"/v1/sandbox/payments/{funding['payment_id']}/settle", json={}), 202)
        lap("funding + sandbox settle")
        await self.until(deal_id, "settling")
        lap("-> settling")
        ok(await self.api.post(f"/v1/deals/{deal_id}/settlement/confirm", headers=self.cast.issuer))
        await self.until(deal_id, "closed")
        lap("confirm (Update) -> closed")


async def raw_deal(client: Client, task_queue: str) -> None:
    """Drive one BenchDeal the way participants drive a deal: signals and Updates in the same order."""
    handle = await client.start_workflow(
        BenchDeal.run, str(uuid.uuid4()), id=f"bench-deal-{uuid.uuid4()}", task_queue=task_queue
    )
    await handle.signal(BenchDeal.document_signed)
    await handle.execute_update("issuer_decision", result_type=str)
    for _ in range(DOCUMENTS - 1):
        await handle.signal(BenchDeal.document_signed)
    await handle.signal(BenchDeal.payment_received)
    await handle.execute_update("confirm_settlement", result_type=str)
    await handle.result()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def in_flight(driver: DealDriver, count: int, concurrency: int, worker_pid: int | None) -> None:
    """Start `count` deals, wait until each awaits the issuer, and print the worker's RSS."""
    before = rss_kib(worker_pid) if worker_pid else None
    ids: list[str] = []

    async def start(i: int) -> None:
        ids.append((await driver.create(i, IN_FLIGHT_QUANTITY))[0])

    began = time.perf_counter()
    await measure(concurrency, count, start)
    created = time.perf_counter() - began
    pending = iter(list(ids))

    async def wait_loop() -> None:
        for deal_id in pending:
            await driver.until(deal_id, "awaiting_issuer")

    await asyncio.gather(*(wait_loop() for _ in range(concurrency)))
    settled = time.perf_counter() - began
    print(f"{count} deals in flight: created in {created:.1f} s, all awaiting the issuer after {settled:.1f} s")
    if worker_pid is None:
        print("worker RSS: unknown with --stack (the worker is not this run's child); use an embedded stack")
        return
    after = rss_kib(worker_pid)
    assert before is not None
    print(
        f"worker RSS: {after / 1024:.0f} MiB with {count} deals in flight "
        f"(before {before / 1024:.0f} MiB; {(after - before) / count:.1f} KiB per deal)"
    )


async def make_cast(api: httpx.AsyncClient, settings: Settings, keyring: KeyRing, sellers: int, shares: int) -> Cast:
    def headers(
        user_id: uuid.UUID, role: Role, *, mfa: bool = False, company_id: uuid.UUID | None = None
    ) -> dict[str, str]:
        principal = Principal(user_id=user_id, roles=frozenset({role}), mfa=mfa, company_id=company_id)
        return {"Authorization": f"Bearer {keyring.issue(principal, ttl=TOKEN_TTL)}"}

    engine = create_engine(settings.require("database_url"), pool_size=2)
    sessions = create_session_factory(engine)
    try:
        company_id, security_id = await new_security(
            sessions, rofr_days=30, issuer_approval_required=False, transfer_fee_bps=50
        )
        compliance = headers(uuid.uuid4(), Role.COMPLIANCE, mfa=True)
        buyer = await make_verified_buyer(api, compliance_headers=compliance)
        people: list[tuple[uuid.UUID, dict[str, str]]] = []
        for _ in range(sellers):
            seller = await register_and_login(api, full_name="Sally Seller")
            await verified_lot(sessions, seller.id, security_id, shares)
            people.append((seller.id, headers(seller.id, Role.INVESTOR)))
    finally:
        await engine.dispose()
    return Cast(
        security_id=security_id,
        manager=headers(uuid.uuid4(), Role.DEAL_MANAGER, mfa=True),
        issuer=headers(uuid.uuid4(), Role.ISSUER, company_id=company_id),
        buyer_id=buyer.id,
        buyer=headers(buyer.id, Role.INVESTOR),
        sellers=people,
    )


async def run(args: argparse.Namespace) -> None:
    async with bench_stack(args.stack, args.api_workers) as running:
        settings, api_url, stack = running.settings, running.api_url, running.embedded
        keyring = KeyRing.load(settings.state_dir / "keys", settings.jwt_private_key_file)
        limits = httpx.Limits(max_connections=4 * args.concurrency + 8)
        async with httpx.AsyncClient(base_url=api_url, timeout=120, limits=limits) as api:
            sellers = max(1, min(args.concurrency, 8))
            shares = (WARM_UP + args.rounds * -(-args.deals // sellers)) * QUANTITY + -(
                -args.in_flight // sellers
            ) * IN_FLIGHT_QUANTITY
            cast = await make_cast(api, settings, keyring, sellers, shares)
            driver = DealDriver(api, cast)
            configure_tracing(settings, "bench-deals")  # the Temporal plugin's worker needs the replay-safe provider
            temporal: Client = await connect(settings.require("temporal_address"), settings.temporal_namespace)
            task_queue = f"bench-deals-{uuid.uuid4().hex[:8]}"

            async def raw_round() -> Sample:
                async with Worker(temporal, task_queue=task_queue, workflows=[BenchDeal], activities=[noop]):
                    return await measure(args.concurrency, args.deals, lambda i: raw_deal(temporal, task_queue))

            async with Worker(temporal, task_queue=task_queue, workflows=[BenchDeal], activities=[noop]):
                await measure(WARM_UP, WARM_UP, lambda i: raw_deal(temporal, task_queue))
            await measure(WARM_UP, WARM_UP, driver.run)
            driver.phases.clear()
            baseline, deals = await compare(
                args.rounds, raw_round, lambda: measure(args.concurrency, args.deals, driver.run), running.cpu_seconds
            )
            print(f"{args.deals} deals per round, {args.rounds} rounds, {args.concurrency} at a time")
            print(f"({ACTIVITIES_PER_DEAL} activities per deal)")
            report("raw deal workflow", baseline)
            report("deal through the API", deals)
            print(ratio_report(baseline, deals, "deals/raw", 0.6))
            print("raw   " + cpu_report(baseline.cpu, baseline.runs, "deal") + " (+ this process's worker)")
            print("deals " + cpu_report(deals.cpu, deals.runs, "deal"))
            print(f"cores busy: raw {baseline.cores_busy:.2f} (+ this process's worker), deals {deals.cores_busy:.2f}")
            print("where a deal's time goes (mean seconds per step, client view):")
            for phase, seconds in driver.phases.items():
                print(f"  {phase:<28} {statistics.fmean(seconds):6.2f}")
            if args.in_flight:
                worker_pid = stack.supervisor.pid("worker") if stack is not None else None
                await in_flight(driver, args.in_flight, max(args.concurrency, 16), worker_pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8, help="deals driven at the same time")
    parser.add_argument("--rounds", type=int, default=3, help="alternating baseline and platform rounds")
    parser.add_argument("--in-flight", type=int, default=0, help="also hold this many deals in flight and read RSS")
    parser.add_argument(
        "--api-workers", type=int, default=UP_API_WORKERS, help="API processes of the embedded stack (as `pap up`)"
    )
    parser.add_argument("--stack", help="use a running stack (.pap/stack.json) instead of starting one")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
