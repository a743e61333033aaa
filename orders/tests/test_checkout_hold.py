"""Stock held only while someone is really paying (issue 8): the hold of a checkout, its expiry
with the clock moved, the sweep that voids abandoned authorizations, the webhook that places the
order of a closed browser, and shoppers racing for the last unit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from conftest import GUEST_ADDRESS, authorize_intent, intent_status
from orders.checkout import checkout_hold, checkout_place, checkouts_expire_due, checkouts_sweep
from orders.models import Checkout, Order, Product
from orders.services import CartItem, OutOfStockError
from orders.tests.factories import ProductFactory
from outbox.delivery import deliver
from outbox.events import Event

pytestmark = pytest.mark.usefixtures("stripe_server")

C = Checkout.Status


def hold(product, *, token=None, quantity=1):
    return checkout_hold(
        token=token or uuid.uuid4().hex,
        email="ada@example.com",
        shipping_address=GUEST_ADDRESS,
        items=[CartItem(sku=product.sku, quantity=quantity)],
    )


authorize = authorize_intent


def stock(product) -> int:
    return Product.objects.get(pk=product.pk).stock


@pytest.mark.django_db
def test_an_expired_hold_gives_its_stock_back_and_the_sweep_voids_its_intent(settings):
    settings.CHECKOUT_HOLD_MINUTES, settings.CHECKOUT_RELEASE_GRACE_SECONDS = 10, 60
    product = ProductFactory(stock=3)
    held = hold(product, quantity=2)
    assert stock(product) == 1 and held.checkout.status == C.HOLDING
    assert held.checkout.expires_at - timezone.now() > timedelta(minutes=9)
    # Nothing happens before the hold runs out.
    assert checkouts_expire_due(now=timezone.now() + timedelta(minutes=9)) == 0
    assert stock(product) == 1
    later = timezone.now() + timedelta(minutes=10, seconds=1)
    assert checkouts_expire_due(now=later) == 1
    assert stock(product) == 3
    assert Checkout.objects.get().status == C.EXPIRED
    # Within the grace period the webhook may still come: the intent is left alone.
    assert checkouts_sweep(now=later).released == 0
    result = checkouts_sweep(now=later + timedelta(seconds=61))
    assert result.released == 1
    assert Checkout.objects.get().status == C.RELEASED
    assert intent_status(held.authorization.payment_intent) == "canceled"
    assert stock(product) == 3 and not Order.objects.exists()


@pytest.mark.django_db
def test_an_abandoned_3d_secure_checkout_is_released_and_never_holds_money():
    product = ProductFactory(stock=1)
    held = hold(product)
    authorize(held.authorization.payment_intent, "pm_card_threeDSecure2Required")
    assert intent_status(held.authorization.payment_intent) == "requires_action"
    Checkout.objects.update(expires_at=timezone.now() - timedelta(hours=1))  # the clock moved
    checkouts_sweep()
    assert stock(product) == 1
    assert intent_status(held.authorization.payment_intent) == "canceled"


@pytest.mark.django_db
def test_an_authorized_checkout_whose_order_never_came_is_voided_by_the_sweep():
    """The browser closed right after 3-D Secure and the webhook never arrived: the sweep
    releases the authorization instead of leaving the shopper's money held."""
    product = ProductFactory(stock=1)
    held = hold(product)
    authorize(held.authorization.payment_intent)
    assert intent_status(held.authorization.payment_intent) == "requires_capture"
    Checkout.objects.update(expires_at=timezone.now() - timedelta(hours=1))
    assert checkouts_sweep().released == 1
    assert intent_status(held.authorization.payment_intent) == "canceled"
    assert stock(product) == 1 and not Order.objects.exists()


def payment_authorized(checkout: Checkout, intent_id: str) -> dict:
    return Event(
        id=uuid.uuid4(),
        type="payment.authorized",
        version=1,
        occurred_at=timezone.now(),
        aggregate_id=str(checkout.pk),
        correlation_id=uuid.uuid4(),
        data={
            "order_id": str(checkout.pk),
            "payment_intent": intent_id,
            "amount": str(checkout.total),
            "currency": checkout.currency,
        },
    ).to_envelope()


@pytest.mark.django_db(transaction=True)
def test_the_webhook_places_the_order_of_a_browser_that_never_came_back():
    product = ProductFactory(stock=1)
    held = hold(product)
    intent_id = held.authorization.payment_intent
    authorize(intent_id)
    envelope = payment_authorized(held.checkout, intent_id)
    assert deliver(subscriber_name="orders.on_payment_authorized", envelope=envelope)
    order = Order.objects.get()
    assert (order.pk, order.number) == (held.checkout.pk, held.checkout.number)
    assert order.payment_intent == intent_id and order.total == held.checkout.total
    # The browser comes back after all: the same order, nothing twice; the stock taken once.
    assert checkout_place(checkout_id=held.checkout.pk, payment_intent=intent_id) == order
    assert Order.objects.count() == 1 and stock(product) == 0
    # Nor can the sweep touch it.
    Checkout.objects.update(expires_at=timezone.now() - timedelta(hours=1))
    checkouts_sweep()
    assert intent_status(intent_id) == "requires_capture" and stock(product) == 0


@pytest.mark.django_db(transaction=True)
def test_the_webhook_after_the_hold_expired_places_the_order_if_the_stock_is_still_there():
    product = ProductFactory(stock=1)
    held = hold(product)
    authorize(held.authorization.payment_intent)
    Checkout.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    checkouts_expire_due()
    assert stock(product) == 1
    envelope = payment_authorized(held.checkout, held.authorization.payment_intent)
    deliver(subscriber_name="orders.on_payment_authorized", envelope=envelope)
    assert Order.objects.get().pk == held.checkout.pk and stock(product) == 0


@pytest.mark.django_db
def test_two_shoppers_race_for_the_last_unit_while_one_abandons():
    product = ProductFactory(stock=1, name="Last One")
    first = hold(product)  # shopper A presses Pay, then walks away
    with pytest.raises(OutOfStockError):
        hold(product)  # shopper B: held by A, nothing for B yet
    # A's hold runs out (the clock moved): B's next try finds the unit back on the shelf.
    Checkout.objects.filter(pk=first.checkout.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    second = hold(product)
    authorize(second.authorization.payment_intent)
    order = checkout_place(checkout_id=second.checkout.pk)
    assert order.pk == second.checkout.pk and stock(product) == 0
    # A comes back and authorizes after all: the unit is sold; A's authorization is released.
    authorize(first.authorization.payment_intent)
    with pytest.raises(OutOfStockError):
        checkout_place(checkout_id=first.checkout.pk)
    assert intent_status(first.authorization.payment_intent) == "canceled"
    assert Checkout.objects.get(pk=first.checkout.pk).status == C.RELEASED
    assert Order.objects.count() == 1 and stock(product) == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_shoppers_for_the_last_unit_get_one_hold():
    product = ProductFactory(stock=1)
    barrier = threading.Barrier(4)
    results: list = []

    def shop():
        try:
            barrier.wait()
            results.append(hold(product))
        except Exception as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=shop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    held = [r for r in results if not isinstance(r, Exception)]
    assert len(held) == 1, results
    assert all(isinstance(r, OutOfStockError) for r in results if r not in held)
    assert stock(product) == 0


@pytest.mark.postgres
def test_the_hold_tests_pass_on_sqlite_too():
    """The same tests on the embedded default (SQLite), in a process of their own."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{Path(__file__).relative_to(root)}",
            "-k",
            "not sqlite and not concurrent",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
