"""Order placement throughput through the API vs raw Temporal workflow starts, in the same run.

    python -m bench.orders [--clients 16] [--orders 400] [--securities 4] [--stack .pap/stack.json]

Without `--stack` it starts an embedded stack of its own (like the test fixtures). Each
order is a SELL from a seller with verified shares (the heaviest validation path: transfer
rules, a share reservation, the per-security lock, matching, outbox events, the
`order-{id}` workflow start). The baseline starts a trivial workflow by name on a task
queue without a worker: the cost of `client.start_workflow` alone, at the same concurrency.

A second reference, printed for context, starts `BenchRestingOrder` on a worker in this
process: a start plus the first workflow task, the part of every order's workflow the
server cannot skip. Its Temporal CPU per start is the server's share of any order; once
the machine's cores are busy, throughput is cores / CPU per order, whatever the ratio
of the (not CPU-bound) bare starts.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import uuid

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from bench.measure import Side, compare, cpu_report, measure, pct, ratio_report, record
from bench.raw_order import BenchRestingOrder
from bench.stack import bench_stack
from pap.cli import UP_API_WORKERS
from pap.db import create_engine, create_session_factory
from pap.telemetry import configure_tracing
from services.identity.permissions import Role
from services.identity.tokens import KeyRing, Principal
from temporal.client import connect
from tests.market_support import new_security, verified_lot

WARM_UP = 20


def report(name: str, side: Side) -> None:
    p50, p99 = pct(side.latencies, 50) * 1000, pct(side.latencies, 99) * 1000
    print(f"{name:<22} {side.rate:8.1f}/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")


async def run(args: argparse.Namespace) -> None:
    async with bench_stack(args.stack, args.api_workers) as running:
        settings, api_url = running.settings, running.api_url
        keyring = KeyRing.load(settings.state_dir / "keys", settings.jwt_private_key_file)
        engine = create_engine(settings.require("database_url"), pool_size=5)
        sessions = create_session_factory(engine)
        per_seller = 10
        sellers: list[tuple[uuid.UUID, dict[str, str]]] = []
        securities = [(await new_security(sessions))[1] for _ in range(args.securities)]
        for i in range((WARM_UP + args.rounds * args.orders) // per_seller + 2):
            seller = uuid.uuid4()
            await verified_lot(sessions, seller, securities[i % len(securities)], 10 * per_seller)
            token = keyring.issue(Principal(user_id=seller, roles=frozenset({Role.INVESTOR}), mfa=False))
            sellers.append((seller, {"Authorization": f"Bearer {token}"}))
        await engine.dispose()
        temporal: Client = await connect(settings.require("temporal_address"), settings.temporal_namespace)

        placed = itertools.count()  # across rounds: each seller's shares cover `per_seller` orders
        async with httpx.AsyncClient(base_url=api_url, timeout=60) as api:

            async def place(_: int) -> None:
                i = next(placed)
                index = i // per_seller
                body = {
                    "security_id": str(securities[index % len(securities)]),
                    "side": "sell",
                    "quantity": 10,
                    "limit_price": {"amount": f"{100 + i % 7}.25", "currency": "USD"},
                    "time_in_force": "gtc",
                }
                response = await api.post("/v1/orders", json=body, headers=sellers[index][1])
                if response.status_code != 201:
                    raise RuntimeError(response.text)

            async def start_raw(i: int) -> None:
                await temporal.start_workflow(
                    "BenchNoop", {"i": i}, id=f"bench-{uuid.uuid4()}", task_queue=f"bench-{settings.task_queue}"
                )

            resting_queue = f"bench-resting-{uuid.uuid4().hex[:8]}"

            async def start_resting(i: int) -> None:
                await temporal.start_workflow(
                    BenchRestingOrder.run, {"i": i}, id=f"bench-resting-{uuid.uuid4()}", task_queue=resting_queue
                )

            await measure(4, WARM_UP, start_raw)  # warm-up (connections, caches)
            await measure(4, WARM_UP, place)
            baseline, orders = await compare(
                args.rounds,
                lambda: measure(args.clients, args.orders, start_raw),
                lambda: measure(args.clients, args.orders, place),
                running.cpu_seconds,
            )
            configure_tracing(settings, "bench-orders")  # the Temporal plugin's worker needs the replay-safe provider
            resting = Side()
            async with Worker(temporal, task_queue=resting_queue, workflows=[BenchRestingOrder]):
                await record(resting, lambda: measure(args.clients, args.orders, start_resting), running.cpu_seconds)
        print(f"{args.orders} calls per round, {args.rounds} rounds, {args.clients} concurrent clients")
        report("raw start_workflow", baseline)
        report("POST /v1/orders", orders)
        print(ratio_report(baseline, orders, "orders/baseline", 0.5))
        print("baseline " + cpu_report(baseline.cpu, baseline.runs, "start"))
        print("orders   " + cpu_report(orders.cpu, orders.runs, "order"))
        print("reference: a start plus its first workflow task (worker in this process), one round")
        report("start + first task", resting)
        print("resting  " + cpu_report(resting.cpu, resting.runs, "start") + " (+ this process's worker)")
        print(f"cores busy: baseline {baseline.cores_busy:.2f}, orders {orders.cores_busy:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--securities", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="alternating baseline and platform rounds")
    parser.add_argument(
        "--api-workers", type=int, default=UP_API_WORKERS, help="API processes of the embedded stack (as `pap up`)"
    )
    parser.add_argument("--stack", help="use a running stack (.pap/stack.json) instead of starting one")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
