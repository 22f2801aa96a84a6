"""`pap deals ...` and `pap ops ...` deal commands: thin HTTP clients of the API, rendered with rich.

The token comes from `--token` or `PAP_TOKEN`; the API address from `--api`,
`PAP_API_URL` or the `api` entry of `.pap/stack.json` written by `pap up`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

deals_app = typer.Typer(help="Deals: list, inspect and cancel", no_args_is_help=True)
out = Console(width=200)
err = Console(stderr=True)

TokenOption = typer.Option(None, "--token", envvar="PAP_TOKEN", help="Bearer access token (or PAP_TOKEN)")
ApiOption = typer.Option(None, "--api", envvar="PAP_API_URL", help="API base URL (default: .pap/stack.json)")


def _base_url(api: str | None) -> str:
    if api:
        return api.rstrip("/")
    from pap.settings import get_settings

    stack_file = Path(get_settings().state_dir) / "stack.json"
    try:
        return str(json.loads(stack_file.read_text())["api"]).rstrip("/")
    except (OSError, ValueError, KeyError):
        err.print(f"[red]no API address:[/red] pass --api or start the stack (pap up writes {stack_file})")
        raise typer.Exit(2) from None


def call(method: str, path: str, *, token: str | None, api: str | None, **kwargs: Any) -> Any:
    """One API call; a problem answer is printed as `status title: detail` and exits 1."""
    if not token:
        err.print("[red]no token:[/red] pass --token or set PAP_TOKEN")
        raise typer.Exit(2)
    try:
        response = httpx.request(
            method, _base_url(api) + path, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kwargs
        )
    except httpx.HTTPError as error:
        err.print(f"[red]cannot reach the API:[/red] {error}")
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        try:
            problem = response.json()
            err.print(f"[red]{response.status_code} {problem.get('title', '')}[/red]: {problem.get('detail', '')}")
        except ValueError:
            err.print(f"[red]{response.status_code}[/red] {response.text[:300]}")
        raise typer.Exit(1)
    return response.json()


@deals_app.command("list")
def deals_list(
    stage: str | None = typer.Option(None, help="Only deals at this stage"),
    limit: int = typer.Option(50, help="How many"),
    token: str | None = TokenOption,
    api: str | None = ApiOption,
) -> None:
    """Deals visible to the token's principal, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if stage:
        params["stage"] = stage
    page = call("GET", "/v1/deals", token=token, api=api, params=params)
    table = Table("id", "stage", "quantity", "price", "buyer", "seller", "hold", "created")
    for d in page["items"]:
        table.add_row(
            d["id"],
            d["stage"],
            str(d["quantity"]),
            f"{d['price']['amount']} {d['price']['currency']}",
            d["buyer_id"][:8],
            d["seller_id"][:8],
            "yes" if d["on_hold"] else "",
            d["created_at"][:19],
        )
    out.print(table)


@deals_app.command("show")
def deals_show(deal_id: str, token: str | None = TokenOption, api: str | None = ApiOption) -> None:
    """One deal with its timeline."""
    d = call("GET", f"/v1/deals/{deal_id}", token=token, api=api)
    out.print(f"deal {d['id']}  stage [bold]{d['stage']}[/bold]  on hold: {d['on_hold']}")
    out.print(
        f"{d['quantity']} shares at {d['price']['amount']} {d['price']['currency']}; total {d['total']['amount']}"
    )
    if d.get("cancel_reason"):
        out.print(f"cancelled: {d['cancel_reason']}")
    table = Table("at", "stage", "actor", "detail", title="timeline")
    for e in d.get("timeline", []):
        table.add_row(e["at"][:19], e["stage"], e["actor"], e["detail"])
    out.print(table)


@deals_app.command("cancel")
def deals_cancel(
    deal_id: str,
    reason: str = typer.Option(..., help="Why (recorded in the audit log)"),
    token: str | None = TokenOption,
    api: str | None = ApiOption,
) -> None:
    """Cancel as a deal manager (the workflow runs its compensations before it answers)."""
    _print_cancelled(
        deal_id, reason, call("POST", f"/v1/deals/{deal_id}/cancel", token=token, api=api, json={"reason": reason})
    )


def _print_cancelled(deal_id: str, reason: str, state: dict[str, Any]) -> None:
    out.print(f"deal {deal_id}: {state['stage']} ({state.get('cancel_reason') or reason})")


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
        _print_cancelled(deal_id, reason, state)

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
