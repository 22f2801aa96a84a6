"""Signed access tokens: short-lived EdDSA (Ed25519) JWTs with a `kid`, verified against a key ring.

The newest key signs; older keys keep verifying until they are retired, and all
public keys are published as a JWKS. In development the ring lives under the
state folder (created on first use); in production the signing key comes from
`PAP_JWT_PRIVATE_KEY_FILE`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from services.errors import Unauthenticated
from services.identity.permissions import Role

ALGORITHM = "Ed25519"
ISSUER = "https://pap.dev"
AUDIENCE = "pap-api"
ACCESS_TOKEN_TTL_SECONDS = 900
MFA_CHALLENGE_AUDIENCE = "pap-mfa-login"
MFA_CHALLENGE_TTL_SECONDS = 300
PASSWORD_RESET_AUDIENCE = "pap-password-reset"
KEY_FILE_PREFIX = "jwt-"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the verified content of an access token."""

    user_id: uuid.UUID
    roles: frozenset[Role]
    session_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    mfa: bool = False
    token_id: str = ""
    expires_at: int = 0

    def has_role(self, *roles: Role) -> bool:
        return bool(self.roles & set(roles))


@dataclass
class KeyRing:
    """Signing keys, newest last; every key verifies."""

    keys: list[OKPKey] = field(default_factory=list)
    _verifying: tuple[tuple[int, ...], KeySet] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def signing_key(self) -> OKPKey:
        return self.keys[-1]

    def rotate(self) -> OKPKey:
        key = OKPKey.generate_key("Ed25519", parameters={"use": "sig", "alg": ALGORITHM})
        self.keys.append(key)
        return key

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {**key.as_dict(private=False), "kid": key.thumbprint(), "alg": ALGORITHM, "use": "sig"}
                for key in self.keys
            ]
        }

    def _key_set(self) -> KeySet:
        """The public verifying keys with their `kid`s, rebuilt only when the ring's keys change (hot path)."""
        identity = tuple(id(key) for key in self.keys)
        if self._verifying is not None and self._verifying[0] == identity:
            return self._verifying[1]
        keys: list[Any] = []
        for key in self.keys:
            data = key.as_dict(private=False)
            data["kid"] = key.thumbprint()
            keys.append(OKPKey.import_key(data))
        key_set = KeySet(keys)
        self._verifying = (identity, key_set)
        return key_set

    @classmethod
    def load(cls, folder: Path, private_key_file: Path | None = None) -> KeyRing:
        """Keys from `jwt-*.pem` in `folder` (oldest first) plus `private_key_file`; one is created when none exist.

        The folder is shared with other keys of the platform (the documents' signing key), hence the prefix.
        """
        ring = cls()
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.glob(f"{KEY_FILE_PREFIX}*.pem")):
            ring.keys.append(OKPKey.import_key(path.read_bytes()))
        if private_key_file is not None:
            ring.keys.append(OKPKey.import_key(private_key_file.read_bytes()))
        if not ring.keys:
            key = ring.rotate()
            path = folder / f"{KEY_FILE_PREFIX}{int(time.time())}.pem"
            path.write_bytes(key.as_pem(private=True))
            path.chmod(0o600)
        return ring

    def issue(self, principal: Principal, *, ttl: int = ACCESS_TOKEN_TTL_SECONDS, now: int | None = None) -> str:
        issued_at = int(time.time()) if now is None else now
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(principal.user_id),
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + ttl,
            "jti": uuid.uuid4().hex,
            "roles": sorted(principal.roles),
            "mfa": principal.mfa,
        }
        if principal.session_id:
            claims["sid"] = str(principal.session_id)
        if principal.company_id:
            claims["company_id"] = str(principal.company_id)
        return self._sign(claims)

    def verify(self, token: str, *, now: int | None = None) -> Principal:
        """The principal of a valid token; `Unauthenticated` for anything else (bad signature, alg, claims)."""
        try:
            claims = self._claims(token, AUDIENCE, now, essential=("jti",))
            return Principal(
                user_id=uuid.UUID(claims["sub"]),
                roles=frozenset(Role(r) for r in claims.get("roles", [])),
                session_id=uuid.UUID(claims["sid"]) if claims.get("sid") else None,
                company_id=uuid.UUID(claims["company_id"]) if claims.get("company_id") else None,
                mfa=bool(claims.get("mfa", False)),
                token_id=str(claims["jti"]),
                expires_at=int(claims["exp"]),
            )
        except (JoseError, ValueError, KeyError, TypeError) as error:
            raise Unauthenticated("The access token is invalid or expired.") from error

    def issue_mfa_challenge(self, user_id: uuid.UUID, email: str, *, now: int | None = None) -> str:
        """Proof that `user_id` (`email`) just gave the right password, for the web login's one-time-code step.

        Its own audience, so it is never an access token; short-lived, so the password is never
        carried to the second step.
        """
        issued_at = int(time.time()) if now is None else now
        claims = {
            "iss": ISSUER,
            "aud": MFA_CHALLENGE_AUDIENCE,
            "sub": str(user_id),
            "email": email,
            "iat": issued_at,
            "exp": issued_at + MFA_CHALLENGE_TTL_SECONDS,
        }
        return self._sign(claims)

    def verify_mfa_challenge(self, token: str, *, now: int | None = None) -> tuple[uuid.UUID, str]:
        """The user (id, email) a valid challenge was issued to; `Unauthenticated` for anything else."""
        try:
            claims = self._claims(token, MFA_CHALLENGE_AUDIENCE, now)
            return uuid.UUID(claims["sub"]), str(claims["email"])
        except (JoseError, ValueError, KeyError, TypeError) as error:
            raise Unauthenticated("The login step has expired: enter your password again.") from error

    def issue_password_reset(self, reset_id: uuid.UUID, user_id: uuid.UUID, expires_at: datetime) -> str:
        """The token of an emailed reset link: it names the reset (which works once) and expires with it.

        Its own audience, so it is never an access token; minted when the email is sent, so the
        secret never sits in the database or on the event bus.
        """
        issued_at = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": PASSWORD_RESET_AUDIENCE,
            "sub": str(user_id),
            "jti": str(reset_id),
            "iat": issued_at,
            "exp": int(expires_at.timestamp()),
        }
        return self._sign(claims)

    def verify_password_reset(self, token: str, *, now: int | None = None) -> tuple[uuid.UUID, uuid.UUID]:
        """(reset id, user id) of a valid reset token; `Unauthenticated` for anything else."""
        try:
            claims = self._claims(token, PASSWORD_RESET_AUDIENCE, now, essential=("jti",))
            return uuid.UUID(claims["jti"]), uuid.UUID(claims["sub"])
        except (JoseError, ValueError, KeyError, TypeError) as error:
            raise Unauthenticated("The reset link is invalid or expired.") from error

    def _sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": ALGORITHM, "kid": self.signing_key.thumbprint(), "typ": "JWT"}
        return jwt.encode(header, claims, self.signing_key, algorithms=[ALGORITHM])

    def _claims(self, token: str, audience: str, now: int | None, *, essential: tuple[str, ...] = ()) -> dict[str, Any]:
        """The claims of a token signed by this ring for `audience`, unexpired, with `sub` and `essential`."""
        decoded = jwt.decode(token, self._key_set(), algorithms=[ALGORITHM])
        required: dict[str, Any] = {name: {"essential": True} for name in ("exp", "sub", *essential)}
        jwt.JWTClaimsRegistry(
            now=now,
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": audience},
            **required,
        ).validate(decoded.claims)
        return decoded.claims
