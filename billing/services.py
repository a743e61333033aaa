"""Writes of the billing app: Stripe customers, charges and refunds, each exactly once.

Exactly once, in three layers (docs/billing.md):

1. The inbox: a redelivered event does nothing (outbox/delivery.py).
2. Our rows: one Payment per order (unique) and one Refund per (payment, source) (unique), locked
   (`SELECT … FOR UPDATE`) for the whole step, so two deliveries of the same fact under different
   event ids, or a webhook racing the worker, run one after the other and the second finds the
   step done.
3. Stripe: every call carries an Idempotency-Key derived from the order and the step (real
   Stripe returns the first answer for 24 h), and before creating a PaymentIntent or a refund we
   look for one already made for this order/source (metadata). A crash between Stripe's answer
   and our commit rolls our record back but leaves the object at Stripe: the retry finds it there
   instead of creating a second one. localstripe ignores Idempotency-Key, so there the lookup is
   what is tested.

Stripe is called inside the handler's transaction, with the Payment row locked: the lock is what
serialises the duplicates; its cost is one row per order held for a Stripe round trip.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from billing.models import Payment, Refund, StripeCustomer, StripeEvent
from billing.stripe_client import stripe_client
from chargeflow.errors import ApplicationError, ConflictError, NotFoundError
from chargeflow.money import from_minor, to_minor
from outbox import RetryLater, publish

logger = logging.getLogger(__name__)

S = Payment.Status
ACTION_SALT = "billing.payment-action"
# Payment states a PaymentIntent's state may still move (never back from these terminal ones).
OPEN = (S.PENDING, S.PROCESSING, S.ACTION_REQUIRED)


class PaymentNotReady(RetryLater):
    """invoice.issued arrived before billing handled order.placed: raise, so it is retried."""


class RefundError(ApplicationError):
    code = "refund_refused"


def step_key(order_id, step: str) -> str:
    """The Idempotency-Key of one Stripe call: the order and the step, nothing random."""
    return f"chargeflow:order:{order_id}:{step}"


def charge_key(order_id) -> str:
    return step_key(order_id, "charge")


def refund_key(order_id, source: str) -> str:
    return step_key(order_id, f"refund:{source}")


def action_token(order_id) -> str:
    return signing.dumps(str(order_id), salt=ACTION_SALT, compress=True)


def action_order_id(token: str) -> str:
    """The order id of a 3-D Secure page link; NotFoundError for a forged or stale link."""
    max_age = timedelta(minutes=settings.BILLING_ACTION_TIMEOUT_MINUTES) + timedelta(days=1)
    try:
        return signing.loads(token, salt=ACTION_SALT, max_age=max_age)
    except signing.BadSignature:
        raise NotFoundError("This payment link is not valid.") from None


def action_url(order_id) -> str:
    return settings.SITE_URL + reverse("billing:payment-action", args=[action_token(order_id)])


# --- Customers -------------------------------------------------------------------------------


def customer_ensure(*, email: str) -> StripeCustomer:
    """The Stripe Customer for this email, created once and reused (also across our crashes:
    Stripe is searched by email before creating)."""
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
    *,
    order_id: str,
    order_number: str,
    email: str,
    payment_method: str,
    currency: str,
    items: list[dict[str, Any]],
    totals: dict[str, str] | None = None,
    order_url: str = "",
) -> Payment:
    """Record what billing needs from order.placed: the payment method, the customer, and the
    order's totals (fixed at checkout) that the invoice must match: the amount charged is the
    total the shopper saw. (Without `totals`, an older event: the line totals' sum.)"""
    if totals:
        subtotal, total = to_minor(totals["subtotal"]), to_minor(totals["total"])
    else:
        subtotal, total = sum((to_minor(str(i["line_total"])) for i in items), 0), None
    payment, _ = Payment.objects.get_or_create(
        order_id=order_id,
        defaults={
            "order_number": order_number,
            "order_url": order_url[:500],
            "email": email,
            "payment_method": payment_method,
            "currency": currency,
            "customer": customer_ensure(email=email),
            "idempotency_key": charge_key(order_id),
            "expected_subtotal_minor": subtotal,
            "expected_total_minor": total,
        },
    )
    return payment


# --- Charging --------------------------------------------------------------------------------


def _metadata(obj) -> dict:
    return dict(obj.get("metadata") or {})


def _find_intent(payment: Payment):
    """The PaymentIntent already made for this order, if any (metadata order_id). Real Stripe
    filters by customer; localstripe accepts no filter, so it falls back to every intent."""
    client = stripe_client()
    if payment.stripe_payment_intent_id:
        return client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    try:
        page = client.v1.payment_intents.list(
            params={"customer": payment.customer.stripe_id, "limit": 100}
        )
    except stripe.InvalidRequestError:
        page = client.v1.payment_intents.list(params={"limit": 100})
    for intent in page.auto_paging_iter():
        if _metadata(intent).get("order_id") == str(payment.order_id):
            return intent
    return None


def _verify_invoice(payment: Payment, totals: dict[str, str], currency: str) -> str | None:
    """What is wrong with the invoice's amount, or None. Checked: the currency is the order's;
    the total and the subtotal are the order's (from order.placed, fixed at checkout);
    subtotal + shipping + tax equals the total; the total is positive."""
    subtotal, shipping, tax, total = (
        to_minor(Decimal(totals[k])) for k in ("subtotal", "shipping", "tax", "total")
    )
    if currency != payment.currency:
        return f"currency {currency} != order currency {payment.currency}"
    if payment.expected_total_minor is not None and total != payment.expected_total_minor:
        return f"total {total} != the order's {payment.expected_total_minor} (minor units)"
    if payment.expected_subtotal_minor is not None and subtotal != payment.expected_subtotal_minor:
        return f"subtotal {subtotal} != the order's {payment.expected_subtotal_minor} (minor units)"
    if subtotal + shipping + tax != total:
        return f"{subtotal} + {shipping} + {tax} != total {total} (minor units)"
    if total <= 0 or min(subtotal, shipping, tax) < 0:
        return f"invalid total {total}"
    return None


@transaction.atomic
def payment_charge(
    *, order_id: str, invoice_number: str, totals: dict[str, str], currency: str
) -> Payment:
    """Charge the invoice total once. Publishes payment.succeeded, .failed or .action_required."""
    payment = (
        Payment.objects.select_for_update(of=("self",))
        .select_related("customer")
        .filter(order_id=order_id)
        .first()
    )
    if payment is None:
        raise PaymentNotReady(f"order {order_id}: no payment recorded yet (order.placed pending)")
    if payment.status != S.PENDING or payment.invoice_number:
        logger.info("order %s: payment already %s, not charging again", order_id, payment.status)
        return payment
    problem = _verify_invoice(payment, totals, currency)
    if problem:
        logger.error("order %s: invoice %s refused: %s", order_id, invoice_number, problem)
        return _payment_failed(
            payment,
            code="amount_mismatch",
            message="We could not verify the amount of this order; you have not been charged.",
        )
    amount_minor = to_minor(Decimal(totals["total"]))
    payment.amount_minor = amount_minor
    payment.invoice_number = invoice_number
    payment.attempts += 1
    client = stripe_client()
    intent = _find_intent(payment)
    if intent is None:
        # Created, then confirmed: two calls, each with its own key (localstripe accepts no
        # `confirm` on create). No money moves until the confirmation.
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
    elif intent.amount != amount_minor:
        raise ConflictError(f"order {order_id}: intent {intent.id} is for {intent.amount}")
    payment.stripe_payment_intent_id = intent.id
    if intent.status == "requires_confirmation":
        try:
            intent = client.v1.payment_intents.confirm(
                intent.id, options={"idempotency_key": f"{payment.idempotency_key}:confirm"}
            )
        except stripe.CardError:
            # localstripe's decline carries no intent: read its state (and the reason) back.
            intent = client.v1.payment_intents.retrieve(intent.id)
    return _apply_intent(payment, intent)


def _failure_of(intent) -> tuple[str, str]:
    error = intent.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code") or intent.status
    message = error.get("message") or f"The payment could not be completed ({intent.status})."
    return code, message


def _apply_intent(payment: Payment, intent) -> Payment:
    """Move the (locked) payment to what the PaymentIntent says, forward only, publishing the
    fact once. Used by the worker, the webhook, the 3-D Secure return and reconciliation."""
    if payment.status not in OPEN:
        return payment
    payment.stripe_payment_intent_id = intent.id
    if payment.amount_minor is None:  # the worker's transaction was lost; Stripe has the amount
        payment.amount_minor = intent.amount
    status = intent.status
    if status == "succeeded":
        payment.status = S.SUCCEEDED
        payment.action_expires_at = None
        payment.save()
        publish(
            "payment.succeeded",
            payment.order_id,
            {
                "order_id": str(payment.order_id),
                "amount": str(from_minor(intent.amount)),
                "currency": payment.currency,
                "payment_intent": intent.id,
            },
        )
    elif status == "requires_action":
        if payment.status == S.ACTION_REQUIRED:
            return payment
        payment.status = S.ACTION_REQUIRED
        payment.action_expires_at = timezone.now() + timedelta(
            minutes=settings.BILLING_ACTION_TIMEOUT_MINUTES
        )
        payment.save()
        publish(
            "payment.action_required",
            payment.order_id,
            {
                "order_id": str(payment.order_id),
                "payment_intent": intent.id,
                "client_secret": intent.client_secret,
                "action_url": action_url(payment.order_id),
                "expires_at": payment.action_expires_at.isoformat(),
            },
        )
    elif status in ("processing", "requires_confirmation"):
        if payment.status != S.PROCESSING:
            payment.status = S.PROCESSING
            payment.save()
    else:  # requires_payment_method (declined, authentication failed) or canceled
        code, message = _failure_of(intent)
        return _payment_failed(payment, code=code, message=message)
    logger.info("order %s: payment %s (%s)", payment.order_id, payment.status, intent.id)
    return payment


def _payment_failed(payment: Payment, *, code: str, message: str) -> Payment:
    payment.status = S.FAILED
    payment.failure_code = code[:100]
    payment.failure_message = message[:500]
    payment.action_expires_at = None
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


@transaction.atomic
def payment_sync(*, order_id: str, intent=None) -> Payment:
    """Bring the payment up to its PaymentIntent's current state at Stripe (read fresh, so an
    event that arrives late or out of order cannot move it backwards)."""
    payment = Payment.objects.select_for_update(of=("self",)).get(order_id=order_id)
    if payment.status not in OPEN:
        return payment
    intent_id = (intent and intent.id) or payment.stripe_payment_intent_id
    if not intent_id:
        return payment
    fresh = stripe_client().v1.payment_intents.retrieve(intent_id)
    if _metadata(fresh).get("order_id") != str(payment.order_id):
        raise ConflictError(f"intent {intent_id} does not belong to order {order_id}")
    return _apply_intent(payment, fresh)


@transaction.atomic
def payment_action_expire(*, order_id: str) -> Payment:
    """Cancel a 3-D Secure authentication the customer did not finish in time."""
    payment = Payment.objects.select_for_update(of=("self",)).get(order_id=order_id)
    if payment.status != S.ACTION_REQUIRED or payment.action_expires_at > timezone.now():
        return payment
    client = stripe_client()
    intent = client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    if intent.status == "requires_action":
        intent = client.v1.payment_intents.cancel(
            intent.id, options={"idempotency_key": f"{payment.idempotency_key}:cancel"}
        )
    if intent.status == "canceled":
        return _payment_failed(
            payment,
            code="authentication_expired",
            message="The card authentication was not completed in time.",
        )
    return _apply_intent(payment, intent)


def payment_actions_expire_due() -> int:
    """Expire every overdue authentication (beat task). Not one transaction: one per payment."""
    due = Payment.objects.filter(
        status=S.ACTION_REQUIRED, action_expires_at__lte=timezone.now()
    ).values_list("order_id", flat=True)
    count = 0
    for order_id in list(due):
        try:
            payment_action_expire(order_id=str(order_id))
            count += 1
        except Exception:
            logger.exception("order %s: expiring the payment action failed", order_id)
    return count


# --- Webhooks --------------------------------------------------------------------------------

HANDLED_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.requires_action",
    "payment_intent.canceled",
    "payment_intent.processing",
}


