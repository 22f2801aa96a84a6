"""Holdings context: positions, the movement ledger, reservations and transfers. Other contexts call these."""

from services.holdings.conservation import check_position_caches, shares_conservation_report
from services.holdings.errors import (
    HoldingAlreadyDecided,
    HoldingNotFound,
    InsufficientShares,
    NotHoldingVerifier,
    ReservationConflict,
    ReservationNotFound,
    UnknownSecurity,
)
from services.holdings.positions import (
    available_shares,
    get_holding,
    get_holding_for,
    list_holdings,
    list_movements,
    reject_holding,
    submit_holding,
    verified_shares_of_company,
    verify_holding,
)
from services.holdings.queue import pending_verifications
from services.holdings.reservations import get_reservation, move_reservation, release_reservation, reserve_shares
from services.holdings.transfers import consume_reservation_and_transfer, get_transfer

__all__ = [
    "HoldingAlreadyDecided",
    "HoldingNotFound",
    "InsufficientShares",
    "NotHoldingVerifier",
    "ReservationConflict",
    "ReservationNotFound",
    "UnknownSecurity",
    "available_shares",
    "check_position_caches",
    "consume_reservation_and_transfer",
    "get_holding",
    "get_holding_for",
    "get_reservation",
    "get_transfer",
    "list_holdings",
    "list_movements",
    "move_reservation",
    "pending_verifications",
    "reject_holding",
    "release_reservation",
    "reserve_shares",
    "shares_conservation_report",
    "submit_holding",
    "verified_shares_of_company",
    "verify_holding",
]
