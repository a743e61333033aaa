from billing import services
from outbox import Event, subscriber


@subscriber("order.placed")
def on_order_placed(event: Event) -> None:
    data = event.data
    services.payment_prepare(
        order_id=event.aggregate_id,
        order_number=data["number"],
        email=data["email"],
        payment_method=data["payment_method"],
        currency=data["currency"],
        items=data["items"],
        totals=data.get("totals"),
        order_url=data.get("order_url") or "",
    )


@subscriber("invoice.issued")
def on_invoice_issued(event: Event) -> None:
    data = event.data
    services.payment_charge(
        order_id=event.aggregate_id,
        invoice_number=data["number"],
        totals=data["totals"],
        currency=data["currency"],
    )


@subscriber("shipment.failed")
def on_shipment_failed(event: Event) -> None:
    services.refund_create(
        order_id=event.aggregate_id,
        source="shipment_failed",
        reason=f"Shipping failed: {event.data.get('reason') or 'undeliverable'}",
    )
