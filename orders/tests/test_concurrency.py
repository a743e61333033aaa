"""Real concurrency on PostgreSQL: threads with their own connections race for the same rows."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from orders.models import Order, Product
from orders.services import CartItem, OutOfStockError, order_checkout
from orders.tests.factories import ADDRESS, ProductFactory
from orders.tests.test_storefront import CHECKOUT, add, checkout_token

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=["one statement", "orm"])
def path(request, settings):
    """Both checkout paths: one statement in autocommit (the API's, orders migration 0007) and
    the ORM's (inside a transaction, SQLite)."""
    settings.CHECKOUT_ONE_STATEMENT = request.param == "one statement"
    return request.param


def _race(n: int, work):
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait(timeout=10)
            return work(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


@pytest.mark.parametrize("customers", [2, 8])
def test_racing_for_the_last_unit_gives_one_order_and_clear_out_of_stock(customers, path):
    product = ProductFactory(stock=1, name="Last One")

    def buy(i):
        try:
            order, _ = order_checkout(
                email=f"c{i}@example.com",
                shipping_address=ADDRESS,
                items=[CartItem(sku=product.sku, quantity=1)],
                payment_method="pm_card_visa",
            )
            return order.id
        except OutOfStockError as exc:
            return exc.message

    results = _race(customers, buy)

    orders = [r for r in results if not isinstance(r, str)]
    refusals = [r for r in results if isinstance(r, str)]
    assert len(orders) == 1
    assert refusals == ["Not enough stock for: Last One."] * (customers - 1)
    assert Product.objects.get(pk=product.pk).stock == 0
    assert Order.objects.count() == 1


def test_many_buyers_of_many_units_never_oversell(path):
    a = ProductFactory(stock=5)
    b = ProductFactory(stock=7)

    def buy(i):
        # Opposite lock orders in the request (b before a for odd i): no deadlock either.
        items = [CartItem(sku=a.sku, quantity=1), CartItem(sku=b.sku, quantity=2)]
        try:
            order_checkout(
                email="x@example.com",
                shipping_address=ADDRESS,
                items=items if i % 2 else items[::-1],
                payment_method="pm_card_visa",
            )
            return True
        except OutOfStockError:
            return False

    results = _race(10, buy)

    assert sum(results) == 3  # b runs out after 3 orders of 2
    assert Product.objects.get(pk=a.pk).stock == 2
    assert Product.objects.get(pk=b.pk).stock == 1
    assert Order.objects.count() == 3


def test_concurrent_double_submit_of_one_checkout_form_places_one_order(catalog, stripe_server):
    """A double click sends Pay twice, and the page's completion may race the webhook: one hold,
    one PaymentIntent, one order."""
    from conftest import authorize_intent

    browser = Client()
    add(browser, "MOUSE-01", 2)
    token = checkout_token(browser)
    cookies = browser.cookies
    form = {**CHECKOUT, "checkout_token": token}

    def tab() -> Client:
        other = Client()
        other.cookies = cookies  # the same browser session, requests in flight together
        return other

    paid = _race(4, lambda _i: tab().post(reverse("orders:checkout-pay"), form))
    assert {r.status_code for r in paid} == {200}, [r.content for r in paid]
    assert len({r.json()["payment_intent"] for r in paid}) == 1
    assert Product.objects.get(sku="MOUSE-01").stock == catalog["MOUSE-01"].stock - 2
    intent = paid[0].json()["payment_intent"]
    authorize_intent(intent)
    done = {"checkout_token": token, "payment_intent": intent}
    responses = _race(4, lambda _i: tab().post(reverse("orders:checkout-complete"), done))

    assert Order.objects.count() == 1
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["redirect"] for r in responses}) == 1
    assert Product.objects.get(sku="MOUSE-01").stock == catalog["MOUSE-01"].stock - 2


