"""How an order reads on the storefront: progress steps and timeline sentences (no rules)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django_countries import countries

from chargeflow.wording import customer_reason
from orders.models import Order, Product, TimelineEntry

S = Order.Status
STEPS = (
    (S.PLACED, "Placed"),
    (S.INVOICED, "Invoiced"),
    (S.PAID, "Paid"),
    (S.SHIPPED, "Shipped"),
    (S.DELIVERED, "Delivered"),
)
STEP_RANK = {
    S.PLACED: 0,
    S.INVOICED: 1,
    S.ACTION_REQUIRED: 1,  # between invoiced and paid: the "Paid" step waits for the customer
    S.PAID: 2,
    S.SHIPPED: 3,
    S.DELIVERED: 4,
}


ENDED = frozenset({S.CANCELLED, S.REFUNDED})


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    state: str  # "done", "current" (where the order is now), "todo" or "ended"


def order_ended(order: Order) -> bool:
    """Cancelled or refunded: the order stopped before it was delivered."""
    return order.status in ENDED


def _furthest_rank(order: Order) -> int:
    """How far an ended order got before it stopped."""
    return max(
        (
            STEP_RANK.get(entry.detail.get("to"), 0)
            for entry in order.timeline.all()
            if entry.type == TimelineEntry.Type.STATUS_CHANGED
        ),
        default=0,
    )


def order_steps(order: Order) -> list[Step]:
    """The progress bar: the steps the order passed are done, the one it is at is current, the
    ones ahead are to do. A delivered order has every step done; a cancelled or refunded one shows
    the steps it passed and then its end, without the steps it will never reach."""
    if order_ended(order):
        reached = _furthest_rank(order)
        steps = [Step(key=key, label=label, state="done") for key, label in STEPS[: reached + 1]]
        return [*steps, Step(key=order.status, label=order.get_status_display(), state="ended")]
    reached = STEP_RANK.get(order.status, 0)
    steps = []
    for rank, (key, label) in enumerate(STEPS):
        if rank < reached or (rank == reached and order.is_final):
            state = "done"
        elif rank == reached:
            state = "current"
        else:
            state = "todo"
        steps.append(Step(key=key, label=label, state=state))
    return steps


# Emails and the credit note follow a final status by a few seconds: the order page keeps
# asking for news until the order has been quiet this long.
SETTLE_AFTER = timedelta(seconds=60)


def order_settled(order: Order, *, now: datetime) -> bool:
    """Final, and nothing happened to it for SETTLE_AFTER: the order page can stop polling."""
    if not order.is_final:
        return False
    last = max([order.updated_at, *(entry.at for entry in order.timeline.all())])
    return now - last >= SETTLE_AFTER


@dataclass(frozen=True)
class ProductArt:
    """A product's placeholder picture (the catalog has no images): its initials on a colour."""

    initials: str
    hue: int  # 0-359, the same for a SKU everywhere and on every run


def _initials_candidates(name: str):
    """Initials for a name, best first: the first letters of its first two words (or its first
    two letters), then its first letter with each later letter, then with a digit."""
    words = name.split() or ["?"]
    first = words[0][:1].upper()
    if len(words) >= 2:
        yield first + words[1][:1].upper()
    letters = [c for c in "".join(words)[1:] if c.isalnum()]
    for letter in letters:
        yield first + letter.lower()
    for digit in "23456789":
        yield first + digit


def catalog_initials(products) -> dict[str, str]:
    """Distinct initials for every product of the catalog (by SKU): "Mouse" is "Mo", then
    "Monitor" is "Mn", not a second "Mo". Stable: decided in SKU order."""
    taken: set[str] = set()
    result: dict[str, str] = {}
    for sku, name in sorted(products):
        initials = next((c for c in _initials_candidates(name) if c not in taken), sku[:2])
        taken.add(initials)
        result[sku] = initials
    return result


def product_art(product: Product, initials: dict[str, str] | None = None) -> ProductArt:
    """The placeholder of a product: `initials` from catalog_initials (distinct across the
    catalog) when given, else the product's own best initials."""
    text = (initials or {}).get(product.sku) or next(_initials_candidates(product.name))
    digest = hashlib.sha256(product.sku.encode()).digest()
    return ProductArt(initials=text, hue=int.from_bytes(digest[:4], "big") % 360)


