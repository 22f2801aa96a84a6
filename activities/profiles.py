"""Activities of the KYC and accreditation workflows: small, idempotent adapters over the profiles services."""

from __future__ import annotations

from temporalio import activity

from models.profiles import (
    AccreditationDecisionInput,
    AccreditationExpireInput,
    KycCheckRequest,
    KycStatusChange,
)
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from services import profiles
from services.profiles.kyc_provider import HttpKycProvider, KycProvider


def configured_provider(settings: Settings) -> tuple[KycProvider, str]:
    """The configured KYC provider (the sandbox this API serves when none is), and the webhook URL it calls back."""
    base = settings.public_url
    provider_url = settings.kyc_provider_url or f"{base}/v1/sandbox/kyc"
    return HttpKycProvider(provider_url), f"{base}/v1/profiles/kyc/webhook"


class ProfilesActivities:
    def __init__(self, sessions: SessionFactory, settings: Settings, provider: KycProvider | None = None) -> None:
        self.sessions = sessions
        default_provider, self.callback_url = configured_provider(settings)
        self.provider = provider or default_provider

    @activity.defn(name="profiles.kyc_request_check")
    async def kyc_request_check(self, params: KycCheckRequest) -> str:
        """Idempotent at the provider (Idempotency-Key = check id), so a retry never submits twice."""
        ref = await self.provider.request_check(params, callback_url=self.callback_url)
        async with transaction(self.sessions) as session:
            await profiles.set_provider_ref(session, params.check_id, ref)
        return ref

    @activity.defn(name="profiles.kyc_set_status")
    async def kyc_set_status(self, params: KycStatusChange) -> str:
        async with transaction(self.sessions) as session:
            check = await profiles.set_kyc_status(session, params)
            return check.status

    @activity.defn(name="profiles.accreditation_record_decision")
    async def accreditation_record_decision(self, params: AccreditationDecisionInput) -> str:
        async with transaction(self.sessions) as session:
            row = await profiles.record_decision(session, params)
            return row.status

    @activity.defn(name="profiles.accreditation_expire")
    async def accreditation_expire(self, params: AccreditationExpireInput) -> str:
        async with transaction(self.sessions) as session:
            row = await profiles.expire_accreditation(session, params.accreditation_id)
            return row.status
