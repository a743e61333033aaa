from billing import services
from outbox import Event, subscriber


@subscriber("order.placed")
def on_order_placed(event: Event) -> None:
    data = event.data
    payment = data.get("payment") or {}
    services.payment_prepare(
        order_id=event.aggregate_id,
        order_number=data["number"],
        email=data["email"],
        currency=data["currency"],
        items=data["items"],
        totals=data.get("totals"),
        payment_method=payment.get("payment_method") or data.get("payment_method") or "",
        payment_intent=payment.get("payment_intent") or "",
        order_url=data.get("order_url") or "",
    )


@subscriber("invoice.issued", transactional=False)
def on_invoice_issued(event: Event) -> None:
    data = event.data
    services.payment_charge(
        order_id=event.aggregate_id,
        invoice_number=data["number"],
        totals=data["totals"],
        currency=data["currency"],
    )


@subscriber("shipment.failed", transactional=False)
def on_shipment_failed(event: Event) -> None:
    services.refund_create(
        order_id=event.aggregate_id,
        source="shipment_failed",
        reason=f"Shipping failed: {event.data.get('reason') or 'undeliverable'}",
    )


@subscriber("order.cancelled", transactional=False)
def on_order_cancelled(event: Event) -> None:
    """A cancelled order whose card was only authorized gets the authorization released."""
    services.payment_release(
        order_id=event.aggregate_id, reason=event.data.get("reason") or "order cancelled"
    )
