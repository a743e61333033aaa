"""Writes of the billing app: Stripe customers, charges and refunds, each exactly once.

Every Stripe call carries an Idempotency-Key derived from the order and the step, and every
attempt is recorded in our database first (Payment is unique per order, Refund per payment and
source). Before creating a PaymentIntent we look for one already made for this order (a crash
after the Stripe call and before our commit leaves one behind): localstripe ignores
Idempotency-Key, so this lookup is what guarantees a single PaymentIntent there.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import stripe
from django.db import transaction

from billing.models import Payment, Refund, StripeCustomer
from billing.stripe_client import stripe_client
from chargeflow.errors import ApplicationError, ConflictError
from chargeflow.money import from_minor, to_minor
from outbox import publish

logger = logging.getLogger(__name__)


def charge_key(order_id) -> str:
    return f"chargeflow:order:{order_id}:charge"


def refund_key(order_id, source: str) -> str:
    return f"chargeflow:order:{order_id}:refund:{source}"


def customer_ensure(*, email: str) -> StripeCustomer:
    """The Stripe Customer for this email, created once and reused."""
    existing = StripeCustomer.objects.filter(email=email).first()
    if existing:
        return existing
    client = stripe_client()
    found = client.v1.customers.list(params={"email": email, "limit": 1})
    if found.data:
        stripe_id = found.data[0].id
    else:
        stripe_id = client.v1.customers.create(
            params={"email": email}, options={"idempotency_key": f"chargeflow:customer:{email}"}
        ).id
    customer, _ = StripeCustomer.objects.get_or_create(
        email=email, defaults={"stripe_id": stripe_id}
    )
    return customer


@transaction.atomic
def payment_prepare(
    *, order_id: str, order_number: str, email: str, payment_method: str, currency: str
) -> Payment:
    payment, _ = Payment.objects.get_or_create(
        order_id=order_id,
        defaults={
            "order_number": order_number,
            "email": email,
            "payment_method": payment_method,
            "currency": currency,
            "customer": customer_ensure(email=email),
            "idempotency_key": charge_key(order_id),
        },
    )
    return payment


def _existing_intent(payment: Payment):
    """The PaymentIntent already made for this order, if any: by the id we recorded, else among
    the customer's charges (a crash between Stripe's answer and our commit loses the id)."""
    client = stripe_client()
    if payment.stripe_payment_intent_id:
        return client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    if payment.customer_id is None:
        return None
    charges = client.v1.charges.list(params={"customer": payment.customer.stripe_id, "limit": 100})
    seen = set()
    for charge in charges.data:
        intent_id = getattr(charge.payment_intent, "id", charge.payment_intent)
        if not intent_id or intent_id in seen:
            continue
        seen.add(intent_id)
        intent = client.v1.payment_intents.retrieve(intent_id)
        if (intent.metadata or {}).get("order_id") == str(payment.order_id):
            return intent
    return None


@transaction.atomic
def payment_charge(
    *, order_id: str, invoice_number: str, amount: Decimal, currency: str
) -> Payment:
    """Charge the invoice total once. Publishes payment.succeeded, .failed or .action_required."""
    payment = (
        Payment.objects.select_for_update(of=("self",))
        .select_related("customer")
        .get(order_id=order_id)
    )
    if payment.status not in (Payment.Status.PENDING, Payment.Status.PROCESSING):
        logger.info("order %s: payment already %s, not charging again", order_id, payment.status)
        return payment
    amount_minor = to_minor(amount)
    if payment.amount_minor is not None and payment.amount_minor != amount_minor:
        raise ConflictError(
            f"order {order_id}: invoice amount {amount_minor} differs from the recorded "
            f"{payment.amount_minor}"
        )
    if currency != payment.currency:
        raise ConflictError(f"order {order_id}: invoice currency {currency} != {payment.currency}")
    payment.amount_minor = amount_minor
    payment.invoice_number = invoice_number
    payment.attempts += 1
    client = stripe_client()
    intent = _existing_intent(payment)
    try:
        if intent is None:
            # Created, then confirmed: two calls, each with its own idempotency key (localstripe
            # accepts no `confirm` on create). No money moves until the confirmation.
            intent = client.v1.payment_intents.create(
                params={
                    "amount": amount_minor,
                    "currency": currency.lower(),
                    "customer": payment.customer.stripe_id,
                    "payment_method": payment.payment_method,
                    "payment_method_types": ["card"],
                    "metadata": {
                        "order_id": str(order_id),
                        "order_number": payment.order_number,
                        "invoice_number": invoice_number,
                    },
                },
                options={"idempotency_key": f"{payment.idempotency_key}:create"},
            )
            payment.stripe_payment_intent_id = intent.id
        if intent.status == "requires_confirmation":
            intent = client.v1.payment_intents.confirm(
                intent.id, options={"idempotency_key": f"{payment.idempotency_key}:confirm"}
            )
    except stripe.CardError as exc:
        error = exc.error
        payment.stripe_payment_intent_id = (
            getattr(error, "payment_intent", None) and error.payment_intent.id
        ) or payment.stripe_payment_intent_id
        return _payment_failed(
            payment, code=error.code or "card_declined", message=error.message or str(exc)
        )
    payment.stripe_payment_intent_id = intent.id
    if intent.status == "succeeded":
        payment.status = Payment.Status.SUCCEEDED
        payment.save()
        publish(
            "payment.succeeded",
            order_id,
            {
                "order_id": str(order_id),
                "amount": str(from_minor(amount_minor)),
                "currency": currency,
                "payment_intent": intent.id,
            },
        )
    elif intent.status == "requires_action":
        payment.status = Payment.Status.ACTION_REQUIRED
        payment.save()
        publish(
            "payment.action_required",
            order_id,
            {
                "order_id": str(order_id),
                "payment_intent": intent.id,
                "client_secret": intent.client_secret,
            },
        )
    elif intent.status in ("processing",):
        payment.status = Payment.Status.PROCESSING
        payment.save()
    else:
        last_error = getattr(intent, "last_payment_error", None)
        return _payment_failed(
            payment,
            code=(last_error and last_error.code) or intent.status,
            message=(last_error and last_error.message) or f"Payment {intent.status}.",
        )
    logger.info("order %s: payment %s (%s)", order_id, payment.status, intent.id)
    return payment


def _payment_failed(payment: Payment, *, code: str, message: str) -> Payment:
    payment.status = Payment.Status.FAILED
    payment.failure_code = code[:100]
    payment.failure_message = message[:500]
    payment.save()
    publish(
        "payment.failed",
        payment.order_id,
        {
            "order_id": str(payment.order_id),
            "code": payment.failure_code,
            "message": payment.failure_message,
        },
    )
    logger.info("order %s: payment failed: %s (%s)", payment.order_id, message, code)
    return payment


class RefundError(ApplicationError):
    code = "refund_refused"


@transaction.atomic
def refund_create(
    *, order_id: str, source: str, reason: str, amount: Decimal | None = None
) -> Refund:
    """Refund (part of) a successful payment, once per `source`. Refuses an over-refund."""
    payment = Payment.objects.select_for_update().get(order_id=order_id)
    existing = payment.refunds.filter(source=source).first()
    if existing:
        return existing
    if payment.status not in (Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED):
        raise RefundError(f"Order {payment.order_number} has no successful payment to refund.")
    left = payment.amount_minor - payment.refunded_minor
    amount_minor = left if amount is None else to_minor(amount)
    if amount_minor <= 0 or amount_minor > left:
        raise RefundError(
            f"Refund of {from_minor(amount_minor)} exceeds what is left to refund "
            f"({from_minor(left)}).",
            code="over_refund",
        )
    refund = Refund.objects.create(
        payment=payment,
        source=source,
        reason=reason,
        amount_minor=amount_minor,
        idempotency_key=refund_key(order_id, source),
    )
    result = stripe_client().v1.refunds.create(
        params={
            "payment_intent": payment.stripe_payment_intent_id,
            "amount": amount_minor,
            "metadata": {"order_id": str(order_id), "source": source},
        },
        options={"idempotency_key": refund.idempotency_key},
    )
    refund.stripe_refund_id = result.id
    refund.status = Refund.Status.SUCCEEDED
    refund.save(update_fields=["stripe_refund_id", "status"])
    payment.refunded_minor += amount_minor
    full = payment.refunded_minor == payment.amount_minor
    payment.status = Payment.Status.REFUNDED if full else Payment.Status.PARTIALLY_REFUNDED
    payment.save(update_fields=["refunded_minor", "status", "updated_at"])
    publish(
        "refund.succeeded",
        order_id,
        {
            "order_id": str(order_id),
            "refund_id": str(refund.pk),
            "stripe_refund_id": result.id,
            "amount": str(from_minor(amount_minor)),
            "currency": payment.currency,
            "full": full,
            "reason": reason,
        },
    )
    logger.info("order %s: refunded %s (%s)", order_id, from_minor(amount_minor), reason)
    return refund