def test_a_price_changed_between_reading_it_and_taking_the_stock_is_the_price_charged(
    monkeypatch, settings
):
    """The checkout reads products without a lock and locks each row only when it takes the
    stock, last (issue 11): a price committed in between is caught there and the checkout is
    redone on the new price, never placed at the old one."""
    from decimal import Decimal

    from orders import services

    settings.CHECKOUT_ONE_STATEMENT = False  # the ORM path (the one-statement path: below)
    product = ProductFactory(stock=5, price=Decimal("10.00"))
    real, calls = services._stock_reserve, []

    def reprice_first(products, wanted):
        if not calls:  # another session changes the price and commits, mid-checkout
            thread = threading.Thread(
                target=lambda: (
                    Product.objects.filter(pk=product.pk).update(price=Decimal("12.00")),
                    connection.close(),
                )
            )
            thread.start()
            thread.join()
        calls.append(products[0].price)
        return real(products, wanted)

    monkeypatch.setattr(services, "_stock_reserve", reprice_first)
    order, created = order_checkout(
        email="c@example.com",
        shipping_address=ADDRESS,
        items=[CartItem(sku=product.sku, quantity=2)],
        payment_method="pm_card_visa",
    )

    assert created
    assert calls == [Decimal("10.00"), Decimal("12.00")]
    assert [line.unit_price for line in order.lines.all()] == [Decimal("12.00")]
    assert Product.objects.get(pk=product.pk).stock == 3
    assert Order.objects.count() == 1


def test_one_statement_a_price_changed_after_reading_it_is_the_price_charged(monkeypatch):
    """The one-statement checkout reads the product (from the process's cache, or the
    database); a price committed before its statement takes the stock makes the reservation
    miss, and the checkout is redone on a fresh read, never placed at the old price."""
    from decimal import Decimal

    from orders import services

    product = ProductFactory(stock=5, price=Decimal("10.00"))
    real, reads = services.checkout_products, []

    def reprice_after_reading(*, skus, fresh=False):
        found = real(skus=skus, fresh=fresh)
        reads.append((fresh, found[product.sku].price))
        if len(reads) == 1:  # another session changes the price and commits, mid-checkout
            thread = threading.Thread(
                target=lambda: (
                    Product.objects.filter(pk=product.pk).update(price=Decimal("12.00")),
                    connection.close(),
                )
            )
            thread.start()
            thread.join()
        return found

    monkeypatch.setattr(services, "checkout_products", reprice_after_reading)
    order, created = order_checkout(
        email="c@example.com",
        shipping_address=ADDRESS,
        items=[CartItem(sku=product.sku, quantity=2)],
        payment_method="pm_card_visa",
    )

    assert created
    assert reads == [(False, Decimal("10.00")), (True, Decimal("12.00"))]
    assert [line.unit_price for line in order.lines.all()] == [Decimal("12.00")]
    assert [line.unit_price for line in Order.objects.get().lines.all()] == [Decimal("12.00")]
    assert Product.objects.get(pk=product.pk).stock == 3


def test_one_statement_hot_product_many_buyers_never_oversell():
    """Twenty buyers of one product with 7 units, through the one-statement checkout: 7 orders,
    13 clear refusals, stock 0, one order.placed per order."""
    from outbox.models import OutboxEvent

    product = ProductFactory(stock=7, name="Hot")

    def buy(i):
        try:
            order_checkout(
                email=f"c{i}@example.com",
                shipping_address=ADDRESS,
                items=[CartItem(sku=product.sku, quantity=1)],
                payment_method="pm_card_visa",
                idempotency_key=f"k{i}",
            )
            return True
        except OutOfStockError as exc:
            assert exc.extra["items"][0]["sku"] == product.sku
            return False

    results = _race(20, buy)
    assert sum(results) == 7
    assert Product.objects.get(pk=product.pk).stock == 0
    assert Order.objects.count() == 7
    assert OutboxEvent.objects.filter(type="order.placed").count() == 7
