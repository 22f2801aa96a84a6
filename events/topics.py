"""The Kafka topics of the platform, one per bounded context that publishes, plus the dead-letter topic.

Deployments declare exactly these (deploy/k8s/extras/kafka-topics.yaml, docker-compose's kafka-init):
a topic the relay had to create itself would get one replica, which a cluster requiring two in sync refuses."""

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
    DIAGNOSTICS,
    DEAD_LETTER,
)
