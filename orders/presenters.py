"""How an order reads on the storefront: progress steps and timeline sentences (no rules)."""

from __future__ import annotations

from dataclasses import dataclass

from orders.models import Order, TimelineEntry

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


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    state: str  # "done", "current" or "todo"


def order_steps(order: Order) -> list[Step]:
    if order.status in STEP_RANK:
        reached = STEP_RANK[order.status]
    else:  # cancelled / refunded: show how far it got
        reached = max(
            (
                STEP_RANK.get(entry.detail.get("to"), 0)
                for entry in order.timeline.all()
                if entry.type == TimelineEntry.Type.STATUS_CHANGED
            ),
            default=0,
        )
    steps = []
    for rank, (key, label) in enumerate(STEPS):
        state = "done" if rank <= reached else "todo"
        if rank == reached + 1 and not order.is_final:
            state = "current"  # what the order waits for now
        steps.append(Step(key=key, label=label, state=state))
    return steps


def _label(status: str | None) -> str:
    return S(status).label if status in S.values else (status or "—")


def describe(entry: TimelineEntry) -> str:
    d = entry.detail or {}
    kind = entry.type
    if kind == TimelineEntry.Type.STATUS_CHANGED:
        if d.get("from") is None:
            return "Order placed"
        text = f"Status: {_label(d.get('from'))} → {_label(d.get('to'))}"
        return f"{text} ({d['reason']})" if d.get("reason") else text
    if kind == TimelineEntry.Type.EMAIL_SENT:
        return "Email sent: " + str(d.get("kind", "")).replace("_", " ")
    if kind == "invoice_issued":
        return f"Invoice {d.get('number', '')} issued (total {d.get('total', '')})"
    if kind == "payment":
        status = d.get("status")
        if status == "succeeded":
            return "Payment received"
        if status == "failed":
            return "Payment failed: " + (d.get("message") or "declined")
        if status == "action_required":
            return "Payment needs your confirmation"
        return f"Payment {status}"
    if kind == "shipment":
        status = d.get("status")
        if status == "created":
            return f"Handed to the carrier, tracking number {d.get('tracking_number', '')}"
        if status == "delivered":
            return "Delivered"
        if status == "failed":
            return "Shipping failed: " + (d.get("reason") or "the carrier refused the parcel")
        return f"Shipment {status}"
    if kind == "refund":
        return f"Refunded {d.get('amount', '')}"
    if kind == "credit_note_issued":
        return f"Credit note {d.get('number', '')} issued ({d.get('amount', '')})"
    if kind == TimelineEntry.Type.NOTE:
        return str(d.get("message", ""))
    return kind.replace("_", " ")


def timeline_rows(order: Order) -> list[tuple[TimelineEntry, str]]:
    return [(entry, describe(entry)) for entry in order.timeline.all()]
