"""Order placement throughput through the API vs raw Temporal workflow starts, in the same run.

    python -m bench.orders [--clients 16] [--orders 400] [--securities 4] [--stack .pap/stack.json]

Without `--stack` it starts an embedded stack of its own (like the test fixtures). Each
order is a SELL from a seller with verified shares (the heaviest validation path: transfer
rules, a share reservation, the per-security lock, matching, outbox events, the
`order-{id}` workflow start). The baseline starts a trivial workflow by name on a task
queue without a worker: the cost of `client.start_workflow` alone, at the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
from temporalio.client import Client

from bench.stack import bench_stack, cpu_report
from pap.cli import UP_API_WORKERS
from pap.db import create_engine, create_session_factory
from services.identity.permissions import Role
from services.identity.tokens import KeyRing, Principal
from temporal.client import connect
from tests.market_support import new_security, verified_lot


async def measure(clients: int, total: int, call: Callable[[int], Awaitable[None]]) -> tuple[float, list[float]]:
    """Run `total` calls from `clients` concurrent loops; returns (calls per second, latencies in ms)."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def client_loop() -> None:
        for i in counter:
            start = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - start) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return total / (time.perf_counter() - began), latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def report(name: str, rate: float, latencies: list[float]) -> None:
    print(f"{name:<22} {rate:8.1f}/s   p50 {pct(latencies, 50):7.1f} ms   p99 {pct(latencies, 99):7.1f} ms")


async def run(args: argparse.Namespace) -> None:
    async with bench_stack(args.stack, args.api_workers) as running:
        settings, api_url = running.settings, running.api_url
        keyring = KeyRing.load(settings.state_dir / "keys", settings.jwt_private_key_file)
        engine = create_engine(settings.require("database_url"), pool_size=5)
        sessions = create_session_factory(engine)
        per_seller = 10
        sellers: list[tuple[uuid.UUID, dict[str, str]]] = []
        securities = [(await new_security(sessions))[1] for _ in range(args.securities)]
        for i in range(max(args.orders // per_seller, 1) + 1):
            seller = uuid.uuid4()
            await verified_lot(sessions, seller, securities[i % len(securities)], 10 * per_seller)
            token = keyring.issue(Principal(user_id=seller, roles=frozenset({Role.INVESTOR}), mfa=False))
            sellers.append((seller, {"Authorization": f"Bearer {token}"}))
        await engine.dispose()
        temporal: Client = await connect(settings.require("temporal_address"), settings.temporal_namespace)

        async with httpx.AsyncClient(base_url=api_url, timeout=60) as api:

            async def place(i: int) -> None:
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

            await measure(4, 20, start_raw)  # warm-up (connections, caches)
            cpu_start = running.cpu_seconds()
            baseline, base_lat = await measure(args.clients, args.orders, start_raw)
            cpu_baseline = running.cpu_seconds()
            orders, order_lat = await measure(args.clients, args.orders, place)
            cpu_orders = running.cpu_seconds()
        print(f"{args.orders} calls, {args.clients} concurrent clients, {args.securities} securities")
        report("raw start_workflow", baseline, base_lat)
        report("POST /v1/orders", orders, order_lat)
        print(f"ratio orders/baseline  {orders / baseline:.2f} (target >= 0.5)")
        print("baseline " + cpu_report(cpu_start, cpu_baseline, args.orders, "start"))
        print("orders   " + cpu_report(cpu_baseline, cpu_orders, args.orders, "order"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--securities", type=int, default=4)
    parser.add_argument(
        "--api-workers", type=int, default=UP_API_WORKERS, help="API processes of the embedded stack (as `pap up`)"
    )
    parser.add_argument("--stack", help="use a running stack (.pap/stack.json) instead of starting one")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
