"""Timing shared by the benchmarks: concurrent runs, percentiles, and interleaved baseline/platform rounds.

This VM's speed drifts by a third between minutes (other tenants on the host), so a
single baseline followed by a single platform run can compare two different machines.
Rounds alternate the two and the ratio reported is the median of the per-round ratios.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Sample:
    rate: float
    """Runs per second."""
    latencies: list[float]
    """Seconds per run."""


@dataclass
class Side:
    """Every round of one side (baseline or platform) and the CPU its components spent."""

    samples: list[Sample] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds per component, summed over the rounds."""

    @property
    def runs(self) -> int:
        return sum(len(sample.latencies) for sample in self.samples)

    @property
    def rate(self) -> float:
        return statistics.median(sample.rate for sample in self.samples)

    @property
    def cores_busy(self) -> float:
        """Cores the components kept busy at the median rate (CPU per run, tail included, times runs/s)."""
        return sum(self.cpu.values()) / self.runs * self.rate if self.runs else 0.0

    @property
    def latencies(self) -> list[float]:
        return [latency for sample in self.samples for latency in sample.latencies]


async def measure(concurrency: int, total: int, run_one: Callable[[int], Awaitable[None]]) -> Sample:
    """`total` runs of `run_one` from `concurrency` loops."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def loop() -> None:
        for i in counter:
            began = time.perf_counter()
            await run_one(i)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return Sample(total / (time.perf_counter() - began), latencies)


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def settle(cpu_seconds: Callable[[], dict[str, float]], *, quiet: float = 0.1, limit: float = 60.0) -> None:
    """Wait until the components together use under `quiet` of a core: the round's asynchronous tail
    (relay, consumers, workflow tasks) is done, so it is charged to its own round and not the next one."""
    deadline = time.monotonic() + limit
    last = sum(cpu_seconds().values())
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)  # sampling interval of a CPU meter, not synchronisation
        now = sum(cpu_seconds().values())
        if now - last < quiet * 0.5:
            return
        last = now


async def record(side: Side, run: Callable[[], Awaitable[Sample]], cpu_seconds: Callable[[], dict[str, float]]) -> None:
    """Run one round of `side` and add its sample and its components' CPU, tail included."""
    before = cpu_seconds()
    side.samples.append(await run())
    await settle(cpu_seconds)
    after = cpu_seconds()
    for name, seconds in after.items():
        side.cpu[name] = side.cpu.get(name, 0.0) + seconds - before.get(name, 0.0)


async def compare(
    rounds: int,
    baseline: Callable[[], Awaitable[Sample]],
    platform: Callable[[], Awaitable[Sample]],
    cpu_seconds: Callable[[], dict[str, float]],
) -> tuple[Side, Side]:
    """Alternate `rounds` baseline and platform rounds; returns (baseline, platform)."""
    base, plat = Side(), Side()
    for _ in range(rounds):
        await record(base, baseline, cpu_seconds)
        await record(plat, platform, cpu_seconds)
    return base, plat


def ratio_report(base: Side, plat: Side, what: str, target: float) -> str:
    ratios = [p.rate / b.rate for b, p in zip(base.samples, plat.samples, strict=True)]
    rounds = ", ".join(f"{r:.2f}" for r in ratios)
    return f"ratio {what}  {statistics.median(ratios):.2f} (median of rounds: {rounds}) (target >= {target})"


def cpu_report(spent: dict[str, float], units: int, unit: str) -> str:
    """Where the CPU went, in milliseconds per unit (busiest first)."""
    if not spent:
        return "CPU per component: unknown with --stack (start an embedded stack to see it)"
    per_unit = {name: seconds * 1000 / units for name, seconds in spent.items()}
    parts = [f"{name} {ms:.1f}" for name, ms in sorted(per_unit.items(), key=lambda item: -item[1]) if ms >= 0.05]
    return f"CPU ms per {unit}: " + ", ".join(parts) + f" (total {sum(per_unit.values()):.1f})"
