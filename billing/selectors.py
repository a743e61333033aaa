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