@transaction.atomic
def stripe_event_handle(*, event) -> bool:
    """Apply a verified Stripe event once (deduplicated on its id). Returns False for a
    duplicate. The intent is read back from Stripe: the payload may be stale."""
    obj = event.data.object
    metadata = _metadata(obj)
    order_id = metadata.get("order_id")
    _record, created = StripeEvent.objects.get_or_create(
        event_id=event.id,
        defaults={
            "type": event.type,
            "object_id": obj.get("id") or "",
            "order_id": order_id if event.type in HANDLED_EVENTS else None,
        },
    )
    if not created:
        logger.info("stripe event %s (%s) already handled", event.id, event.type)
        return False
    if event.type not in HANDLED_EVENTS or not order_id:
        return True
    if not Payment.objects.filter(order_id=order_id).exists():
        logger.warning("stripe event %s: no payment for order %s", event.id, order_id)
        return True
    payment_sync(order_id=order_id, intent=obj)
    return True


# --- Refunds ---------------------------------------------------------------------------------


def _find_refund(payment: Payment, source: str):
    refunds = stripe_client().v1.refunds.list(
        params={"payment_intent": payment.stripe_payment_intent_id, "limit": 100}
    )
    for refund in refunds.auto_paging_iter():
        if _metadata(refund).get("source") == source:
            return refund
    return None


