"""Issue 8: the total shown before paying is, to the cent, what the order stores, what order.placed
carries, what the invoice says and what the card is charged. For every seeded country, below, at
and above the free-shipping threshold, with shipping zones, for half-cent rounding, many lines
and large quantities, in both display modes (PRICES_INCLUDE_TAX true and false).

Each case goes through the storefront's code (the cart's JSON totals, the checkout POST) and the
real subscribers of order.placed through the inbox (invoicing numbers the invoice, billing records
the expected total); the last tests run the whole pipeline against the Stripe emulator."""

from __future__ import annotations

import importlib
import re
import secrets
from decimal import Decimal

import pytest
from django.apps import apps
from django.test import Client

from billing.models import Payment
from billing.services import _verify_invoice
from billing.tests.helpers import intents_for
from chargeflow.money import to_minor
from invoicing.models import Invoice
from invoicing.tests.test_services import pdf_text
from orders.models import Order, Product, ShippingZone
from outbox.delivery import deliver
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

seed = importlib.import_module("orders.migrations.0003_seed_tax_rates_and_copy_pricing_tables")
COUNTRIES = sorted(seed.STANDARD_VAT_RATES_2026)
D = Decimal
EU = "AT,BE,BG,CY,CZ,DE,DK,EE,ES,FI,FR,GR,HR,HU,IE,IT,LT,LU,LV,MT,NL,PL,PT,RO,SE,SI,SK"

# name -> cart lines (price, quantity); the default shipping: 4.90, free from 100.00.
CASES = {
    "below_threshold": [("99.99", 1)],
    "at_threshold": [("100.00", 1)],
    "above_threshold": [("33.34", 3)],
    "half_cents": [("0.03", 1), ("0.15", 1), ("1.50", 1)],
    "many_lines": [(f"{k}.{(k * 37) % 100:02d}", 1 + k % 3) for k in range(1, 41)],
    "large_quantities": [("0.99", 1000), ("1234.56", 7)],
    "zones": [("59.99", 1)],  # EU zone 5.95, free from 60.00; elsewhere 14.90, never free
}


@pytest.fixture(autouse=True)
def _unthrottled(settings):
    """One client places 30 orders a minute here: the storefront's rate limits are for humans
    (tests/test_rate_limits.py covers them)."""
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**rates, "checkout": None, "checkout_ip": None, "quote": None},
    }


@pytest.fixture
def seeded():
    # A transactional test elsewhere may have flushed the seeded rows; the seed is idempotent.
    seed.seed_vat_rates(apps, None)


def _cart(case: str) -> dict[str, int]:
    cart = {}
    for n, (price, quantity) in enumerate(CASES[case]):
        product, _ = Product.objects.update_or_create(
            sku=f"P-{n:03d}",
            defaults={"name": f"Product {n}", "price": D(price), "stock": 10**6},
        )
        cart[product.sku] = quantity
    return cart


def _shown(client: Client, country: str) -> dict[str, str]:
    """The totals the cart shows for the country (the JSON the page updates itself with), and
    checks that the rendered block says the same."""
    response = client.get("/cart/totals/", {"country": country})
    assert response.status_code == 200, response.content
    data = response.json()
    html = " ".join(data["html"].split())
    total = data["totals"]["total"]
    assert re.search(rf'id="cart-total">{re.escape(total)} EUR<', html), html
    return data["totals"]


