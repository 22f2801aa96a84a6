"""A server-rendered price chart: an inline SVG polyline of daily closes (no JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from models.pricing import Candle

WIDTH, HEIGHT, PAD = 600, 200, 24


@dataclass(frozen=True)
class Chart:
    points: str
    low: str
    high: str
    first: str
    last: str
    count: int
    width: int = WIDTH
    height: int = HEIGHT


def price_chart(candles: list[Candle]) -> Chart | None:
    """Scale closes into the view box; None when there is nothing to draw."""
    if not candles:
        return None
    closes = [Decimal(c.close) for c in candles]
    low, high = min(closes), max(closes)
    span = high - low or Decimal(1)
    step = (WIDTH - 2 * PAD) / max(len(closes) - 1, 1)
    points = []
    for index, close in enumerate(closes):
        x = PAD + step * index
        y = HEIGHT - PAD - float((close - low) / span) * (HEIGHT - 2 * PAD)
        points.append(f"{x:.1f},{y:.1f}")
    if len(points) == 1:
        points.append(f"{WIDTH - PAD:.1f},{points[0].split(',')[1]}")
    return Chart(
        points=" ".join(points),
        low=format(low, "f"),
        high=format(high, "f"),
        first=candles[0].t.date().isoformat(),
        last=candles[-1].t.date().isoformat(),
        count=len(candles),
    )
