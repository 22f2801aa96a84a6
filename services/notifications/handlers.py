"""Mapping of event types to notifications: one function per event family, each returning `Intent`s.

Unknown types map to nothing (acknowledged); the dispatcher then applies
preferences and sends per channel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from events.envelope import CloudEvent
from models.notifications import Category
from services.documents import list_deal_documents
from services.notifications.intents import Intent, as_uuid, label, price_text

Mapper = Callable[[AsyncSession, CloudEvent], Awaitable[list[Intent]]]

TERMINAL_STAGES = frozenset({"closed", "cancelled"})
EMAILED_STAGES = frozenset({"awaiting_issuer", "awaiting_funding", "settling"})
"""Stage changes that also send an email: the issuer has the notice, money is due, the transfer is under way.
The platform's own steps (participants checked, documents generated, signatures requested, where the
documents' own emails ask for signatures) show in the app only."""


def _because(reason: object) -> str:
    """Why the platform cancelled an order (a freeze, a lapsed accreditation, the minimum transfer); the
    owner's own cancel needs no explanation."""
    if not reason or reason == "cancelled by owner":
        return ""
    return f" ({reason})"


def _short(value: Any) -> str:
    return str(value)[:8]


async def marketplace(session: AsyncSession, event: CloudEvent) -> list[Intent]:
    d = event.data
    action = event.type.rsplit(".", 1)[-1]
    if event.type.startswith("marketplace.order."):
        user = as_uuid(d.get("user_id"))
        if user is None:
            return []
        side, quantity, price = d.get("side", ""), d.get("quantity"), price_text(d.get("limit_price"))
        details = [
            ("Order", str(d.get("order_id"))),
            ("Side", str(side)),
            ("Quantity", str(quantity)),
            ("Limit price", price),
            ("Filled", str(d.get("filled_quantity", 0))),
            ("Status", label(d.get("status"))),
        ]
        titles = {
            "created": f"Order received: {side} {quantity} shares at {price}",
            "updated": f"Order {_short(d.get('order_id'))} updated",
            "cancelled": f"Order {_short(d.get('order_id'))} cancelled",
            "expired": f"Order {_short(d.get('order_id'))} expired",
            "filled": f"Order {_short(d.get('order_id'))} filled",
        }
        if action not in titles:
            return []
        body = {
            "created": f"Your {side} order for {quantity} shares at {price} is open.",
            "updated": f"Your order now reads {quantity} shares at {price} ({d.get('remaining_quantity')} remaining).",
            "cancelled": f"Your order was cancelled{_because(d.get('status_reason'))}; reserved shares are released.",
            "expired": "Your order reached its expiry without being filled completely.",
            "filled": f"Your {side} order for {quantity} shares was filled.",
        }[action]
        template = "order_created" if action == "created" else None
        return [Intent(user, Category.ORDERS, f"order_{action}", titles[action], body, details, template)]
    if event.type == "marketplace.trade.matched":
        quantity, price = d.get("quantity"), price_text(d.get("price"))
        details = [
            ("Trade", str(d.get("trade_id"))),
            ("Deal", str(d.get("deal_id"))),
            ("Quantity", str(quantity)),
            ("Price", price),
        ]
        out = []
        for role, key in (("buy", "buyer_id"), ("sell", "seller_id")):
            user = as_uuid(d.get(key))
            if user is not None:
                title = f"Your {role} order matched: {quantity} shares at {price}"
                body = "A deal was opened for this trade; we will tell you what to do next."
                out.append(Intent(user, Category.ORDERS, "trade_matched", title, body, details))
        return out
    return []


