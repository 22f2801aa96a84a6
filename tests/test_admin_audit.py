"""The audit trail: hash-chained, append-only at the database level, tamper detection; bootstrap admin."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pap.db import SessionFactory, transaction
from services import admin, identity
from services.identity.permissions import Role
from tests.factories import register_and_login

Headers = Callable[..., dict[str, str]]


async def test_audit_entries_chain_and_verify(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    entity = uuid.uuid4()
    async with transaction(sessions) as session:
        first = await admin.record_audit(
            session, actor_id=None, action="test.one", entity_type="thing", entity_id=entity, data={"n": 1}
        )
        second = await admin.record_audit(
            session, actor_id=None, action="test.two", entity_type="thing", entity_id=entity, data={"n": 2.5}
        )
    assert second.prev_hash == first.hash
    auditor = token_for(uuid.uuid4(), Role.ADMIN)
    verified = (await api.get("/v1/admin/audit/verify", headers=auditor)).json()
    assert verified["ok"] is True and verified["entries"] >= 2
    page = (await api.get(f"/v1/admin/audit?entity_id={entity}&limit=1", headers=auditor)).json()
    assert [i["action"] for i in page["items"]] == ["test.two"] and page["next_cursor"]
    rest = (await api.get(f"/v1/admin/audit?entity_id={entity}&cursor={page['next_cursor']}", headers=auditor)).json()
    assert [i["action"] for i in rest["items"]] == ["test.one"]


async def test_audit_table_refuses_update_and_delete(sessions: SessionFactory) -> None:
    async with transaction(sessions) as session:
        await admin.record_audit(session, actor_id=None, action="test.keep", entity_type="thing", entity_id=None)
    for statement in ("UPDATE admin.audit_entry SET action = 'x'", "DELETE FROM admin.audit_entry"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with transaction(sessions) as session:
                await session.execute(text(statement))


async def test_tampering_is_detected_at_the_altered_entry(
    api: httpx.AsyncClient, token_for: Headers, sessions: SessionFactory
) -> None:
    async with transaction(sessions) as session:
        entry = await admin.record_audit(
            session,
            actor_id=None,
            action="test.tamper",
            entity_type="thing",
            entity_id=uuid.uuid4(),
            data={"amount": "10.00"},
        )
    auditor = token_for(uuid.uuid4(), Role.COMPLIANCE)
    alter = "UPDATE admin.audit_entry SET data = CAST(:data AS jsonb) WHERE seq = :seq"
    async with transaction(sessions) as session:
        await session.execute(text("ALTER TABLE admin.audit_entry DISABLE TRIGGER audit_entry_append_only"))
        await session.execute(text(alter), {"data": '{"amount": "1000000.00"}', "seq": entry.seq})
        await session.execute(text("ALTER TABLE admin.audit_entry ENABLE TRIGGER audit_entry_append_only"))
    try:
        broken = (await api.get("/v1/admin/audit/verify", headers=auditor)).json()
        assert broken["ok"] is False and broken["broken_at_seq"] == entry.seq
    finally:  # put the row back so the shared chain verifies again for every other test
        async with transaction(sessions) as session:
            await session.execute(text("ALTER TABLE admin.audit_entry DISABLE TRIGGER audit_entry_append_only"))
            await session.execute(text(alter), {"data": '{"amount": "10.00"}', "seq": entry.seq})
            await session.execute(text("ALTER TABLE admin.audit_entry ENABLE TRIGGER audit_entry_append_only"))
    assert (await api.get("/v1/admin/audit/verify", headers=auditor)).json()["ok"] is True


async def test_bootstrap_admin_is_created_once_when_no_admin_exists(sessions: SessionFactory) -> None:
    email = f"root-{uuid.uuid4().hex[:8]}@example.com"
    async with sessions() as session, session.begin():
        # Pretend no admin exists inside this transaction, which is rolled back at the end.
        await session.execute(text("UPDATE identity.user SET roles = array_remove(roles, 'admin')"))
        created = await identity.ensure_bootstrap_admin(session, email=email, password="Bootstrap-Pass-123!")
        assert created is not None and "admin" in created.roles
        assert await identity.ensure_bootstrap_admin(session, email=email, password="Bootstrap-Pass-123!") is None
        await session.rollback()


async def test_investor_cannot_read_the_audit_trail(api: httpx.AsyncClient) -> None:
    user = await register_and_login(api)
    assert (await api.get("/v1/admin/audit", headers=user.headers)).status_code == 403
    assert (await api.get("/v1/admin/audit/verify", headers=user.headers)).status_code == 403


async def _audited(api: httpx.AsyncClient, auditor: dict[str, str], entity_id: str) -> list[tuple[str, str | None]]:
    page = (await api.get(f"/v1/admin/audit?entity_id={entity_id}&limit=50", headers=auditor)).json()
    return [(item["action"], item["actor_id"]) for item in reversed(page["items"])]


async def test_company_changes_and_holding_decisions_are_audited_with_their_actor(
    api: httpx.AsyncClient, token_for: Headers
) -> None:
    """A transfer policy, a round price or a verified holding moves prices and tradable shares: each change
    names who made it in the tamper-evident trail."""
    admin_id, officer_id = uuid.uuid4(), uuid.uuid4()
    admin_headers = token_for(admin_id, Role.ADMIN, mfa=True)
    body = {
        "name": f"Audited {uuid.uuid4().hex[:8]}",
        "legal_name": "Audited, Inc.",
        "jurisdiction": "US-DE",
        "sector": "robotics",
        "fully_diluted_shares": 1_000_000,
    }
    company = (await api.post("/v1/companies", json=body, headers=admin_headers)).json()
    changed = await api.patch(
        f"/v1/companies/{company['id']}", json={"transfer_policy": {"rofr_days": 10}}, headers=admin_headers
    )
    assert changed.status_code == 200, changed.text
    security = await api.post(
        f"/v1/companies/{company['id']}/securities",
        json={"class_name": "Common", "kind": "common", "tradable": True},
        headers=admin_headers,
    )
    assert security.status_code == 201, security.text
    assert await _audited(api, admin_headers, company["id"]) == [
        ("companies.company.created", str(admin_id)),
        ("companies.company.updated", str(admin_id)),
    ]
    assert await _audited(api, admin_headers, security.json()["id"]) == [("companies.security.created", str(admin_id))]

    investor = token_for(uuid.uuid4(), Role.INVESTOR)
    declared = await api.post(
        "/v1/holdings", json={"security_id": security.json()["id"], "quantity": 500}, headers=investor
    )
    officer = token_for(officer_id, Role.COMPLIANCE, mfa=True)
    verified = await api.post(f"/v1/holdings/{declared.json()['id']}/verify", headers=officer)
    assert verified.status_code == 200, verified.text
    assert await _audited(api, admin_headers, declared.json()["id"]) == [("holdings.holding.verified", str(officer_id))]
