"""Compare our payments and refunds with Stripe's; report every mismatch and optionally repair.

Repairs are limited to what is safe to do automatically:
- a payment whose state lags behind its PaymentIntent is synced (payment_sync publishes the
  missing payment.succeeded / .failed);
- a refund made at Stripe for one of our orders but not recorded here is recorded
  (refund.succeeded follows, and with it the credit note);
- an extra PaymentIntent for an order that nothing charged yet (not succeeded) is cancelled.
Money that moved twice (two succeeded intents for one order) is only reported: a person decides.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import stripe

from billing import selectors, services
from billing.models import Payment, Refund
from billing.stripe_client import stripe_client

logger = logging.getLogger(__name__)

EXPECTED_INTENT_STATUS = {
    Payment.Status.SUCCEEDED: {"succeeded"},
    Payment.Status.REFUNDED: {"succeeded"},
    Payment.Status.PARTIALLY_REFUNDED: {"succeeded"},
    Payment.Status.ACTION_REQUIRED: {"requires_action"},
    Payment.Status.PROCESSING: {"processing", "requires_confirmation"},
    Payment.Status.FAILED: {"requires_payment_method", "canceled"},
}


@dataclass
class Mismatch:
    order_id: str
    kind: str
    detail: str
    repaired: bool = False

    def __str__(self) -> str:
        mark = "REPAIRED" if self.repaired else "MISMATCH"
        return f"{mark} order {self.order_id} {self.kind}: {self.detail}"


def _intents_by_order() -> dict[str, list]:
    found: dict[str, list] = defaultdict(list)
    for intent in stripe_client().v1.payment_intents.list(params={"limit": 100}).auto_paging_iter():
        order_id = (intent.get("metadata") or {}).get("order_id")
        if order_id:
            found[order_id].append(intent)
    return found


def reconcile_payments(*, repair: bool = False) -> list[Mismatch]:
    client = stripe_client()
    intents = _intents_by_order()
    mismatches: list[Mismatch] = []

    def report(order_id, kind, detail, repaired=False):
        m = Mismatch(str(order_id), kind, detail, repaired)
        mismatches.append(m)
        (logger.info if repaired else logger.warning)("%s", m)

    known_orders = set()
    for payment in selectors.payments_to_reconcile():
        order_id = str(payment.order_id)
        known_orders.add(order_id)
        theirs = intents.get(order_id, [])
        succeeded = [i for i in theirs if i.status == "succeeded"]
        if len(succeeded) > 1:
            report(order_id, "charged_twice", ", ".join(i.id for i in succeeded))
        for extra in theirs:
            if extra.id == payment.stripe_payment_intent_id or extra.status == "succeeded":
                continue
            if not payment.stripe_payment_intent_id and len(theirs) == 1:
                continue  # the one intent whose id our lost transaction never recorded
            cancellable = extra.status in (
                "requires_confirmation",
                "requires_action",
                "requires_payment_method",
            )
            fixed = False
            if repair and cancellable:
                client.v1.payment_intents.cancel(extra.id)
                fixed = True
            report(order_id, "extra_intent", f"{extra.id} ({extra.status})", fixed)

        intent_id = payment.stripe_payment_intent_id or (theirs[0].id if theirs else "")
        if not intent_id:
            if payment.invoice_number and payment.status != Payment.Status.FAILED:
                report(order_id, "no_intent", f"ours {payment.status}, none at Stripe")
            continue
        intent = client.v1.payment_intents.retrieve(intent_id)
        expected = EXPECTED_INTENT_STATUS.get(payment.status, set())
        if intent.status not in expected or payment.stripe_payment_intent_id != intent.id:
            fixed = False
            if repair and payment.status in services.OPEN:
                fixed = services.payment_sync(order_id=order_id, intent=intent).status != (
                    payment.status
                )
            report(order_id, "status", f"ours {payment.status}, Stripe {intent.status}", fixed)
        if payment.amount_minor is not None and intent.amount != payment.amount_minor:
            report(order_id, "amount", f"ours {payment.amount_minor}, Stripe {intent.amount}")
        if intent.status != "succeeded":
            continue

        stripe_refunds = list(
            client.v1.refunds.list(
                params={"payment_intent": intent.id, "limit": 100}
            ).auto_paging_iter()
        )
        ours = {r.stripe_refund_id: r for r in selectors.refunds_of(payment=payment)}
        for refund in stripe_refunds:
            if refund.status not in ("succeeded", "pending") or refund.id in ours:
                continue
            fixed = False
            if repair:
                try:
                    fixed = (
                        services.refund_adopt(order_id=order_id, stripe_refund=refund) is not None
                    )
                except stripe.StripeError:
                    logger.exception("order %s: adopting refund %s failed", order_id, refund.id)
            report(order_id, "refund_missing_here", f"{refund.id} {refund.amount}", fixed)
        theirs_ids = {r.id for r in stripe_refunds}
        for stripe_id, refund in ours.items():
            if refund.status == Refund.Status.SUCCEEDED and stripe_id not in theirs_ids:
                report(order_id, "refund_missing_at_stripe", f"refund {refund.pk} {stripe_id}")
        payment.refresh_from_db()
        their_total = sum(r.amount for r in stripe_refunds if r.status in ("succeeded", "pending"))
        if their_total != payment.refunded_minor:
            report(
                order_id, "refunded_total", f"ours {payment.refunded_minor}, Stripe {their_total}"
            )

    for order_id, theirs in intents.items():
        if order_id not in known_orders:
            ids = ", ".join(f"{i.id} ({i.status})" for i in theirs)
            report(order_id, "unknown_order", ids)
    return mismatches
