"""One email per step of the pipeline, to the address the customer gave at checkout.

Every subscriber here calls out (the email provider; object storage for the invoice PDF), so it
is registered with `transactional=False` and runs with no transaction open, in phases
(docs/notifications.md): the email is rendered, recorded with its attempt as `sending` with its
Message-ID (one commit), sent, and the answer recorded (`email_send`); an email waiting for its
credit note is recorded first (`email_queue`) and delivered later (`email_deliver`)."""

from django.db import transaction

from notifications.services import (
    CANCELLATION,
    Attachment,
    cancellation_context,
    contact_record_invoice,
    credit_note_record,
    email_deliver_for,
    email_send,
    notice_record,
    order_confirmation_send,
    order_link_send,
    order_summary,
    refund_notice,
)
from outbox import Event, subscriber


@subscriber("order.placed", transactional=False)
def on_order_placed(event: Event) -> None:
    data = event.data
    order_confirmation_send(
        order_id=event.aggregate_id,
        order_number=data["number"],
        email=data["email"],
        name=data["shipping_address"]["name"],
        order_url=data["order_url"],
        summary=order_summary(data),
        order=data,
    )


@subscriber("invoice.issued", transactional=False)
def on_invoice_issued(event: Event) -> None:
    data = event.data
    contact_record_invoice(order_id=event.aggregate_id, invoice=data)
    email_send(
        order_id=event.aggregate_id,
        kind="invoice_issued",
        context={"invoice": data},
        attachments=[Attachment(data["pdf_path"], f"invoice-{data['number']}.pdf")],
    )


@subscriber("payment.succeeded", transactional=False)
def on_payment_succeeded(event: Event) -> None:
    email_send(
        order_id=event.aggregate_id, kind="payment_received", context={"payment": event.data}
    )


@subscriber("payment.action_required", transactional=False)
def on_payment_action_required(event: Event) -> None:
    email_send(order_id=event.aggregate_id, kind="action_required", context={"payment": event.data})


@subscriber("shipment.created", transactional=False)
def on_shipment_created(event: Event) -> None:
    email_send(order_id=event.aggregate_id, kind="shipped", context={"shipment": event.data})


@subscriber("shipment.delivered", transactional=False)
def on_shipment_delivered(event: Event) -> None:
    email_send(order_id=event.aggregate_id, kind="delivered", context={"shipment": event.data})


def _deliver(order_id: str, kinds: list[str]) -> None:
    for kind in kinds:
        email_deliver_for(order_id=order_id, kind=kind)


# A declined payment is told once, in the cancellation email (payment.failed sends nothing), and
# the cancellation and refund emails carry their credit note: they are recorded as notices and
# queued when the credit note is here too (services: "Emails that wait for their credit note").


@subscriber("order.cancelled", transactional=False)
def on_order_cancelled(event: Event) -> None:
    data = event.data
    context, subject = cancellation_context(data)
    # Nothing invoiced, nothing to credit: the email goes at once.
    invoiced = bool(data.get("invoice_number")) or context["payment_failed"]
    with transaction.atomic(durable=True):
        kinds = notice_record(
            order_id=event.aggregate_id,
            kind="cancelled",
            context=context,
            awaits=CANCELLATION if invoiced else "",
            subject=subject,
        )
    _deliver(event.aggregate_id, kinds)


@subscriber("refund.succeeded", transactional=False)
def on_refund_succeeded(event: Event) -> None:
    kind, context, subject = refund_notice(event.data)
    with transaction.atomic(durable=True):
        kinds = notice_record(
            order_id=event.aggregate_id,
            kind=kind,
            context=context,
            awaits=f"refund:{event.data['refund_id']}",
            subject=subject,
        )
    _deliver(event.aggregate_id, kinds)


@subscriber("credit_note.issued", transactional=False)
def on_credit_note_issued(event: Event) -> None:
    with transaction.atomic(durable=True):
        kinds = credit_note_record(order_id=event.aggregate_id, data=event.data)
    _deliver(event.aggregate_id, kinds)


@subscriber("order.link_requested", transactional=False)
def on_order_link_requested(event: Event) -> None:
    order_link_send(order_id=event.aggregate_id, order_url=event.data["order_url"])
