"""Errors of the deals context."""

from services.errors import Conflict, InvalidInput


class DealStageConflict(Conflict):
    type = "deal-stage-conflict"
    title = "The deal is not at a stage that allows this"


class InvalidDeal(InvalidInput):
    type = "invalid-deal"
    title = "The deal cannot be created"
