"""Login throttling in Redis: per-account and per-IP failure counters in a sliding-ish fixed window."""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from services.errors import TooManyRequests

WINDOW_SECONDS = 15 * 60
MAX_ACCOUNT_FAILURES = 5
MAX_IP_FAILURES = 20

ACCOUNT_KEY = "pap:identity:login-fail:account:{}"
IP_KEY = "pap:identity:login-fail:ip:{}"


class LoginThrottled(TooManyRequests):
    type = "login-throttled"
    title = "Too many failed sign-in attempts"


def _account(email: str) -> str:
    return ACCOUNT_KEY.format(hashlib.sha256(email.encode()).hexdigest())


def _ip(ip: str) -> str:
    return IP_KEY.format(ip)


async def check_login_allowed(redis: Redis, *, email: str, ip: str) -> None:
    """Raise 429 with Retry-After while the account or the IP is locked out."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(_account(email))
        pipe.ttl(_account(email))
        pipe.get(_ip(ip))
        pipe.ttl(_ip(ip))
        account_count, account_ttl, ip_count, ip_ttl = await pipe.execute()
    if int(account_count or 0) >= MAX_ACCOUNT_FAILURES:
        raise LoginThrottled(
            "Too many failed attempts for this account; try again later.", retry_after=max(int(account_ttl), 1)
        )
    if int(ip_count or 0) >= MAX_IP_FAILURES:
        raise LoginThrottled(
            "Too many failed attempts from this address; try again later.", retry_after=max(int(ip_ttl), 1)
        )


async def record_login_failure(redis: Redis, *, email: str, ip: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        for key in (_account(email), _ip(ip)):
            pipe.set(
                key, 0, ex=WINDOW_SECONDS, nx=True
            )  # the window starts at the first failure (Redis 6 has no EXPIRE NX)
            pipe.incr(key)
        await pipe.execute()


async def clear_account_failures(redis: Redis, *, email: str) -> None:
    """A successful sign-in resets the account counter (the IP counter keeps running)."""
    await redis.delete(_account(email))