@transaction.atomic
def refund_create(
    *, order_id: str, source: str, reason: str, amount: Decimal | None = None
) -> tuple[Refund, bool]:
    """Refund (part of) a successful payment, once per `source` (`shipment_failed`,
    `api:<Idempotency-Key>`, `admin:<form token>`); without `amount`, all that is left.
    Returns (refund, created). Refuses an over-refund with RefundError (code over_refund)."""
    payment = Payment.objects.select_for_update(of=("self",)).filter(order_id=order_id).first()
    if payment is None:
        raise NotFoundError("No payment for this order.")
    existing = payment.refunds.filter(source=source).first()
    if existing:
        if amount is not None and to_minor(amount) != existing.amount_minor:
            raise ConflictError("This refund request was already made with another amount.")
        return existing, False
    if payment.status not in (S.SUCCEEDED, S.PARTIALLY_REFUNDED):
        raise RefundError(
            f"Order {payment.order_number} has no successful payment to refund.",
            code="not_refundable",
        )
    left = payment.refundable_minor
    amount_minor = left if amount is None else to_minor(amount)
    if amount_minor <= 0:
        raise RefundError("A refund must be a positive amount.", code="invalid_amount")
    if amount_minor > left:
        raise RefundError(
            f"Refund of {from_minor(amount_minor)} {payment.currency} exceeds what is left to "
            f"refund ({from_minor(left)} {payment.currency}).",
            code="over_refund",
            extra={"refundable": str(from_minor(left))},
        )
    refund = Refund.objects.create(
        payment=payment,
        source=source,
        reason=reason[:255],
        amount_minor=amount_minor,
        idempotency_key=refund_key(order_id, source),
    )
    result = _find_refund(payment, source) or stripe_client().v1.refunds.create(
        params={
            "payment_intent": payment.stripe_payment_intent_id,
            "amount": amount_minor,
            "metadata": {"order_id": str(order_id), "source": source},
        },
        options={"idempotency_key": refund.idempotency_key},
    )
    return _refund_record(payment, refund, result.id), True


