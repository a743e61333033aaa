"""Writes of the checkout: hold the stock while the card is authorized, place the order once it is.

The money path (docs/checkout.md):

1. `checkout_hold` (the shopper presses "Pay", or an API client asks for a quote): the whole form
   is valid; the stock is taken off the shelf for CHECKOUT_HOLD_MINUTES and the exact total fixed
   (a `Checkout` row, committed); then, with no transaction open, billing opens a PaymentIntent for
   that total with manual capture (`billing.checkout`, the one synchronous port between the apps).
2. The page confirms the intent with Stripe.js (3-D Secure in the page; a decline is shown next to
   the card, and another card can be tried on the same intent), or the API client confirms it.
3. `checkout_place`: the intent is checked at Stripe (authorized, for exactly the total, for this
   checkout), then the order is written with the held stock and `order.placed` published. Only now
   does anything else happen: invoice, emails, capture.

An authorization whose order was never placed (the browser closed right after 3-D Secure) is placed
by billing's `payment.authorized` (Stripe's webhook), or voided by the sweep
(`checkouts_sweep`, a beat task) once its hold has expired: no authorization holds the shopper's
money for an order that does not exist. A hold that runs out gives its stock back at once (also
lazily, before any new hold), so abandoned checkouts never keep a product away from others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.checkout import (
    Authorization,
    AuthorizationError,
    authorization_check,
    authorization_open,
    authorization_release,
    authorization_status,
)
from chargeflow.errors import ConflictError
from orders.models import Checkout, Order
from orders.pricing import PriceLine
from orders.selectors import price_quote
from orders.services import (
    CartItem,
    OutOfStockError,
    _merge_items,
    order_write,
    request_fingerprint,
    stock_put_back,
    stock_take,
)

logger = logging.getLogger(__name__)

C = Checkout.Status
OPEN = (C.HOLDING, C.EXPIRED)


class CheckoutPlaced(ConflictError):
    """This checkout already became an order (a second click, the webhook first)."""

    code = "checkout_placed"

    def __init__(self, order: Order):
        super().__init__(f"Order {order.number} was already placed.")
        self.order = order


class CheckoutExpired(ConflictError):
    code = "checkout_expired"


@dataclass(frozen=True)
class Hold:
    checkout: Checkout
    authorization: Authorization


def _hold_minutes() -> timedelta:
    return timedelta(minutes=settings.CHECKOUT_HOLD_MINUTES)


def _quantities(checkout: Checkout) -> dict[str, int]:
    return {line["sku"]: int(line["quantity"]) for line in checkout.lines}


def _price_lines(checkout: Checkout) -> list[PriceLine]:
    return [
        PriceLine(line["sku"], line["name"], int(line["quantity"]), Decimal(line["unit_price"]))
        for line in checkout.lines
    ]


def checkout_hold(
    *,
    token: str,
    email: str,
    shipping_address: dict[str, str],
    items: list[CartItem],
    customer=None,
) -> Hold:
    """Start (or resume) paying: hold the stock, fix the total, open the PaymentIntent.

    The same token and request again (a second card after a decline) resumes the same hold, its
    time renewed, and the same intent. Another cart or address under the same token gives the old
    stock back and holds anew (the intent follows the new total). CheckoutPlaced if the token's
    order exists; OutOfStockError (nothing held) if the stock is not there."""
    wanted = _merge_items(items)
    fingerprint = request_fingerprint(
        {"email": email, "address": shipping_address, "items": sorted(wanted.items())}
    )
    checkouts_expire_due()
    try:
        checkout, previous_intent = _hold(
            token, fingerprint, wanted, email, shipping_address, customer
        )
    except IntegrityError:
        # The same form's first Pay twice at once (a double click): the other request created the
        # checkout first; this one now finds it (locked) and resumes it.
        checkout, previous_intent = _hold(
            token, fingerprint, wanted, email, shipping_address, customer
        )
    # Phase 2, no transaction open: the intent for exactly this total (the same one again for
    # the same checkout and total: its key is the checkout and the amount).
    authorization = authorization_open(
        order_id=str(checkout.pk),
        order_number=checkout.number,
        amount=checkout.total,
        currency=checkout.currency,
    )
    if previous_intent and previous_intent != authorization.payment_intent:
        authorization_release(payment_intent=previous_intent)
    if checkout.payment_intent != authorization.payment_intent:
        Checkout.objects.filter(pk=checkout.pk).update(payment_intent=authorization.payment_intent)
        checkout.payment_intent = authorization.payment_intent
    return Hold(checkout=checkout, authorization=authorization)


def _hold(token, fingerprint, wanted, email, shipping_address, customer) -> tuple[Checkout, str]:
    """Phase 1 of `checkout_hold`: the stock taken and the checkout committed."""
    previous_intent = ""
    with transaction.atomic(durable=True):
        checkout = Checkout.objects.select_for_update().filter(token=token).first()
        if checkout and checkout.status == C.PLACED:
            raise CheckoutPlaced(Order.objects.get(pk=checkout.pk))
        if checkout and checkout.status == C.HOLDING and checkout.fingerprint == fingerprint:
            checkout.expires_at = timezone.now() + _hold_minutes()
            checkout.save(update_fields=["expires_at", "updated_at"])
        else:
            if checkout and checkout.status == C.HOLDING:
                stock_put_back(_quantities(checkout))
            if checkout and checkout.status in (C.RELEASING, C.RELEASED):
                # Its number and intent are spent: the token starts a new checkout.
                checkout.token = f"{token}:released:{checkout.pk}"
                checkout.save(update_fields=["token", "updated_at"])
                checkout = None
            products = stock_take(wanted)
            lines = [PriceLine(p.sku, p.name, wanted[p.sku], p.price) for p in products]
            quote = price_quote(
                lines=lines, country=shipping_address["country"], currency=products[0].currency
            )
            checkout = checkout or Checkout(token=token)
            previous_intent = checkout.payment_intent if checkout.pk else ""
            checkout.fingerprint = fingerprint
            checkout.status = C.HOLDING
            checkout.email = email
            checkout.customer = customer
            checkout.shipping_address = shipping_address
            checkout.lines = [
                {
                    "sku": line.sku,
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_price": str(line.unit_price),
                }
                for line in lines
            ]
            checkout.currency = quote.currency
            checkout.total = quote.total
            checkout.expires_at = timezone.now() + _hold_minutes()
            checkout.save()
            logger.info(
                "checkout %s (%s): holding stock for %s %s until %s",
                checkout.number,
                checkout.pk,
                checkout.total,
                checkout.currency,
                checkout.expires_at.isoformat(),
            )
    return checkout, previous_intent


def checkout_quote(*, token: str, items: list[CartItem], country: str) -> Hold:
    """The API's quote: the exact total of `items` shipped to `country`, the stock held for
    CHECKOUT_HOLD_MINUTES, and a PaymentIntent for that total (manual capture) that the client
    confirms, then names in POST /api/v1/orders/. The address and email come with the order."""
    return checkout_hold(
        token=token,
        email="",
        shipping_address={"country": country.upper()},
        items=items,
    )


def checkout_place_for_api(
    *,
    payment_intent: str,
    email: str,
    shipping_address: dict[str, str],
    items: list[CartItem],
    customer=None,
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> tuple[Order, bool]:
    """POST /api/v1/orders/ with an authorized `payment_intent`: the order of the quote that
    opened it, placed only if the items and country are the quote's and the intent is
    authorized for exactly its total (AuthorizationError, 402, otherwise). An intent already used
    by an order is a conflict (409) unless it is the same request again (same key and body).
    Returns (order, created)."""
    checkout = Checkout.objects.filter(payment_intent=payment_intent).first()
    if checkout is None:
        raise AuthorizationError(
            "Unknown payment_intent: create it with POST /api/v1/payment-intents/.",
            code="unknown_payment_intent",
        )
    if checkout.status == C.PLACED:
        order = Order.objects.get(pk=checkout.pk)
        if idempotency_key and order.idempotency_key == idempotency_key:
            if order.request_fingerprint != fingerprint:
                raise ConflictError(
                    "This Idempotency-Key was already used with a different request.",
                    code="idempotency_key_reused",
                )
            return order, False
        raise ConflictError(
            f"This payment_intent already paid for order {order.number}.",
            code="payment_intent_used",
        )
    quoted = {line["sku"]: int(line["quantity"]) for line in checkout.lines}
    if quoted != _merge_items(items) or (
        checkout.shipping_address.get("country") != shipping_address["country"]
    ):
        raise AuthorizationError(
            "This payment_intent was quoted for other items or another country: quote this "
            "order again.",
            code="quote_mismatch",
            extra={"quoted_total": str(checkout.total)},
        )
    authorization_check(
        payment_intent=payment_intent,
        amount=checkout.total,
        currency=checkout.currency,
        order_id=str(checkout.pk),
    )
    with transaction.atomic():
        updated = Checkout.objects.filter(pk=checkout.pk, status__in=OPEN).update(
            email=email, shipping_address=shipping_address, customer=customer
        )
    if not updated:
        return checkout_place_for_api(
            payment_intent=payment_intent,
            email=email,
            shipping_address=shipping_address,
            items=items,
            customer=customer,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )
    order = checkout_place_authorized(
        checkout_id=checkout.pk,
        payment_intent=payment_intent,
        amount=checkout.total,
        currency=checkout.currency,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
    )
    return order, True


def checkout_place(*, checkout_id, payment_intent: str = "") -> Order:
    """Place the order of a checkout whose card the page (or an API client) says is authorized.
    Checked at Stripe first (no transaction open): AuthorizationError (402) unless the intent is
    authorized for exactly the checkout's total. Idempotent: the order, once placed, again."""
    checkout = Checkout.objects.get(pk=checkout_id)
    if checkout.status == C.PLACED:
        return Order.objects.get(pk=checkout.pk)
    intent_id = payment_intent or checkout.payment_intent
    if checkout.payment_intent and intent_id != checkout.payment_intent:
        raise AuthorizationError(
            "This payment belongs to another checkout.", code="payment_intent_mismatch"
        )
    authorization_check(
        payment_intent=intent_id,
        amount=checkout.total,
        currency=checkout.currency,
        order_id=str(checkout.pk),
    )
    return checkout_place_authorized(
        checkout_id=checkout.pk,
        payment_intent=intent_id,
        amount=checkout.total,
        currency=checkout.currency,
    )


