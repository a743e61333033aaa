from decimal import Decimal

from invoicing import services
from outbox import Event, subscriber


@subscriber("order.placed")
def on_order_placed(event: Event) -> None:
    data = event.data
    services.invoice_issue(
        order_id=event.aggregate_id,
        order_number=data["number"],
        email=data["email"],
        currency=data["currency"],
        shipping_address=data["shipping_address"],
        items=data["items"],
        totals=data.get("totals"),
        pricing=data.get("pricing"),
    )


@subscriber("invoice.numbered", transactional=False)
def on_invoice_numbered(event: Event) -> None:
    """No transaction open: `invoice_issue` committed the intent (the numbered invoice without
    its PDF); render, store (maybe S3), then record and publish `invoice.issued`."""
    services.invoice_render(invoice_id=int(event.data["invoice_id"]))


@subscriber("payment.failed")
def on_payment_failed(event: Event) -> None:
    services.credit_note_issue(
        order_id=event.aggregate_id,
        source="payment_failed",
        reason=f"Payment failed: {event.data.get('message') or 'declined'}",
    )


@subscriber("refund.succeeded")
def on_refund_succeeded(event: Event) -> None:
    services.credit_note_issue(
        order_id=event.aggregate_id,
        source=f"refund:{event.data['refund_id']}",
        reason=event.data.get("reason") or "Refund",
        amount=Decimal(event.data["amount"]),
    )


@subscriber("credit_note.numbered", transactional=False)
def on_credit_note_numbered(event: Event) -> None:
    """No transaction open: render, store, then record and publish `credit_note.issued`."""
    services.credit_note_render(credit_note_id=int(event.data["credit_note_id"]))
