"""`GET /v1/admin/reconciliation`: the ledger's trial balance and share conservation (admin, compliance)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth import require
from api.deps import SessionsDep
from pap.db import snapshot
from services.admin.reconciliation import ReconciliationReport, reconciliation_report
from services.identity.permissions import Permission
from services.identity.tokens import Principal

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/reconciliation")
async def get_reconciliation(
    sessions: SessionsDep, _: Annotated[Principal, Depends(require(Permission.AUDIT_READ))]
) -> ReconciliationReport:
    """Every figure from one snapshot: a trade settling mid-report cannot show as a discrepancy."""
    async with snapshot(sessions) as session:
        return await reconciliation_report(session)
