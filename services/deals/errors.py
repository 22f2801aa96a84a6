"""Errors of the deals context."""

from services.errors import Conflict, Forbidden, InvalidInput


class DealStageConflict(Conflict):
    type = "deal-stage-conflict"
    title = "The deal is not at a stage that allows this"


class PartyToTheDeal(Forbidden):
    type = "party-to-the-deal"
    title = "A party to the deal cannot act for the issuer, the platform or compliance on it"


class InvalidDeal(InvalidInput):
    type = "invalid-deal"
    title = "The deal cannot be created"
