"""The Kafka topics of the platform, one per bounded context, plus the dead-letter topic."""

from __future__ import annotations

IDENTITY = "pap.identity"
PROFILES = "pap.profiles"
COMPANIES = "pap.companies"
MARKETPLACE = "pap.marketplace"
DEALS = "pap.deals"
DOCUMENTS = "pap.documents"
PAYMENTS = "pap.payments"
HOLDINGS = "pap.holdings"
PRICING = "pap.pricing"
NOTIFICATIONS = "pap.notifications"
ADMIN = "pap.admin"
DIAGNOSTICS = "pap.diagnostics"
DEAD_LETTER = "pap.dlq"

ALL_TOPICS = (
    IDENTITY,
    PROFILES,
    COMPANIES,
    MARKETPLACE,
    DEALS,
    DOCUMENTS,
    PAYMENTS,
    HOLDINGS,
    PRICING,
    NOTIFICATIONS,
    ADMIN,
    DIAGNOSTICS,
    DEAD_LETTER,
)
