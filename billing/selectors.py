from decimal import Decimal

from billing.models import Payment, Refund
from chargeflow.money import from_minor


def payment_for_order(*, order_id) -> Payment | None:
    return Payment.objects.select_related("customer").filter(order_id=order_id).first()


def payment_amount(payment: Payment) -> Decimal | None:
    return None if payment.amount_minor is None else from_minor(payment.amount_minor)


def payments_to_reconcile():
    """Every payment, oldest first (a pending one may have an intent our crash lost)."""
    return Payment.objects.select_related("customer").order_by("created_at")


def refunds_of(*, payment: Payment):
    return Refund.objects.filter(payment=payment).order_by("created_at")


def order_ids_for_payment_reference(*, reference: str) -> list:
    """Orders whose payment the bank or Stripe quotes: a PaymentIntent id (pi_…), a refund id
    (re_…) or a Stripe customer id (cus_…)."""
    reference = reference.strip()
    if not reference:
        return []
    from django.db.models import Q

    ids = set(
        Payment.objects.filter(
            Q(stripe_payment_intent_id=reference) | Q(customer__stripe_id=reference)
        ).values_list("order_id", flat=True)[:200]
    )
    ids |= set(
        Refund.objects.filter(stripe_refund_id=reference).values_list(
            "payment__order_id", flat=True
        )
    )
    return list(ids)