def _refund_record(payment: Payment, refund: Refund, stripe_refund_id: str) -> Refund:
    refund.stripe_refund_id = stripe_refund_id
    refund.status = Refund.Status.SUCCEEDED
    refund.save(update_fields=["stripe_refund_id", "status"])
    payment.refunded_minor += refund.amount_minor
    full = payment.refunded_minor == payment.amount_minor
    payment.status = S.REFUNDED if full else S.PARTIALLY_REFUNDED
    payment.save(update_fields=["refunded_minor", "status", "updated_at"])
    publish(
        "refund.succeeded",
        payment.order_id,
        {
            "order_id": str(payment.order_id),
            "refund_id": str(refund.pk),
            "stripe_refund_id": stripe_refund_id,
            "amount": str(from_minor(refund.amount_minor)),
            "currency": payment.currency,
            "full": full,
            "refunded_total": str(from_minor(payment.refunded_minor)),
            "reason": refund.reason,
        },
    )
    logger.info(
        "order %s: refunded %s (%s)",
        payment.order_id,
        from_minor(refund.amount_minor),
        refund.reason,
    )
    return refund


@transaction.atomic
def refund_adopt(*, order_id: str, stripe_refund) -> Refund | None:
    """Record a refund found at Stripe but not here (reconciliation repair)."""
    payment = Payment.objects.select_for_update(of=("self",)).get(order_id=order_id)
    if payment.refunds.filter(stripe_refund_id=stripe_refund.id).exists():
        return None
    source = _metadata(stripe_refund).get("source") or f"stripe:{stripe_refund.id}"
    if payment.refunds.filter(source=source).exists():
        return None
    refund = Refund.objects.create(
        payment=payment,
        source=source,
        reason="Found at Stripe by reconciliation",
        amount_minor=stripe_refund.amount,
        idempotency_key=refund_key(order_id, source),
    )
    return _refund_record(payment, refund, stripe_refund.id)
