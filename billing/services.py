"""Writes of the billing app: Stripe customers, captures, charges, refunds, each exactly once.

Every Stripe call runs in atomic phases (docs/billing.md; Brandur Leach, "Implementing
Stripe-like Idempotency Keys in Postgres"), never inside a database transaction:

1. a short transaction locks our row (Payment or Refund), checks the step is still to do, and
   commits a record of the call about to be made (`Payment.step`, a pending `Refund`);
2. the call to Stripe, with no transaction open and no row locked, carrying an Idempotency-Key
   derived from the order and the step (`chargeflow:order:<id>:capture`, …): Stripe answers a
   repeated key with its first answer, so a retry never moves money twice;
3. a new short transaction records Stripe's answer (forward only) and publishes the fact.

A crash anywhere resumes from the last committed phase: the redelivered event (its subscriber is
registered with `transactional=False`) finds the step recorded and repeats the call with the same
key. The rows make concurrent duplicates harmless too: the answer is applied under the row lock,
forward only, and the event is published once.
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
# Payment states a PaymentIntent's state may still move (never back from the others).
OPEN = (S.PENDING, S.AUTHORIZED, S.PROCESSING, S.ACTION_REQUIRED)


class PaymentNotReady(RetryLater):
    """invoice.issued arrived before billing handled order.placed: raise, so it is retried."""


class StepInFlight(RetryLater):
    """Another worker is making this payment's Stripe call right now (a duplicate delivered at
    the same time): retried later, when it finds the step done. A step whose worker died is
    taken over once its lease (BILLING_STEP_LEASE_SECONDS) has run out."""


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


def _metadata(obj) -> dict[str, Any]:
    return dict(obj.get("metadata") or {})


def _locked(order_id) -> Payment | None:
    return (
        Payment.objects.select_for_update(of=("self",))
        .select_related("customer")
        .filter(order_id=order_id)
        .first()
    )


# --- Customers -------------------------------------------------------------------------------


def customer_ensure(*, email: str) -> StripeCustomer:
    """The Stripe Customer for this email, created once and reused. Runs with no transaction
    open: the create carries a key derived from the email, so a crash before our row is written
    gets the same customer back from Stripe."""
    existing = StripeCustomer.objects.filter(email=email).first()
    if existing:
        return existing
    created = stripe_client().v1.customers.create(
        params={"email": email}, options={"idempotency_key": f"chargeflow:customer:{email}"}
    )
    customer, _ = StripeCustomer.objects.get_or_create(
        email=email, defaults={"stripe_id": created.id}
    )
    return customer


# --- The payment of an order -----------------------------------------------------------------


@transaction.atomic(savepoint=False)  # in order.placed's delivery: no savepoint of its own
def payment_prepare(
    *,
    order_id: str,
    order_number: str,
    email: str,
    currency: str,
    items: list[dict[str, Any]],
    totals: dict[str, str] | None = None,
    payment_method: str = "",
    payment_intent: str = "",
    order_url: str = "",
) -> Payment:
    """Record what billing needs from order.placed: how the order pays (an authorization made
    on the checkout page, or a payment method to charge), and the amounts the invoice must match
    (the order's totals, fixed at checkout: the total the shopper saw, and the net subtotal; an
    order.placed without totals, from before they were fixed: the line totals' sum only)."""
    if totals and totals.get("total"):
        subtotal, total = to_minor(str(totals["subtotal"])), to_minor(str(totals["total"]))
    else:
        subtotal, total = sum((to_minor(str(i["line_total"])) for i in items), 0), None
    authorized = bool(payment_intent)
    # Read, then insert (no get_or_create savepoint): the delivery's inbox claim serializes
    # duplicates of the event, and a concurrent insert from another event would only fail
    # this delivery, which is retried and finds the row.
    return Payment.objects.filter(order_id=order_id).first() or Payment.objects.create(
        order_id=order_id,
        order_number=order_number,
        order_url=order_url[:500],
        email=email,
        kind=Payment.Kind.AUTHORIZED if authorized else Payment.Kind.CHARGE,
        status=S.AUTHORIZED if authorized else S.PENDING,
        payment_method=payment_method,
        stripe_payment_intent_id=payment_intent,
        amount_minor=total if authorized else None,
        currency=currency,
        idempotency_key=charge_key(order_id),
        expected_subtotal_minor=subtotal,
        expected_total_minor=total,
    )


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


def payment_charge(
    *, order_id: str, invoice_number: str, totals: dict[str, str], currency: str
) -> Payment:
    """Collect the invoice total once: capture the checkout's authorization, or (API orders with
    a payment method) charge the card. Publishes payment.succeeded, .failed or .action_required.
    Atomic phases: never called inside a transaction."""
    with transaction.atomic(durable=True):
        payment = _locked(order_id)
        if payment is None:
            raise PaymentNotReady(
                f"order {order_id}: no payment recorded yet (order.placed pending)"
            )
        if payment.status not in (S.PENDING, S.AUTHORIZED) or (
            payment.invoice_number and payment.invoice_number != invoice_number
        ):
            logger.info(
                "order %s: payment already %s, not collecting again", order_id, payment.status
            )
            return payment
        problem = _verify_invoice(payment, totals, currency)
        if problem:
            logger.error("order %s: invoice %s refused: %s", order_id, invoice_number, problem)
            return _payment_failed(
                payment,
                code="amount_mismatch",
                message="We could not verify the amount of this order; you have not been charged.",
            )
        step = "capture" if payment.kind == Payment.Kind.AUTHORIZED else "charge"
        _step_begin(payment, step)
        payment.invoice_number = invoice_number
        payment.amount_minor = to_minor(Decimal(totals["total"]))
        payment.save()
    intent = _capture(payment) if step == "capture" else _charge(payment, currency=currency)
    with transaction.atomic(durable=True):
        return _apply_intent(_locked(order_id), intent)


def _step_begin(payment: Payment, step: str) -> None:
    """Phase 1's record of the call about to be made (the caller saves). Refuses while another
    worker's call is in flight and its lease still runs."""
    now = timezone.now()
    lease = timedelta(seconds=settings.BILLING_STEP_LEASE_SECONDS)
    if payment.step == step and payment.step_started_at and payment.step_started_at > now - lease:
        raise StepInFlight(f"order {payment.order_id}: {step} already in flight")
    if payment.step:
        logger.warning(
            "order %s: resuming %s left in flight since %s",
            payment.order_id,
            payment.step,
            payment.step_started_at,
        )
    else:
        payment.attempts += 1
    payment.step = step
    payment.step_started_at = now


def _capture(payment: Payment):
    """Capture the authorization made on the checkout page (phase 2: no transaction open)."""
    client = stripe_client()
    try:
        return client.v1.payment_intents.capture(
            payment.stripe_payment_intent_id,
            options={"idempotency_key": step_key(payment.order_id, "capture")},
        )
    except stripe.InvalidRequestError as exc:
        # Not capturable (the authorization expired or was cancelled): its state says why.
        intent = client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
        if intent.status == "requires_capture":
            raise  # capturable after all: a transient refusal, retried
        logger.warning("order %s: capture refused: %s", payment.order_id, exc.user_message)
        return intent


def _charge(payment: Payment, *, currency: str):
    """Create and confirm the PaymentIntent of an API order (phase 2: no transaction open): two
    calls, each with its own key, so a retry gets Stripe's first answers back."""
    client = stripe_client()
    customer = payment.customer or customer_ensure(email=payment.email)
    if payment.stripe_payment_intent_id:
        intent = client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    else:
        intent = client.v1.payment_intents.create(
            params={
                "amount": payment.amount_minor,
                "currency": currency.lower(),
                "customer": customer.stripe_id,
                "payment_method": payment.payment_method,
                "payment_method_types": ["card"],
                "metadata": {
                    "order_id": str(payment.order_id),
                    "order_number": payment.order_number,
                    "invoice_number": payment.invoice_number,
                },
            },
            options={"idempotency_key": f"{payment.idempotency_key}:create"},
        )
        # A recovery point: the intent exists (no money moved yet); the webhook can find it.
        # The customer is recorded with it (Stripe gives the same one back to a retry: the
        # key is the email's).
        Payment.objects.filter(pk=payment.pk).update(
            stripe_payment_intent_id=intent.id, customer=customer
        )
    if intent.amount != payment.amount_minor:
        raise ConflictError(f"order {payment.order_id}: intent {intent.id} is for {intent.amount}")
    if intent.status == "requires_confirmation":
        try:
            intent = client.v1.payment_intents.confirm(
                intent.id, options={"idempotency_key": f"{payment.idempotency_key}:confirm"}
            )
        except stripe.CardError:
            intent = client.v1.payment_intents.retrieve(intent.id)  # the decline, with its reason
    return intent


def _failure_of(intent) -> tuple[str, str]:
    error = intent.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code") or intent.status
    message = error.get("message") or f"The payment could not be completed ({intent.status})."
    if intent.status == "canceled" and not intent.get("last_payment_error"):
        code = "authorization_canceled"
        message = "The card authorization expired or was cancelled before it could be captured."
    return code, message


def _apply_intent(payment: Payment, intent) -> Payment:
    """Move the (locked) payment to what the PaymentIntent says, forward only, publishing the
    fact once. Used by the worker, the webhook, the 3-D Secure return and reconciliation."""
    if payment.status not in OPEN:
        return payment
    payment.step = ""
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
                "captured": payment.kind == Payment.Kind.AUTHORIZED,
            },
        )
    elif status == "requires_capture":
        payment.status = S.AUTHORIZED
        payment.save()
    elif status == "requires_action":
        if payment.status == S.ACTION_REQUIRED:
            payment.save()
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
    payment.step = ""
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


