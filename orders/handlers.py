"""Orders turns the facts other apps report into status changes and its own copies of them."""

import logging
from decimal import Decimal

from chargeflow.errors import ConflictError
from orders import checkout, services
from orders.checkout import AuthorizationError
from orders.models import Checkout, Order
from outbox import Event, subscriber

S = Order.Status
logger = logging.getLogger(__name__)


@subscriber("payment.authorized", transactional=False)
def on_payment_authorized(event: Event) -> None:
    """Stripe's webhook says a checkout's card is authorized: place its order, if the checkout
    page did not (the shopper closed the browser right after 3-D Secure). Calls out only to
    release the authorization when the order can no longer be placed."""
    data = event.data
    if not Checkout.objects.filter(pk=event.aggregate_id).exists():
        logger.warning("payment.authorized for unknown checkout %s", event.aggregate_id)
        return
    try:
        order = checkout.checkout_place_authorized(
            checkout_id=event.aggregate_id,
            payment_intent=data["payment_intent"],
            amount=Decimal(data["amount"]),
            currency=data["currency"],
        )
    except (ConflictError, AuthorizationError) as exc:
        logger.warning("checkout %s: not placed from the webhook: %s", event.aggregate_id, exc)
        return
    logger.info("order %s (%s): placed from Stripe's webhook", order.number, order.id)


@subscriber("invoice.issued")
def on_invoice_issued(event: Event) -> None:
    data = event.data
    services.order_record_invoice(
        order_id=event.aggregate_id,
        number=data["number"],
        pdf_path=data["pdf_path"],
        totals=data["totals"],
        then=S.INVOICED,
    )


@subscriber("payment.action_required")
def on_payment_action_required(event: Event) -> None:
    services.order_record_payment(
        order_id=event.aggregate_id,
        status="action_required",
        client_secret=event.data.get("client_secret", ""),
        then=S.ACTION_REQUIRED,
    )


@subscriber("payment.succeeded")
def on_payment_succeeded(event: Event) -> None:
    services.order_record_payment(order_id=event.aggregate_id, status="succeeded", then=S.PAID)


@subscriber("payment.failed")
def on_payment_failed(event: Event) -> None:
    message = event.data.get("message", "")
    services.order_record_payment(
        order_id=event.aggregate_id,
        status="failed",
        message=message,
        then=S.CANCELLED,
        reason=f"payment failed: {message}",
    )


@subscriber("payment.released")
def on_payment_released(event: Event) -> None:
    services.order_record_authorization_released(
        order_id=event.aggregate_id, amount=event.data["amount"], currency=event.data["currency"]
    )


@subscriber("shipment.created")
def on_shipment_created(event: Event) -> None:
    services.order_record_shipment(
        order_id=event.aggregate_id,
        status="created",
        carrier=event.data["carrier"],
        tracking_number=event.data["tracking_number"],
        then=S.SHIPPED,
    )


@subscriber("shipment.failed")
def on_shipment_failed(event: Event) -> None:
    # The refund (billing) and its credit note (invoicing) follow; refund.succeeded ends the order.
    services.order_record_shipment(
        order_id=event.aggregate_id, status="failed", reason=event.data.get("reason", "")
    )


@subscriber("shipment.delivered")
def on_shipment_delivered(event: Event) -> None:
    services.order_record_shipment(
        order_id=event.aggregate_id, status="delivered", then=S.DELIVERED
    )


@subscriber("refund.succeeded")
def on_refund_succeeded(event: Event) -> None:
    data = event.data
    full = bool(data.get("full"))
    services.order_record_refund(
        order_id=event.aggregate_id,
        amount=Decimal(data["amount"]),
        full=full,
        reason=data.get("reason", ""),
    )
    if full:
        services.order_transition(
            order_id=event.aggregate_id, to=S.REFUNDED, reason=data.get("reason", "")
        )


@subscriber("credit_note.issued")
def on_credit_note_issued(event: Event) -> None:
    data = event.data
    services.order_record_credit_note(
        order_id=event.aggregate_id,
        number=data["number"],
        amount=Decimal(data["amount"]),
        pdf_path=data.get("pdf_path", ""),
    )


@subscriber("email.sent")
def on_email_sent(event: Event) -> None:
    services.order_record_email(
        order_id=event.aggregate_id,
        kind=event.data["kind"],
        resend=bool(event.data.get("resend")),
        resent_by=event.data.get("requested_by", "") if event.data.get("resend") else "",
    )