def _checkout(client: Client, country: str) -> Order:
    """The checkout page's payment: pay (hold + intent for the total), the card authorized for
    exactly that amount (Stripe.js in the page), complete (the order)."""
    from billing.stripe_client import stripe_client

    form = {
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "line1": "1 Main Street",
        "city": "Town",
        "postal_code": "10115",
        "country": country,
        "checkout_token": secrets.token_urlsafe(24),
    }
    paying = client.post("/checkout/pay/", form)
    assert paying.status_code == 200, paying.content.decode()[:2000]
    intent = paying.json()["payment_intent"]
    stripe_client().v1.payment_intents.confirm(intent, params={"payment_method": "pm_card_visa"})
    response = client.post(
        "/checkout/complete/", {"checkout_token": form["checkout_token"], "payment_intent": intent}
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    order = Order.objects.get(pk=response.json()["redirect"].split("/")[2])
    assert stripe_client().v1.payment_intents.retrieve(intent).amount == to_minor(order.total)
    return order


def _deliver_order_placed(order: Order) -> dict:
    """Hand order.placed to invoicing's and billing's real subscribers (through the inbox)."""
    row = OutboxEvent.objects.get(type="order.placed", aggregate_id=str(order.id))
    for subscriber in ("invoicing.on_order_placed", "billing.on_order_placed"):
        deliver(subscriber_name=subscriber, envelope=row.as_event().to_envelope())
    return row.data


@pytest.mark.parametrize("gross", [True, False], ids=["gross", "net"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_shown_equals_stored_equals_event_equals_invoice_equals_charge(
    case, gross, settings, stripe_server, seeded
):
    settings.PRICES_INCLUDE_TAX = gross
    settings.SHIPPING_FEE, settings.FREE_SHIPPING_THRESHOLD = D("4.90"), D("100.00")
    if case == "zones":
        ShippingZone.objects.create(
            name="EU", countries=EU, fee="5.95", free_shipping_threshold="60.00"
        )
        ShippingZone.objects.create(name="Elsewhere", countries="", fee="14.90")
    cart = _cart(case)
    goods = sum(D(price) * quantity for price, quantity in CASES[case])
    client = Client()
    for country in COUNTRIES:
        session = client.session
        session["cart"] = cart
        session.save()
        shown = _shown(client, country)
        order = _checkout(client, country)
        stored = {
            "subtotal": str(order.subtotal),
            "shipping": str(order.shipping_fee),
            "tax": str(order.tax),
            "total": str(order.total),
            "currency": order.currency,
        }
        assert stored == shown, (country, case)
        data = _deliver_order_placed(order)
        assert data["totals"] == shown
        invoice = Invoice.objects.get(order_id=order.id)
        invoiced = {
            "subtotal": str(invoice.subtotal),
            "shipping": str(invoice.shipping),
            "tax": str(invoice.tax),
            "total": str(invoice.total),
            "currency": invoice.currency,
        }
        assert invoiced == shown
        payment = Payment.objects.get(order_id=order.id)
        assert payment.expected_total_minor == to_minor(shown["total"])
        assert _verify_invoice(payment, invoiced, invoice.currency) is None

        # The numbers add up, and they are what the shopper was shown.
        subtotal, shipping, tax, total = (
            D(shown[k]) for k in ("subtotal", "shipping", "tax", "total")
        )
        assert subtotal + shipping + tax == total
        assert order.goods_shown == goods == invoice.goods_shown
        if gross:
            assert total == goods + order.shipping_shown  # the price shown is the price paid
        else:
            assert (subtotal, shipping) == (goods, order.shipping_shown)
        rate = D(seed.STANDARD_VAT_RATES_2026[country])
        assert order.tax_rate == invoice.tax_rate == rate
        if case == "zones":
            in_eu = country in EU.split(",")
            assert order.shipping_zone == ("EU" if in_eu else "Elsewhere")
            assert order.shipping_shown == (D("5.95") if in_eu else D("14.90"))
        else:
            assert order.shipping_shown == (D("0.00") if goods >= 100 else D("4.90"))


def _place_in_browserless_shop(client: Client, country: str, cart: dict[str, int]):
    session = client.session
    session["cart"] = cart
    session.save()
    shown = _shown(client, country)
    return shown, _checkout(client, country)


@pytest.mark.parametrize("gross,country", [(True, "DE"), (True, "FR"), (False, "FI"), (True, "CH")])
def test_the_card_is_charged_exactly_the_total_shown(gross, country, settings, pipeline, seeded):
    """The whole pipeline (every subscriber, through the inbox) against the Stripe emulator: the
    PaymentIntent's amount is the total the cart showed, and the invoice PDF says it too."""
    settings.PRICES_INCLUDE_TAX = gross
    settings.SHIPPING_FEE, settings.FREE_SHIPPING_THRESHOLD = D("4.90"), D("100.00")
    cart = _cart("half_cents") | {"P-100": 1}
    Product.objects.create(sku="P-100", name="Book", price=D("33.33"), stock=10)
    shown, order = _place_in_browserless_shop(Client(), country, cart)
    pipeline.drain()
    order.refresh_from_db()
    assert order.status in {"paid", "shipped"}, order.status
    (intent,) = intents_for(str(order.id))
    assert intent.amount == to_minor(shown["total"]) and intent.status == "succeeded"
    invoice = Invoice.objects.get(order_id=order.id)
    assert str(invoice.total) == shown["total"]
    assert f"Total {shown['total']} EUR" in pdf_text(invoice.pdf.name)