def net_paid(order: Order):
    """The order's total minus what was refunded (None before it has a total)."""
    if order.total is None:
        return None
    return order.total - (order.refunded_amount or 0)


def country_name(code: str) -> str:
    """The country's name for its ISO code ("DE" is "Germany"); an unknown code stays as it is."""
    return countries.name(code) or code


def _label(status: str | None) -> str:
    return S(status).label if status in S.values else (status or "—")


EMAIL_LABELS = {
    "order_confirmation": "order confirmation",
    "invoice_issued": "invoice",
    "payment_received": "payment received",
    "payment_failed": "payment failed",
    "action_required": "payment confirmation needed",
    "partial_refund": "partial refund",
    "refunded": "refund",
    "order_link": "link to this order",
}


def _money(amount, currency: str) -> str:
    return f"{amount} {currency}".strip()


def describe(entry: TimelineEntry, *, currency: str = "", customer: bool = True) -> str:
    """One timeline row as the customer reads it (amounts with their currency; causes in the
    customer's words, chargeflow/wording.py), or as an operator does (`customer=False`: the
    recorded causes as they are)."""
    d = entry.detail or {}
    kind = entry.type

    def reason(cause: str | None, default: str) -> str:
        if not customer:
            return cause or default
        return customer_reason(cause, default=default)

    if kind == TimelineEntry.Type.STATUS_CHANGED:
        if d.get("from") is None:
            return "Order placed"
        text = f"Status: {_label(d.get('from'))} → {_label(d.get('to'))}"
        if not d.get("reason"):
            return text
        return f"{text} ({reason(d['reason'], '').rstrip('.')})"
    if kind == TimelineEntry.Type.EMAIL_SENT:
        email = str(d.get("kind", ""))
        label = EMAIL_LABELS.get(email, email.replace("_", " "))
        text = ("Email sent again: " if d.get("resend") else "Email sent: ") + label
        return f"{text} (asked by {d['resent_by']})" if d.get("resent_by") else text
    if kind == TimelineEntry.Type.INVOICE_ISSUED:
        return (
            f"Invoice {d.get('number', '')} issued (total {_money(d.get('total', ''), currency)})"
        )
    if kind == TimelineEntry.Type.PAYMENT:
        status = d.get("status")
        if status == "succeeded":
            return "Payment received"
        if status == "failed":
            return "Payment failed: " + reason(d.get("message"), "declined")
        if status == "action_required":
            return "Payment needs your confirmation"
        return f"Payment {status}"
    if kind == TimelineEntry.Type.SHIPMENT:
        status = d.get("status")
        if status == "created":
            return f"Handed to the carrier, tracking number {d.get('tracking_number', '')}"
        if status == "delivered":
            return "Delivered"
        if status == "failed":
            return "Shipping failed: " + reason(d.get("reason"), "the carrier refused the parcel.")
        return f"Shipment {status}"
    if kind == TimelineEntry.Type.REFUND:
        return f"Refunded {_money(d.get('amount', ''), currency)}"
    if kind == TimelineEntry.Type.CREDIT_NOTE_ISSUED:
        return f"Credit note {d.get('number', '')} issued ({_money(d.get('amount', ''), currency)})"
    if kind == TimelineEntry.Type.RESTOCK:
        skus = ", ".join(f"{units} × {sku}" for sku, units in (d.get("skus") or {}).items())
        text = f"Put back in stock: {skus}"
        return f"{text} (by {d['by']})" if d.get("by") else text
    if kind == TimelineEntry.Type.NOTE:
        text = str(d.get("message", ""))
        return f"{text} (by {d['by']})" if d.get("by") else text
    return kind.replace("_", " ")


def timeline_rows(order: Order, *, customer: bool = True) -> list[tuple[TimelineEntry, str]]:
    """The order's timeline as the customer reads it, or (`customer=False`) an operator."""
    return [
        (entry, describe(entry, currency=order.currency, customer=customer))
        for entry in order.timeline.all()
    ]