def checkout_place_authorized(
    *,
    checkout_id,
    payment_intent: str,
    amount: Decimal,
    currency: str,
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> Order:
    """Place the order of a checkout whose authorization is known (checked at Stripe by the
    caller, or reported by billing's `payment.authorized`). A hold that expired meanwhile takes
    its stock again; if the stock is gone, the authorization is released and OutOfStockError
    raised: the shopper is not charged."""
    try:
        with transaction.atomic():
            checkout = Checkout.objects.select_for_update().get(pk=checkout_id)
            if checkout.status == C.PLACED:
                return Order.objects.get(pk=checkout.pk)
            if checkout.status not in OPEN:
                raise CheckoutExpired(
                    "This checkout expired and its card authorization was released; you have "
                    "not been charged. Please check out again.",
                )
            if (Decimal(amount), currency.upper()) != (checkout.total, checkout.currency):
                raise AuthorizationError(
                    f"The card was authorized for {amount} {currency}, but the order's total is "
                    f"{checkout.total} {checkout.currency}.",
                    code="amount_mismatch",
                )
            if checkout.status == C.EXPIRED:
                stock_take(_quantities(checkout))
            order = order_write(
                order_id=checkout.pk,
                number=checkout.number,
                email=checkout.email,
                shipping_address=checkout.shipping_address,
                lines=_price_lines(checkout),
                currency=checkout.currency,
                customer=checkout.customer,
                payment_intent=payment_intent,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint or checkout.fingerprint,
            )
            checkout.status = C.PLACED
            checkout.payment_intent = payment_intent
            checkout.save(update_fields=["status", "payment_intent", "updated_at"])
            return order
    except OutOfStockError:
        _release(checkout_id, reason="out of stock when the authorization arrived")
        raise


# --- Holds that run out ------------------------------------------------------------------------


def checkouts_expire_due(*, now=None) -> int:
    """Give back the stock of every hold that ran out (no remote call: cheap enough to run before
    each new hold, so that an abandoned checkout never keeps stock from the next shopper)."""
    now = now or timezone.now()
    count = 0
    with transaction.atomic():
        due = list(
            Checkout.objects.select_for_update(skip_locked=True)
            .filter(status=C.HOLDING, expires_at__lte=now)
            .order_by("expires_at")[:100]
        )
        for checkout in due:
            stock_put_back(_quantities(checkout))
            checkout.status = C.EXPIRED
            checkout.save(update_fields=["status", "updated_at"])
            logger.info("checkout %s (%s): hold expired, stock back", checkout.number, checkout.pk)
            count += 1
    return count


def _release(checkout_id, *, reason: str) -> Checkout:
    """Void a checkout's authorization and give its stock back: claim it (releasing, committed),
    cancel the intent with no transaction open, then record it released."""
    with transaction.atomic():
        checkout = Checkout.objects.select_for_update().get(pk=checkout_id)
        if checkout.status in (C.PLACED, C.RELEASED):
            return checkout
        if checkout.status == C.HOLDING:
            stock_put_back(_quantities(checkout))
        checkout.status = C.RELEASING
        checkout.save(update_fields=["status", "updated_at"])
    if checkout.payment_intent:
        authorization_release(payment_intent=checkout.payment_intent)
    Checkout.objects.filter(pk=checkout.pk, status=C.RELEASING).update(
        status=C.RELEASED, updated_at=timezone.now()
    )
    logger.info("checkout %s (%s): released (%s)", checkout.number, checkout.pk, reason)
    checkout.status = C.RELEASED
    return checkout


@dataclass(frozen=True)
class SweepResult:
    expired: int
    released: int


def checkouts_sweep(*, now=None) -> SweepResult:
    """The beat task: expire holds that ran out, then void the authorization of every checkout
    whose hold expired without an order (an abandoned 3-D Secure, a closed browser), after a
    grace period in which Stripe's webhook could still have placed it."""
    now = now or timezone.now()
    expired = checkouts_expire_due(now=now)
    grace = timedelta(seconds=settings.CHECKOUT_RELEASE_GRACE_SECONDS)
    due = list(
        Checkout.objects.filter(
            status__in=(C.EXPIRED, C.RELEASING), expires_at__lte=now - grace
        ).values_list("pk", flat=True)[:100]
    )
    released = 0
    for checkout_id in due:
        try:
            _release(checkout_id, reason="hold expired")
            released += 1
        except Exception:
            logger.exception("checkout %s: releasing the authorization failed", checkout_id)
    return SweepResult(expired=expired, released=released)


def checkout_authorization_state(*, checkout: Checkout) -> Authorization | None:
    """The checkout's intent as Stripe sees it now (for the page and the admin)."""
    if not checkout.payment_intent:
        return None
    return authorization_status(payment_intent=checkout.payment_intent)
