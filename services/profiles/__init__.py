"""Profiles: investor/entity profiles, KYC/KYB, accreditation. Other contexts call `buyer_eligibility`."""

from services.profiles.accreditation import (
    check_reviewable,
    expire_accreditation,
    get_accreditation,
    list_accreditations,
    pending_accreditations,
    record_decision,
    submit_accreditation,
)
from services.profiles.kyc import (
    check_for_review,
    claim_webhook,
    kyc_workflow_id,
    list_kyc_reviews,
    set_kyc_status,
    set_provider_ref,
    submit_kyc,
)
from services.profiles.profile import get_profile, put_profile
from services.profiles.status import accreditation_status, buyer_eligibility, kyc_status, latest_kyc

__all__ = [
    "accreditation_status",
    "buyer_eligibility",
    "check_for_review",
    "check_reviewable",
    "claim_webhook",
    "expire_accreditation",
    "get_accreditation",
    "get_profile",
    "kyc_status",
    "kyc_workflow_id",
    "latest_kyc",
    "list_accreditations",
    "list_kyc_reviews",
    "pending_accreditations",
    "put_profile",
    "record_decision",
    "set_kyc_status",
    "set_provider_ref",
    "submit_accreditation",
    "submit_kyc",
]
