"""Companies context: issuers, securities, funding rounds, transfer policy. Other contexts call these."""

from services.companies.errors import (
    BelowMinimumTransfer,
    CompanyNotFound,
    LockUpActive,
    SecurityNotFound,
    SecurityNotTradable,
    TransferBlackout,
    TransferNotAllowed,
)
from services.companies.queries import (
    get_company,
    get_security,
    get_security_and_company,
    list_companies,
    load_company,
    tradable_securities,
    transfer_policy_for_security,
)
from services.companies.registry import (
    add_funding_round,
    create_company,
    create_security,
    update_company,
    update_security,
)
from services.companies.transfer_rules import check_transfer_allowed, trading_policy

__all__ = [
    "BelowMinimumTransfer",
    "CompanyNotFound",
    "LockUpActive",
    "SecurityNotFound",
    "SecurityNotTradable",
    "TransferBlackout",
    "TransferNotAllowed",
    "add_funding_round",
    "check_transfer_allowed",
    "create_company",
    "create_security",
    "get_company",
    "get_security",
    "get_security_and_company",
    "list_companies",
    "load_company",
    "tradable_securities",
    "trading_policy",
    "transfer_policy_for_security",
    "update_company",
    "update_security",
]
