"""`pap ops ...` deal commands for ops and compliance: thin HTTP clients of the API, rendered with rich."""

from __future__ import annotations

import typer
from rich.table import Table

from pap.cli_api import ApiOption, TokenOption, call, err, out
from pap.cli_deals import print_cancelled


def register_ops_commands(ops: typer.Typer) -> None:
    """Add the deal commands to the existing `pap ops` group (which also holds `dlq`)."""

    @ops.command("stuck")
    def ops_stuck(token: str | None = TokenOption, api: str | None = ApiOption) -> None:
        """Open deals whose current stage is older than its SLA."""
        page = call("GET", "/v1/ops/deals/stuck", token=token, api=api)
        table = Table("deal", "stage", "since", "age (h)", "SLA (h)", "hold")
        for s in page["items"]:
            table.add_row(
                s["deal_id"],
                s["stage"],
                s["stage_since"][:19],
                f"{s['age_seconds'] / 3600:.1f}",
                f"{s['sla_seconds'] / 3600:.1f}",
                "yes" if s["on_hold"] else "",
            )
        out.print(table)
        err.print(f"{len(page['items'])} stuck deal(s)")

    @ops.command("history")
    def ops_history(
        deal_id: str,
        as_of: str | None = typer.Option(None, "--as-of", help="Only events at or before (ISO 8601)"),
        token: str | None = TokenOption,
        api: str | None = ApiOption,
    ) -> None:
        """Workflow history, audit log and timeline of a deal, merged in time order."""
        params = {"as_of": as_of} if as_of else {}
        history = call("GET", f"/v1/ops/deals/{deal_id}/history", token=token, api=api, params=params)
        table = Table("at", "source", "kind", "name", "detail")
        for e in history["events"]:
            table.add_row(e["at"][:23], e["source"], e["kind"], e.get("name") or "", (e.get("detail") or "")[:80])
        out.print(table)

    @ops.command("hold")
    def ops_hold(
        deal_id: str,
        reason: str = typer.Option(..., help="Why (recorded in the audit log)"),
        token: str | None = TokenOption,
        api: str | None = ApiOption,
    ) -> None:
        """Place a compliance hold: the deal pauses at its next step."""
        result = call("POST", f"/v1/compliance/deals/{deal_id}/hold", token=token, api=api, json={"reason": reason})
        out.print(f"deal {deal_id}: on hold = {result['on_hold']}")

    @ops.command("cancel")
    def ops_cancel(
        deal_id: str,
        reason: str = typer.Option(..., help="Why (recorded in the audit log)"),
        token: str | None = TokenOption,
        api: str | None = ApiOption,
    ) -> None:
        """Cancel a deal as ops (audited as an ops action; compensations run before it answers)."""
        state = call("POST", f"/v1/ops/deals/{deal_id}/cancel", token=token, api=api, json={"reason": reason})
        print_cancelled(deal_id, reason, state)

    @ops.command("lift")
    def ops_lift(
        deal_id: str,
        reason: str | None = typer.Option(None, help="Why"),
        token: str | None = TokenOption,
        api: str | None = ApiOption,
    ) -> None:
        """Lift the compliance hold: the deal continues."""
        result = call(
            "POST", f"/v1/compliance/deals/{deal_id}/hold/lift", token=token, api=api, json={"reason": reason}
        )
        out.print(f"deal {deal_id}: on hold = {result['on_hold']}")
