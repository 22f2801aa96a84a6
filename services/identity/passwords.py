"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

import asyncio
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.errors import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 1024

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _hasher.hash("not-a-real-password-used-for-timing")

COMMON_PASSWORDS = frozenset(
    {
        "password",
        "123456",
        "12345678",
        "123456789",
        "1234567890",
        "qwerty",
        "qwertyuiop",
        "letmein",
        "welcome",
        "iloveyou",
        "admin",
        "administrator",
        "monkey",
        "dragon",
        "football",
        "baseball",
        "sunshine",
        "princess",
        "trustno1",
        "abc123",
        "passw0rd",
        "changeme",
        "secret",
        "starwars",
        "whatever",
        "superman",
        "master",
    }
)
"""A small built-in list of the most common breached passwords and stems."""


class WeakPassword(InvalidInput):
    type = "weak-password"
    title = "The password does not meet the policy"


def _normal(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


def check_policy(password: str, *, email: str, field: str = "password") -> None:
    """Raise `WeakPassword` with field errors: too short, a common pattern, or containing the email."""
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"must be at most {MAX_LENGTH} characters")
    lowered = password.lower()
    local = email.split("@", 1)[0].lower()
    if email.lower() in lowered or (len(local) >= 3 and local in lowered):
        problems.append("must not contain your email address")
    normal = _normal(password)
    stripped = re.sub(r"\d+$", "", normal)
    if (
        normal in COMMON_PASSWORDS
        or stripped in COMMON_PASSWORDS
        or any(normal.startswith(c) and len(c) >= 6 and len(normal) - len(c) <= 6 for c in COMMON_PASSWORDS)
        or len(set(password)) <= 3
        or normal in "01234567890123456789"
        or normal in "abcdefghijklmnopqrstuvwxyz"
    ):
        problems.append("is too common or too predictable")
    if problems:
        raise WeakPassword(
            "The password " + "; ".join(problems) + ".",
            errors=[{"pointer": f"/{field}", "field": field, "detail": p, "code": "weak_password"} for p in problems],
        )


async def hash_password(password: str) -> str:
    """Argon2 takes a core for a good part of a second by design: in a thread, so the API keeps serving."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-time argon2 verification (in a thread); an unknown user checks a dummy hash: same timing."""
    return await asyncio.to_thread(_verify, password_hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
