"""Login throttling in Redis: per-account and per-IP failure counters in a sliding-ish fixed window."""

from __future__ import annotations

import hashlib
from typing import Literal

from redis.asyncio import Redis

from services.errors import TooManyRequests

WINDOW_SECONDS = 15 * 60
MAX_ACCOUNT_FAILURES = 5
MAX_IP_FAILURES = 20

ACCOUNT_KEY = "pap:identity:login-fail:account:{}"
IP_KEY = "pap:identity:login-fail:ip:{}"

AttemptResult = Literal["failed", "signed_in", "undecided"]


class LoginThrottled(TooManyRequests):
    type = "login-throttled"
    title = "Too many failed sign-in attempts"


def _account(email: str) -> str:
    return ACCOUNT_KEY.format(hashlib.sha256(email.encode()).hexdigest())


def _ip(ip: str) -> str:
    return IP_KEY.format(ip)


async def reserve_login_attempt(redis: Redis, *, email: str, ip: str) -> None:
    """Take one of the account's attempts before the password or code is checked; 429 (Retry-After) past the limit.

    Taking the slot first, in one atomic step, is what stops a burst of parallel guesses:
    each takes a slot, so only the first few are ever checked. The address counts failures
    only (`settle_login_attempt`), so many people behind one address can sign in at once.
    """
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(_ip(ip))
        pipe.ttl(_ip(ip))
        ip_count, ip_ttl = await pipe.execute()
    if int(ip_count or 0) >= MAX_IP_FAILURES:
        raise LoginThrottled(
            "Too many failed attempts from this address; try again later.", retry_after=max(int(ip_ttl), 1)
        )
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(_account(email), 0, ex=WINDOW_SECONDS, nx=True)  # the window starts at the first attempt
        pipe.incr(_account(email))
        pipe.ttl(_account(email))
        _, account_count, account_ttl = await pipe.execute()
    if int(account_count) > MAX_ACCOUNT_FAILURES:
        raise LoginThrottled(
            "Too many failed attempts for this account; try again later.", retry_after=max(int(account_ttl), 1)
        )


async def settle_login_attempt(redis: Redis, *, email: str, ip: str, result: AttemptResult) -> None:
    """After a reserved attempt: a failure keeps the account's slot and counts against the address;
    signing in forgives the account's failures; anything else (a code is due next) gives the slot back."""
    async with redis.pipeline(transaction=True) as pipe:
        if result == "failed":
            pipe.set(_ip(ip), 0, ex=WINDOW_SECONDS, nx=True)
            pipe.incr(_ip(ip))
        elif result == "signed_in":
            pipe.delete(_account(email))
        else:
            pipe.set(_account(email), 0, ex=WINDOW_SECONDS, nx=True)  # never leave a counter without its expiry
            pipe.decr(_account(email))
        await pipe.execute()