async def deals(session: AsyncSession, event: CloudEvent) -> list[Intent]:
    d = event.data
    deal = _short(d.get("deal_id"))
    if event.type == "deals.buyer.replaced":
        return _buyer_replaced(d)
    stage = str(d.get("stage") or "")
    details = [
        ("Deal", str(d.get("deal_id"))),
        ("Stage", label(stage)),
        ("Quantity", str(d.get("quantity"))),
        ("Price", price_text(d.get("price"))),
    ]
    next_actor, deadline = d.get("next_actor"), d.get("deadline")
    if next_actor:
        details.append(("Next step", str(next_actor)))
    if deadline:
        details.append(("Deadline", str(deadline)))
    if event.type == "deals.created":
        kind, title, body = "deal_created", f"Deal {deal} opened", "A deal was opened for your trade."
    elif event.type == "deals.closed":
        kind, title, body = "deal_closed", f"Deal {deal} closed", "The transfer is complete and the deal is closed."
    elif event.type == "deals.cancelled":
        reason = d.get("detail") or "no reason given"
        kind, title, body = (
            "deal_cancelled",
            f"Deal {deal} cancelled",
            f"The deal was cancelled ({reason}); reservations and escrow are unwound.",
        )
    elif event.type == "deals.stage.changed":
        if stage in TERMINAL_STAGES:
            return []  # `deals.closed` / `deals.cancelled` tell the participants, once
        kind, title = "deal_stage_changed", f"Deal {deal}: {label(stage)}"
        body = f"The deal moved from {label(d.get('previous_stage'))} to {label(stage)}."
        if next_actor:
            body += f" Next: {next_actor}."
    else:
        return []
    out = []
    buyer, seller = as_uuid(d.get("buyer_id")), as_uuid(d.get("seller_id"))
    for user in (buyer, seller):
        if user is None:
            continue
        if event.type == "deals.stage.changed" and stage == "awaiting_funding" and user == buyer:
            funding_body = "Please fund the escrow for this deal" + (f" before {deadline}." if deadline else ".")
            funding_body += " Request payment instructions with POST /v1/deals/{id}/funding."
            out.append(
                Intent(
                    user,
                    Category.PAYMENTS,
                    "funding_instructions",
                    f"Deal {deal}: fund the escrow",
                    funding_body,
                    details,
                    "funding_instructions",
                )
            )
            continue
        email = event.type != "deals.stage.changed" or stage in EMAILED_STAGES
        out.append(Intent(user, Category.DEALS, kind, title, body, details, email=email))
    return out


def _deal_page(d: dict[str, Any]) -> str:
    """The deal's page in the app (its documents are signed there, after signing in)."""
    return f"/app/deals/{d.get('deal_id')}"


async def documents(session: AsyncSession, event: CloudEvent) -> list[Intent]:
    d = event.data
    kind_label = label(d.get("kind") or "document")
    details = [("Document", str(d.get("document_id"))), ("Deal", str(d.get("deal_id"))), ("Kind", kind_label)]
    if event.type == "documents.document.generated":
        users = [as_uuid(s.get("user_id")) for s in d.get("signers") or []]
        return [
            Intent(
                u,
                Category.DOCUMENTS,
                "signature_requested",
                f"Please sign the {kind_label}",
                "A document of your deal is ready for your signature.",
                details,
                action=("Review and sign", _deal_page(d)),
            )
            for u in users
            if u is not None
        ]
    if event.type == "documents.signature.reminder":
        users = [as_uuid(s.get("user_id")) for s in d.get("signers") or []]
        return [
            Intent(
                u,
                Category.DOCUMENTS,
                "signature_reminder",
                f"Reminder: sign the {kind_label}",
                "Your signature is still needed to move the deal forward.",
                details,
                action=("Review and sign", _deal_page(d)),
            )
            for u in users
            if u is not None
        ]
    if event.type == "documents.signature.declined":
        user = as_uuid(d.get("signer_id"))
        body = f"You declined to sign ({d.get('reason') or 'no reason given'}); the deal team was told."
        return (
            [Intent(user, Category.DOCUMENTS, "signature_declined", f"You declined the {kind_label}", body, details)]
            if user
            else []
        )
    if event.type == "documents.document.signed":
        deal_id = as_uuid(d.get("deal_id"))
        signers: list[Any] = []
        if deal_id is not None:
            for doc in await list_deal_documents(session, deal_id):
                if str(doc.id) == str(d.get("document_id")):
                    signers = list(doc.signers)
        return [
            Intent(
                s.user_id,
                Category.DOCUMENTS,
                "document_signed",
                f"The {kind_label} is fully signed",
                "Every party signed; the signed PDF is available.",
                details,
            )
            for s in signers
        ]
    return []


async def payments(session: AsyncSession, event: CloudEvent) -> list[Intent]:
    d = event.data
    details = [("Deal", str(d.get("deal_id")))]
    if event.type == "payments.payment.received":
        user = as_uuid(d.get("payer_id"))
        amount = price_text(d.get("amount"))
        return (
            [
                Intent(
                    user,
                    Category.PAYMENTS,
                    "payment_received",
                    f"Payment of {amount} received",
                    "We received your payment into escrow.",
                    details,
                )
            ]
            if user
            else []
        )
    if event.type == "payments.escrow.released":
        user = as_uuid(d.get("seller_id"))
        amount = price_text(d.get("seller_net") or d.get("amount"))
        return (
            [
                Intent(
                    user,
                    Category.PAYMENTS,
                    "funds_released",
                    "Escrow released to you",
                    f"The proceeds ({amount}) were released to you.",
                    details,
                )
            ]
            if user
            else []
        )
    if event.type == "payments.escrow.refunded":
        amount = price_text(d.get("amount"))
        users = [as_uuid(p) for p in d.get("payers") or []]
        return [
            Intent(
                u,
                Category.PAYMENTS,
                "escrow_refunded",
                "Escrow refunded",
                f"Your escrow payment ({amount}) was refunded.",
                details,
            )
            for u in users
            if u
        ]
    return []


