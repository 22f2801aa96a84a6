"""An order-shaped Temporal workflow with no domain work: started, then waiting (a resting GTC order).

`bench.orders` runs it as a second reference next to the bare start: it adds what every
`order-{id}` workflow costs the Temporal server beyond the start request, its first
workflow task (dispatch to a worker, completion, history), which no order can skip.
"""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="BenchRestingOrder")
class BenchRestingOrder:
    @workflow.run
    async def run(self, order: dict[str, int]) -> None:
        await workflow.wait_condition(lambda: False)  # rests until the bench's server goes away