def payment_sync(*, order_id: str, intent=None) -> Payment:
    """Bring the payment up to its PaymentIntent's current state at Stripe (read fresh, with no
    transaction open, so an event that arrives late or out of order cannot move it backwards)."""
    payment = Payment.objects.get(order_id=order_id)
    intent_id = (intent and intent.id) or payment.stripe_payment_intent_id
    if payment.status not in OPEN or not intent_id:
        return payment
    fresh = stripe_client().v1.payment_intents.retrieve(intent_id)
    if _metadata(fresh).get("order_id") != str(payment.order_id):
        raise ConflictError(f"intent {intent_id} does not belong to order {order_id}")
    with transaction.atomic():
        return _apply_intent(_locked(order_id), fresh)


def payment_action_expire(*, order_id: str) -> Payment:
    """Cancel a 3-D Secure authentication the customer did not finish in time."""
    payment = Payment.objects.get(order_id=order_id)
    if payment.status != S.ACTION_REQUIRED or payment.action_expires_at > timezone.now():
        return payment
    client = stripe_client()
    intent = client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    if intent.status == "requires_action":
        intent = client.v1.payment_intents.cancel(
            intent.id, options={"idempotency_key": f"{payment.idempotency_key}:cancel"}
        )
    with transaction.atomic():
        payment = _locked(order_id)
        if intent.status == "canceled" and payment.status in OPEN:
            return _payment_failed(
                payment,
                code="authentication_expired",
                message="The card authentication was not completed in time.",
            )
        return _apply_intent(payment, intent)