def _buyer_replaced(d: dict[str, Any]) -> list[Intent]:
    """The company exercised its right of first refusal: the buyer it replaced hears it (deal events reach
    only the deal's current parties)."""
    replaced = as_uuid(d.get("replaced_buyer_id"))
    if replaced is None:
        return []
    title = f"Deal {_short(d.get('deal_id'))}: the company buys in your place"
    body = (
        "The company exercised its right of first refusal and buys these shares at the agreed price. "
        "The deal no longer involves you and nothing was charged; any fill of your bid is back on the book."
    )
    details = [
        ("Deal", str(d.get("deal_id"))),
        ("Quantity", str(d.get("quantity"))),
        ("Price", price_text(d.get("price"))),
    ]
    return [Intent(replaced, Category.DEALS, "deal_buyer_replaced", title, body, details)]


SECURITY_NOTICES = {
    "identity.login.succeeded": (
        "new_login",
        "New sign-in to your account",
        "Someone signed in to your account{ip}. If it was not you, revoke the session and change your password.",
    ),
    "identity.mfa.enrolled": (
        "mfa_enrolled",
        "Two-factor authentication enabled",
        "An authenticator app now protects your account.",
    ),
    "identity.session.revoked": (
        "session_revoked",
        "A session was signed out",
        "One of your sessions was revoked ({reason}).",
    ),
    "identity.refresh.reuse_detected": (
        "token_reuse",
        "Suspicious sign-in activity",
        "A refresh token was used twice, so we signed that session out everywhere. "
        "Change your password if this was not you.",
    ),
    "identity.roles.changed": ("roles_changed", "Your roles changed", "An administrator changed your roles."),
    "identity.password.changed": (
        "password_changed",
        "Your password was changed",
        "Your password was changed and your other sessions were signed out. If this was not you, contact support.",
    ),
    "identity.password.reset": (
        "password_reset",
        "Your password was reset",
        "Your password was reset through an emailed link and every session was signed out. "
        "If this was not you, contact support.",
    ),
    "identity.user.registration_existing_email": (
        "registration_attempt",
        "Someone tried to register with your email",
        "If this was you, sign in instead. If not, nothing was created and your account is unchanged.",
    ),
}


async def identity(session: AsyncSession, event: CloudEvent) -> list[Intent]:
    notice = SECURITY_NOTICES.get(event.type)
    if notice is None:
        return []
    d = event.data
    user = as_uuid(d.get("user_id")) or as_uuid(event.subject)
    if user is None:
        return []
    kind, title, body = notice
    body = body.format(ip=f" from {d['ip']}" if d.get("ip") else "", reason=label(d.get("reason") or "signed out"))
    return [Intent(user, Category.SECURITY, kind, title, body, [("When", event.time.isoformat())])]


async def profiles(session: AsyncSession, event: CloudEvent) -> list[Intent]:
    d = event.data
    user = as_uuid(d.get("user_id")) or as_uuid(event.subject)
    if user is None:
        return []
    parts = event.type.split(".")  # profiles.kyc.approved, profiles.accreditation.expired
    if len(parts) != 3 or parts[1] not in ("kyc", "accreditation") or parts[2] in ("submitted",):
        return []
    what, status = parts[1], parts[2]
    if what == "kyc":
        reason = f" Reason: {d['reason']}." if d.get("reason") else ""
        return [
            Intent(
                user,
                Category.ACCOUNT,
                "kyc_decision",
                f"Identity verification {label(status)}",
                f"Your identity verification is {label(status)}.{reason}",
            )
        ]
    if status == "expired":
        return [
            Intent(
                user,
                Category.ACCOUNT,
                "accreditation_expired",
                "Your accreditation expired",
                "Submit a new accreditation to keep buying.",
            )
        ]
    if status in ("approved", "rejected"):
        expiry = f" It is valid until {d['expires_at']}." if d.get("expires_at") else ""
        return [
            Intent(
                user,
                Category.ACCOUNT,
                "accreditation_decision",
                f"Accreditation {status}",
                f"Your accreditation was {status}.{expiry}",
            )
        ]
    return []


MAPPERS: dict[str, Mapper] = {
    "marketplace": marketplace,
    "deals": deals,
    "documents": documents,
    "payments": payments,
    "identity": identity,
    "profiles": profiles,
}


async def intents_for(session: AsyncSession, event: CloudEvent) -> list[Intent]:
    """The notifications an event calls for (by the type's first segment)."""
    mapper = MAPPERS.get(event.type.split(".", 1)[0])
    return await mapper(session, event) if mapper else []
