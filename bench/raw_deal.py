"""A deal-shaped Temporal workflow with no domain work: the baseline `bench.deals` compares against.

It runs the activities, timers, signals and Updates one brokered deal runs on its happy
path (record_stage x12, confirm_participants, generate_documents x2, create_funding,
release_escrow, transfer_shares, complete_orders = 18 activities; 5 timed waits; 4
signals; 2 Updates), but every activity returns at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

ACTIVITIES_PER_DEAL = 18
DOCUMENTS = 3


@activity.defn(name="bench.noop")
async def noop(step: str) -> str:
    """Nothing: the cost measured is Temporal's (schedule, dispatch, complete, history)."""
    return step


@workflow.defn(name="BenchDeal")
class BenchDeal:
    def __init__(self) -> None:
        self.stage = "created"
        self.signed = 0
        self.decided = False
        self.funded = False
        self.confirmed = False

    @workflow.run
    async def run(self, deal_id: str) -> str:
        await self._advance("created")
        await self._step("confirm_participants")
        await self._advance("participants_confirmed")
        await self._step("generate_documents")
        await self._advance("awaiting_issuer")
        await self._wait(lambda: self.signed >= 1, days=7)
        await self._step("record_stage")  # ROFR window started
        await self._wait(lambda: self.decided, days=30)
        await self._step("record_stage")  # issuer decision
        await self._step("generate_documents")
        await self._advance("documents_generated")
        await self._advance("awaiting_signatures")
        await self._wait(lambda: self.signed >= DOCUMENTS, days=7)
        await self._step("create_funding")
        await self._advance("awaiting_funding")
        await self._wait(lambda: self.funded, days=5)
        await self._step("record_stage")  # escrow funded
        await self._advance("settling")
        await self._wait(lambda: self.confirmed, days=10)
        for step in ("release_escrow", "transfer_shares", "complete_orders"):
            await self._step(step)
        await self._advance("closed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.stage

    async def _advance(self, stage: str) -> None:
        self.stage = stage
        workflow.upsert_memo({"summary": f"bench deal: {stage}"})
        await self._step("record_stage")

    async def _step(self, name: str) -> None:
        await workflow.execute_activity(
            noop,
            name,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )

    async def _wait(self, condition: Callable[[], bool], *, days: int) -> None:
        await workflow.wait_condition(condition, timeout=timedelta(days=days))

    @workflow.signal(name="document_signed")
    def document_signed(self) -> None:
        self.signed += 1

    @workflow.signal(name="payment_received")
    def payment_received(self) -> None:
        self.funded = True

    @workflow.update(name="issuer_decision")
    async def decide(self) -> str:
        await workflow.wait_condition(lambda: self.stage == "awaiting_issuer" and self.signed >= 1)
        self.decided = True
        return self.stage

    @workflow.update(name="confirm_settlement")
    async def confirm_settlement(self) -> str:
        await workflow.wait_condition(lambda: self.stage == "settling")
        self.confirmed = True
        await workflow.wait_condition(lambda: self.stage == "closed")
        return self.stage
