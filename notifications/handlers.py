"""One email per step of the pipeline, to the address the customer gave at checkout."""

from notifications.services import Attachment, contact_record, email_send
from outbox import Event, subscriber


@subscriber("order.placed")
def on_order_placed(event: Event) -> None:
    data = event.data
    contact_record(
        order_id=event.aggregate_id,
        order_number=data["number"],
        email=data["email"],
        name=data["shipping_address"]["name"],
        order_url=data["order_url"],
    )
    email_send(order_id=event.aggregate_id, kind="order_confirmation", context={"order": data})


@subscriber("invoice.issued")
def on_invoice_issued(event: Event) -> None:
    data = event.data
    email_send(
        order_id=event.aggregate_id,
        kind="invoice_issued",
        context={"invoice": data},
        attachments=[Attachment(data["pdf_path"], f"invoice-{data['number']}.pdf")],
    )


@subscriber("payment.succeeded")
def on_payment_succeeded(event: Event) -> None:
    email_send(
        order_id=event.aggregate_id, kind="payment_received", context={"payment": event.data}
    )


@subscriber("payment.failed")
def on_payment_failed(event: Event) -> None:
    email_send(order_id=event.aggregate_id, kind="payment_failed", context={"payment": event.data})


@subscriber("payment.action_required")
def on_payment_action_required(event: Event) -> None:
    email_send(order_id=event.aggregate_id, kind="action_required", context={"payment": event.data})


@subscriber("shipment.created")
def on_shipment_created(event: Event) -> None:
    email_send(order_id=event.aggregate_id, kind="shipped", context={"shipment": event.data})


@subscriber("shipment.delivered")
def on_shipment_delivered(event: Event) -> None:
    email_send(order_id=event.aggregate_id, kind="delivered", context={"shipment": event.data})


@subscriber("order.cancelled")
def on_order_cancelled(event: Event) -> None:
    email_send(order_id=event.aggregate_id, kind="cancelled", context={"order": event.data})


@subscriber("refund.succeeded")
def on_refund_succeeded(event: Event) -> None:
    email_send(order_id=event.aggregate_id, kind="refunded", context={"refund": event.data})
