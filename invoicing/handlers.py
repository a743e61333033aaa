from decimal import Decimal

from django.db import IntegrityError

from invoicing import services
from outbox import Event, subscriber


@subscriber("order.placed", transactional=False)
def on_order_placed(event: Event) -> None:
    """Number the invoice (`invoice_issue`: its own short transaction, committed before anything
    else), then render and store its PDF with no transaction open and record it, publishing
    `invoice.issued` (`invoice_render`'s phases). One delivery for both steps (issue 11: the
    separate `invoice.numbered` event cost a message and a delivery per order); a redelivery
    finds the numbered invoice and resumes with the render, and the inbox row is written only
    once both have returned (outbox/delivery.py)."""
    data = event.data
    issue = {
        "order_id": event.aggregate_id,
        "order_number": data["number"],
        "email": data["email"],
        "currency": data["currency"],
        "shipping_address": data["shipping_address"],
        "items": data["items"],
        "totals": data.get("totals"),
        "pricing": data.get("pricing"),
    }
    try:
        invoice = services.invoice_issue(**issue)
    except IntegrityError:
        # A duplicate delivery running at the same moment numbered it first (one invoice per
        # order: the unique order id; this attempt's number was rolled back, leaving no gap).
        invoice = services.invoice_issue(**issue)
    services.invoice_render(invoice_id=invoice.pk, invoice=invoice)


@subscriber("invoice.numbered", transactional=False)
def on_invoice_numbered(event: Event) -> None:
    """`invoice.numbered` is no longer published (`on_order_placed` renders in the same
    delivery); kept for the events published before that change, still in the outbox or a
    queue. No transaction open: render, store, then record and publish `invoice.issued`."""
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
