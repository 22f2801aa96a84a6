"""`pap deals ...`: a deal manager starts, drives and follows deals from the terminal (thin HTTP client)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import typer
from rich.table import Table

from pap.cli_api import ApiOption, TokenOption, authorized, call, err, out, send

deals_app = typer.Typer(help="Deals: start, list, inspect, follow, decide, settle and cancel", no_args_is_help=True)

FINAL_STAGES = ("closed", "cancelled")
WAIT_SECONDS = 25
"""How long each `watch` request waits on the server for a change (the API caps it at 30)."""


@deals_app.command("create")
def deals_create(
    security: str = typer.Option(..., "--security", help="The security's id"),
    seller: str = typer.Option(..., "--seller", help="The seller's user id (shares verified and unreserved)"),
    buyer: str = typer.Option(..., "--buyer", help="The buyer's user id (KYC approved, accredited)"),
    quantity: int = typer.Option(..., "--quantity", help="Shares"),
    price: str = typer.Option(..., "--price", help="Price per share, e.g. 12.50"),
    currency: str = typer.Option("USD", "--currency"),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", help="Send the same key again to retry without starting a second deal"
    ),
    token: str | None = TokenOption,
    api: str | None = ApiOption,
) -> None:
    """Start a brokered deal: the seller's shares are reserved and its workflow (`deal-<id>`) starts."""
    key = idempotency_key or str(uuid.uuid4())
    body = {
        "security_id": security,
        "seller_id": seller,
        "buyer_id": buyer,
        "quantity": quantity,
        "price": {"amount": price, "currency": currency},
    }
    deal = send("POST", "/v1/deals", api=api, headers=authorized(token, **{"Idempotency-Key": key}), json=body).json()
    out.print(f"deal {deal['id']}  stage [bold]{deal['stage']}[/bold]  workflow {deal['workflow_id']}")
    err.print(f"follow it with: pap deals watch {deal['id']}")


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


@deals_app.command("watch")
def deals_watch(
    deal_id: str,
    timeout: float = typer.Option(3600, help="Give up (exit 3) after this many seconds"),
    token: str | None = TokenOption,
    api: str | None = ApiOption,
) -> None:
    """Print the deal's timeline as it grows, until it is closed or cancelled (long polls: no busy loop)."""
    deadline = time.monotonic() + timeout
    etag: str | None = None
    printed, stage = 0, "unknown"
    while True:
        conditional = {"If-None-Match": etag, "Prefer": f"wait={WAIT_SECONDS}"} if etag else {}
        response = send("GET", f"/v1/deals/{deal_id}", api=api, headers=authorized(token, **conditional))
        if response.status_code == 200:
            deal = response.json()
            etag = response.headers.get("etag")
            for entry in deal["timeline"][printed:]:
                out.print(f"{entry['at'][:19]}  {entry['stage']:<22} {entry['actor']}: {entry['detail']}")
            printed, stage = len(deal["timeline"]), deal["stage"]
            if stage in FINAL_STAGES:
                out.print(f"deal {deal_id} [bold]{stage}[/bold]")
                return
        if time.monotonic() >= deadline:
            err.print(f"deal {deal_id} is still {stage} after {timeout:g} s")
            raise typer.Exit(3)


@deals_app.command("decide")
def deals_decide(
    deal_id: str,
    decision: str = typer.Argument(..., help="waive, approve, exercise or reject"),
    reason: str | None = typer.Option(None, help="Why (kept with the decision)"),
    token: str | None = TokenOption,
    api: str | None = ApiOption,
) -> None:
    """Record the issuer's decision on the transfer notice (as the issuer, or a deal manager for them)."""
    body = {"decision": decision, "reason": reason}
    state = call("POST", f"/v1/deals/{deal_id}/issuer-decision", token=token, api=api, json=body)
    out.print(f"deal {deal_id}: issuer decision {state['issuer_decision']}; stage {state['stage']}")


@deals_app.command("confirm")
def deals_confirm(deal_id: str, token: str | None = TokenOption, api: str | None = ApiOption) -> None:
    """Confirm the issuer (or transfer agent) recorded the transfer: escrow is released, shares move."""
    state = call("POST", f"/v1/deals/{deal_id}/settlement/confirm", token=token, api=api)
    out.print(f"deal {deal_id}: {state['stage']}")


@deals_app.command("cancel")
def deals_cancel(
    deal_id: str,
    reason: str = typer.Option(..., help="Why (recorded in the audit log)"),
    token: str | None = TokenOption,
    api: str | None = ApiOption,
) -> None:
    """Cancel as a deal manager (the workflow runs its compensations before it answers)."""
    print_cancelled(
        deal_id, reason, call("POST", f"/v1/deals/{deal_id}/cancel", token=token, api=api, json={"reason": reason})
    )


def print_cancelled(deal_id: str, reason: str, state: dict[str, Any]) -> None:
    out.print(f"deal {deal_id}: {state['stage']} ({state.get('cancel_reason') or reason})")