def payment_actions_expire_due() -> int:
    """Expire every overdue authentication (beat task). One payment at a time."""
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


def payment_release(*, order_id: str, reason: str) -> Payment | None:
    """Release an authorization that will not be captured (the order was cancelled): cancel the
    PaymentIntent, so the shopper's bank frees the money at once. Nothing to do for a payment
    that was never authorized or already collected (a collected one is refunded instead)."""
    with transaction.atomic(durable=True):
        payment = _locked(order_id)
        if payment is None or payment.status not in (S.AUTHORIZED, S.ACTION_REQUIRED, S.PENDING):
            return payment
        if not payment.stripe_payment_intent_id:
            payment.status = S.RELEASED
            payment.save(update_fields=["status", "updated_at"])
            return payment
        _step_begin(payment, "release")
        payment.save(update_fields=["step", "step_started_at", "attempts", "updated_at"])
    client = stripe_client()
    try:
        intent = client.v1.payment_intents.cancel(
            payment.stripe_payment_intent_id,
            options={"idempotency_key": step_key(order_id, "release")},
        )
    except stripe.InvalidRequestError:
        intent = client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    with transaction.atomic(durable=True):
        payment = _locked(order_id)
        if intent.status == "succeeded":
            return _apply_intent(payment, intent)  # captured meanwhile: a refund's business
        if payment.status in OPEN and intent.status == "canceled":
            payment.status = S.RELEASED
            payment.step = ""
            payment.save()
            publish(
                "payment.released",
                payment.order_id,
                {
                    "order_id": str(payment.order_id),
                    "amount": str(from_minor(intent.amount)),
                    "currency": payment.currency,
                    "payment_intent": intent.id,
                    "reason": reason,
                },
            )
            logger.info("order %s: authorization %s released (%s)", order_id, intent.id, reason)
        return payment


# --- Webhooks --------------------------------------------------------------------------------

HANDLED_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.requires_action",
    "payment_intent.canceled",
    "payment_intent.processing",
    "payment_intent.amount_capturable_updated",
}


