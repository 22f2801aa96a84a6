"""Access tokens: issued, verified, and refused when forged, expired or signed with another key."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest

from services.errors import Unauthenticated
from services.identity.permissions import Permission, Role, permissions_of
from services.identity.tokens import KeyRing, Principal


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing.load(tmp_path / "keys")


def principal(*roles: Role) -> Principal:
    return Principal(user_id=uuid.uuid4(), roles=frozenset(roles or {Role.INVESTOR}))


def test_issued_token_verifies_to_the_same_principal(ring: KeyRing) -> None:
    me = principal(Role.INVESTOR, Role.ISSUER)
    verified = ring.verify(ring.issue(me))
    assert verified.user_id == me.user_id
    assert verified.roles == me.roles


def test_expired_token_is_refused(ring: KeyRing) -> None:
    token = ring.issue(principal(), ttl=60, now=int(time.time()) - 3600)
    with pytest.raises(Unauthenticated):
        ring.verify(token)


def test_token_from_another_key_is_refused(ring: KeyRing, tmp_path: Path) -> None:
    other = KeyRing.load(tmp_path / "other")
    with pytest.raises(Unauthenticated):
        ring.verify(other.issue(principal()))


def test_alg_none_and_tampered_claims_are_refused(ring: KeyRing) -> None:
    token = ring.issue(principal())
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["admin"]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthenticated):
        ring.verify(f"{header}.{forged_payload}.{signature}")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    with pytest.raises(Unauthenticated):
        ring.verify(f"{none_header}.{forged_payload}.")


def test_rotated_ring_still_verifies_tokens_of_the_old_key(ring: KeyRing) -> None:
    old_token = ring.issue(principal())
    ring.rotate()
    new_token = ring.issue(principal())
    assert ring.verify(old_token) and ring.verify(new_token)
    assert len(ring.jwks()["keys"]) == 2
    assert all("d" not in key for key in ring.jwks()["keys"])


def test_roles_map_to_permissions_in_one_place() -> None:
    assert Permission.ORDERS_PLACE in permissions_of({Role.INVESTOR})
    assert Permission.USERS_MANAGE not in permissions_of({Role.INVESTOR, Role.ISSUER})
    assert Permission.USERS_MANAGE in permissions_of({Role.ADMIN})


def test_the_ring_ignores_other_keys_kept_in_the_same_folder(tmp_path: Path) -> None:
    from services.documents.pades import load_signing_key

    load_signing_key(tmp_path / "keys")  # the documents' P-256 signing key lives in the same folder
    first = KeyRing.load(tmp_path / "keys")
    again = KeyRing.load(tmp_path / "keys")
    assert len(again.keys) == 1
    assert again.verify(first.issue(principal())).roles == frozenset({Role.INVESTOR})


def test_an_mfa_challenge_names_its_user_expires_and_is_never_an_access_token(ring: KeyRing) -> None:
    user_id = uuid.uuid4()
    challenge = ring.issue_mfa_challenge(user_id, "ada@example.com")
    assert ring.verify_mfa_challenge(challenge) == (user_id, "ada@example.com")
    with pytest.raises(Unauthenticated):
        ring.verify(challenge)  # another audience: it opens no API
    with pytest.raises(Unauthenticated):
        ring.verify_mfa_challenge(ring.issue(Principal(user_id=user_id, roles=frozenset({Role.INVESTOR}))))
    with pytest.raises(Unauthenticated):
        ring.verify_mfa_challenge(challenge, now=int(time.time()) + 301)
