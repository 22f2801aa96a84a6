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

RESET_WINDOW_SECONDS = 60 * 60
MAX_RESETS_PER_ACCOUNT = 3
MAX_RESETS_PER_IP = 20
RESET_ACCOUNT_KEY = "pap:identity:reset:account:{}"
RESET_IP_KEY = "pap:identity:reset:ip:{}"
REGISTRATION_IP_KEY = "pap:identity:register:ip:{}"

AttemptResult = Literal["failed", "signed_in", "undecided"]


class LoginThrottled(TooManyRequests):
    type = "login-throttled"
    title = "Too many failed sign-in attempts"


class ResetThrottled(TooManyRequests):
    type = "password-reset-throttled"
    title = "Too many password reset requests"


class RegistrationThrottled(TooManyRequests):
    type = "registration-throttled"
    title = "Too many sign-ups from this address"


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


async def forgive_login_failures(redis: Redis, *, email: str) -> None:
    """Clear the account's failed sign-ins (its owner just proved who they are another way)."""
    await redis.delete(_account(email))


async def take_reset_slot(redis: Redis, *, email: str, ip: str) -> bool:
    """Count a password reset request: 429 when this address asked too often (whatever the account);
    False, quietly, when this account has had its links for the hour, so nobody can flood an inbox
    and the answer still does not tell whether the account exists."""
    ip_count, ip_ttl = await _count(redis, RESET_IP_KEY.format(ip))
    if ip_count > MAX_RESETS_PER_IP:
        raise ResetThrottled("Too many reset requests from this address; try again later.", retry_after=ip_ttl)
    account_count, _ = await _count(redis, RESET_ACCOUNT_KEY.format(hashlib.sha256(email.encode()).hexdigest()))
    return account_count <= MAX_RESETS_PER_ACCOUNT


async def take_registration_slot(redis: Redis, *, ip: str, per_hour: int) -> None:
    """Count a sign-up attempt from this address (new email or not); 429 past `per_hour`, so nobody scripts
    accounts by the thousand or probes which emails exist."""
    count, ttl = await _count(redis, REGISTRATION_IP_KEY.format(ip))
    if count > per_hour:
        raise RegistrationThrottled("Too many sign-ups from this address; try again later.", retry_after=ttl)


async def _count(redis: Redis, key: str) -> tuple[int, int]:
    """Add one to a counter whose window starts at its first use; (count, seconds left in the window)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, 0, ex=RESET_WINDOW_SECONDS, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = await pipe.execute()
    return int(count), max(int(ttl), 1)