def stripe_event_handle(*, event) -> bool:
    """Apply a verified Stripe event once (deduplicated on its id). Returns False for a
    duplicate. The intent is read back from Stripe: the payload may be stale.

    An authorization made on the checkout page whose order was never placed (the shopper closed
    the browser right after 3-D Secure) has no payment here yet: billing reports it as
    `payment.authorized`, and the orders app places the order from its checkout."""
    obj = event.data.object
    order_id = _metadata(obj).get("order_id")
    with transaction.atomic():
        record, _created = StripeEvent.objects.get_or_create(
            event_id=event.id,
            defaults={
                "type": event.type,
                "object_id": obj.get("id") or "",
                "order_id": order_id if event.type in HANDLED_EVENTS else None,
            },
        )
    if record.processed_at:
        logger.info("stripe event %s (%s) already handled", event.id, event.type)
        return False
    if event.type in HANDLED_EVENTS and order_id:
        if Payment.objects.filter(order_id=order_id).exists():
            payment_sync(order_id=order_id, intent=obj)
        else:
            checkout_authorization_report(intent_id=obj.get("id"))
    StripeEvent.objects.filter(pk=record.pk).update(processed_at=timezone.now())
    return True


def checkout_authorization_report(*, intent_id: str) -> bool:
    """Tell the orders app that a checkout's PaymentIntent is authorized (`payment.authorized`),
    so that it places the order if the browser never came back. Returns whether it was."""
    intent = stripe_client().v1.payment_intents.retrieve(intent_id)
    order_id = _metadata(intent).get("order_id")
    if intent.status != "requires_capture" or not order_id:
        return False
    with transaction.atomic():
        publish(
            "payment.authorized",
            order_id,
            {
                "order_id": order_id,
                "payment_intent": intent.id,
                "amount": str(from_minor(intent.amount)),
                "currency": intent.currency.upper(),
            },
        )
    logger.info("order %s: checkout authorization %s reported", order_id, intent.id)
    return True


# --- Refunds ---------------------------------------------------------------------------------


def refund_create(
    *, order_id: str, source: str, reason: str, amount: Decimal | None = None
) -> tuple[Refund, bool]:
    """Refund (part of) a successful payment, once per `source` (`shipment_failed`,
    `api:<Idempotency-Key>`, `admin:<form token>`); without `amount`, all that is left.
    Returns (refund, created). Refuses an over-refund with RefundError (code over_refund).

    An authorization that was never captured is released instead (nothing to refund).
    Atomic phases: the pending Refund (which reserves its amount) is committed before Stripe is
    called with the refund's key; the answer is recorded in a new transaction."""
    with transaction.atomic(durable=True):
        payment = _locked(order_id)
        if payment is None:
            raise NotFoundError("No payment for this order.")
        existing = payment.refunds.filter(source=source).first()
        if existing:
            if amount is not None and to_minor(amount) != existing.amount_minor:
                raise ConflictError("This refund request was already made with another amount.")
            if existing.status != Refund.Status.PENDING:
                return existing, False
            refund, created = existing, False
        else:
            if payment.status in (S.AUTHORIZED, S.ACTION_REQUIRED):
                raise RefundError(
                    f"Order {payment.order_number} was authorized but never charged: cancel it "
                    "to release the authorization.",
                    code="not_captured",
                )
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
                    f"Refund of {from_minor(amount_minor)} {payment.currency} exceeds what is "
                    f"left to refund ({from_minor(left)} {payment.currency}).",
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
            created = True
    try:
        result = stripe_client().v1.refunds.create(
            params={
                "payment_intent": payment.stripe_payment_intent_id,
                "amount": refund.amount_minor,
                "metadata": {"order_id": str(order_id), "source": source},
            },
            options={"idempotency_key": refund.idempotency_key},
        )
    except (stripe.InvalidRequestError, stripe.CardError) as exc:
        # Stripe refused it for good: free the amount it reserved and say why. (Connection
        # errors and 5xx propagate: the refund stays pending and the retry resumes it.)
        Refund.objects.filter(pk=refund.pk, status=Refund.Status.PENDING).update(
            status=Refund.Status.FAILED, last_error=str(exc.user_message or exc)[:2000]
        )
        logger.error("order %s: Stripe refused refund %s: %s", order_id, refund.pk, exc)
        raise RefundError(
            f"Stripe refused the refund: {exc.user_message or exc}", code="stripe_refused"
        ) from exc
    with transaction.atomic(durable=True):
        payment = _locked(order_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status == Refund.Status.PENDING:
            _refund_record(payment, refund, result.id)
    return refund, created


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
