"""Pricing: trade prints, quotes and round prices from events; OHLC history, metrics and a reference price.

`PricingIngest.handle` is the `pricing` consumer handler; reads are pure
functions of stored rows (see `services.pricing.reference` for the methodology).
"""

from services.pricing.backtest import backtest
from services.pricing.cache import cached, invalidate
from services.pricing.history import Interval, bucket_start, candles, last_trade, vwap
from services.pricing.ingest import HANDLED_TYPES, PricingIngest, ingest, parse_price
from services.pricing.metrics import company_metrics
from services.pricing.reference import METHOD, RULES, blend, reference_price
from services.pricing.retention import prune_quotes

__all__ = [
    "HANDLED_TYPES",
    "METHOD",
    "RULES",
    "Interval",
    "PricingIngest",
    "backtest",
    "blend",
    "bucket_start",
    "cached",
    "candles",
    "company_metrics",
    "ingest",
    "invalidate",
    "last_trade",
    "parse_price",
    "prune_quotes",
    "reference_price",
    "vwap",
]
