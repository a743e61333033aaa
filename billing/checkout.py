"""Billing's one synchronous port: the card authorization of a checkout.

Apps talk through events, with this one exception (an `ignore_imports` line in the import-linter
contract, docs/architecture.md): a shopper on the checkout page, or an API client, waits for the
card to be authorized before the order exists, so the orders app asks billing directly, here, to

- open a PaymentIntent for the checkout's exact total, with manual capture (`authorization_open`):
  the page (Stripe.js `confirmCardPayment`) or the API client confirms it, 3-D Secure included;
- check that an intent is authorized for exactly that amount before placing the order
  (`authorization_check`);
- release an authorization whose order will never be placed (`authorization_release`).

Nothing here writes billing's tables: the Payment of the order is recorded from `order.placed`,
like every other fact. Every call is a remote call: never call these inside a transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

import stripe

from billing.stripe_client import stripe_client
from chargeflow.errors import ApplicationError
from chargeflow.money import from_minor, to_minor

logger = logging.getLogger(__name__)


class AuthorizationError(ApplicationError):
    """The PaymentIntent cannot pay for this order (HTTP 402 on the API)."""

    code = "payment_not_authorized"
    status = 402


@dataclass(frozen=True)
class Authorization:
    payment_intent: str
    client_secret: str
    amount: Decimal
    currency: str
    status: str
    order_id: str

    @property
    def authorized(self) -> bool:
        return self.status == "requires_capture"


def _of(intent) -> Authorization:
    return Authorization(
        payment_intent=intent.id,
        client_secret=intent.client_secret or "",
        amount=from_minor(intent.amount),
        currency=intent.currency.upper(),
        status=intent.status,
        order_id=(intent.get("metadata") or {}).get("order_id", ""),
    )


def authorization_open(
    *, order_id: str, order_number: str, amount: Decimal, currency: str
) -> Authorization:
    """A PaymentIntent for `amount`, manual capture, for the order about to be placed (its id is
    chosen at checkout). Asking again for the same order and amount returns the same intent (the
    Idempotency-Key is the order and the amount); another amount (the cart changed) gets a new
    one, and the previous one, never confirmed, holds no money."""
    amount_minor = to_minor(amount)
    params = {
        "amount": amount_minor,
        "currency": currency.lower(),
        "capture_method": "manual",
        "payment_method_types": ["card"],
        "metadata": {"order_id": str(order_id), "order_number": order_number},
    }
    intent = stripe_client().v1.payment_intents.create(
        params=params,
        options={"idempotency_key": f"chargeflow:order:{order_id}:authorize:{amount_minor}"},
    )
    return _of(intent)


def authorization_check(
    *, payment_intent: str, amount: Decimal, currency: str, order_id: str | None = None
) -> Authorization:
    """The intent, if it is authorized (`requires_capture`) for exactly `amount` in `currency`
    (and, given `order_id`, made for that order); AuthorizationError saying why otherwise."""
    if not isinstance(payment_intent, str) or not payment_intent.startswith("pi_"):
        raise AuthorizationError("This is not a PaymentIntent id.", code="invalid_payment_intent")
    try:
        intent = stripe_client().v1.payment_intents.retrieve(payment_intent)
    except stripe.InvalidRequestError:
        raise AuthorizationError("No such PaymentIntent.", code="unknown_payment_intent") from None
    found = _of(intent)
    if order_id is not None and found.order_id != str(order_id):
        raise AuthorizationError(
            "This payment was authorized for another checkout.", code="payment_intent_mismatch"
        )
    if found.status != "requires_capture":
        raise AuthorizationError(
            f"The card has not been authorized for this order (status {found.status}).",
            code="payment_not_authorized",
            extra={"payment_intent_status": found.status},
        )
    if to_minor(found.amount) != to_minor(amount) or found.currency != currency.upper():
        raise AuthorizationError(
            f"The card was authorized for {found.amount} {found.currency}, but the order's total "
            f"is {amount} {currency.upper()}.",
            code="amount_mismatch",
            extra={"authorized": str(found.amount), "total": str(amount)},
        )
    return found


def authorization_status(*, payment_intent: str) -> Authorization:
    return _of(stripe_client().v1.payment_intents.retrieve(payment_intent))


def authorization_release(*, payment_intent: str) -> Authorization:
    """Cancel a PaymentIntent whose order will not be placed (an abandoned checkout), so that no
    authorization keeps holding the shopper's money. A captured or already cancelled one is
    left as it is."""
    client = stripe_client()
    try:
        intent = client.v1.payment_intents.cancel(
            payment_intent,
            options={"idempotency_key": f"chargeflow:checkout:{payment_intent}:release"},
        )
    except stripe.InvalidRequestError:
        intent = client.v1.payment_intents.retrieve(payment_intent)
    logger.info("checkout intent %s released (%s)", payment_intent, intent.status)
    return _of(intent)
