"""A shopper in a real browser (Debian's Chromium through Playwright) against the live server, the
real relay and Celery worker processes on the SQS emulator, localstripe (with its stand-in
Stripe.js) and the shipping simulator. Screenshots of every step go to test-artifacts/.

The checkout authorizes the card in the page (issue 8, docs/checkout.md): "Pay" holds the stock
and opens a PaymentIntent for the exact total (POST /checkout/pay/), Stripe.js confirms it with
the card (a decline is shown next to the card, 3-D Secure in the page), and only then is the order
placed (POST /checkout/complete/); the pipeline captures the authorization once it invoices."""

from __future__ import annotations

import importlib
import os
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.utils import timezone

# Playwright's sync API keeps an asyncio loop running in this thread; Django's ORM refuses to run
# in a thread with a running loop unless told it is safe (it is: the loop never runs ORM code).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from billing.stripe_client import stripe_client
from conftest import wait_until
from invoicing.models import CreditNote, Invoice
from orders.checkout import checkouts_sweep
from orders.models import Checkout, Order, Product
from orders.tokens import order_access_token
from outbox.models import OutboxEvent

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

VISA_AS_PRINTED = "4242 4242 4242 4242"  # how the README (and the card) shows it
DECLINED = "4000 0000 0000 0341"  # Stripe's test card: "Your card was declined."
NEEDS_3DS = "4000 0025 0000 3155"  # Stripe's test card: 3-D Secure required
ORDER_PAGE = re.compile(r"/orders/[0-9a-f-]{36}/$")  # no token in the URL


def seed_vat_rates() -> None:
    """The standard VAT rates (a data migration); live_server flushes the tables after each test."""
    seed = importlib.import_module("orders.migrations.0003_seed_tax_rates_and_copy_pricing_tables")
    seed.seed_vat_rates(apps, None)


@pytest.fixture
def prices_include_tax() -> bool:
    """The shop's default: catalog prices include VAT. Tests parametrize it to net prices, where
    the country changes the total (19 % in Germany, 20 % in France)."""
    return True


@pytest.fixture
def shop(live_server, live_stack, stripe_server, settings, catalog, prices_include_tax):
    """The live server with the checkout on localstripe's Stripe.js, the VAT rates seeded, and the
    pipeline's processes (relay, worker) running."""
    seed_vat_rates()
    settings.STRIPE_JS_URL = stripe_server.js_url
    settings.PRICES_INCLUDE_TAX = prices_include_tax
    env = {"PRICES_INCLUDE_TAX": "true" if prices_include_tax else "false"}
    live_stack.start("relay", extra_env=env)
    live_stack.start("worker", extra_env=env)
    return live_server.url


def fill_address(page, *, email: str, country: str) -> str:
    """Types the contact and address, chooses the country and waits for the page to show the
    totals for it (no reload); returns the total shown, e.g. "41.52 EUR"."""
    page.fill("#id_email", email)
    page.fill("#id_name", "Ada Lovelace")
    page.fill("#id_line1", "12 Analytical Row")
    page.fill("#id_postal_code", "10115")
    page.fill("#id_city", "Berlin")
    return choose_country(page, country)


def choose_country(page, country: str) -> str:
    page.select_option("#id_country", country)
    page.wait_for_selector(f"#quote-totals [data-country={country}]")
    return page.inner_text("#cart-total")


def fill_card(page, *, card: str, cvc: str = "123") -> None:
    """Types the card key by key, as a shopper does (spaces included, if the card has them)."""
    card_element = page.locator("#card-element")
    number = card_element.locator("input[placeholder=number]")
    number.fill("")
    number.press_sequentially(card)
    card_element.locator("input[placeholder=exp_month]").fill("12")
    card_element.locator("input[placeholder=exp_year]").fill("34")
    card_element.locator("input[placeholder=cvc]").fill(cvc)
    card_element.locator("input[placeholder=postal_code]").fill("10115")


def shot(page, name: str) -> None:
    """A full-page screenshot from the top (the sticky header otherwise lands mid-page)."""
    page.evaluate("window.scrollTo(0, 0)")
    page.shot(name)


def minor(shown: str) -> int:
    """ "41.52 EUR" -> 4152 (cents), exactly."""
    amount, currency = shown.split()
    assert currency == "EUR"
    return int(Decimal(amount) * 100)


def record_posts_to_shop(page, base: str) -> list[str]:
    """Every request body the browser sends to our server (card data must never be in one)."""
    bodies: list[str] = []
    page.on(
        "request",
        lambda request: bodies.append(request.post_data or "")
        if request.url.startswith(base) and request.method == "POST"
        else None,
    )
    return bodies


def card_sent(bodies: list[str], card: str) -> bool:
    """Whether a card number is in any of the bodies: as typed, digits only, or form-encoded."""
    forms = {card, card.replace(" ", ""), card.replace(" ", "+"), card.replace(" ", "%20")}
    return any(form in body for body in bodies for form in forms)


def record_navigations(page) -> list[str]:
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    return navigations


def intents_of(checkout_or_order) -> list:
    """The PaymentIntents opened for a checkout (the order has the checkout's id)."""
    return [
        pi
        for pi in stripe_client()
        .v1.payment_intents.list(params={"limit": 100})
        .auto_paging_iter()  # every page: the session's emulator holds hundreds of intents
        if pi.metadata.get("order_id") == str(checkout_or_order.id)
    ]


def wait_captured(intent_id: str, *, timeout: float = 60):
    """The intent once the pipeline (invoice -> billing) captured it."""

    def captured():
        intent = stripe_client().v1.payment_intents.retrieve(intent_id)
        return intent if intent.status == "succeeded" else None

    return wait_until(captured, timeout=timeout, interval=0.5, message=f"{intent_id} captured")


def add_to_cart(page, base: str, sku: str, name: str) -> None:
    page.goto(f"{base}/products/{sku}/")
    page.click("button:has-text('Add to cart')")
    page.wait_for_selector(f".message:has-text('{name} added to your cart.')")


# --- 1 + 3. Paying in the page, 3-D Secure included; the amount captured is the total shown ---


def test_guest_authenticates_in_the_checkout_is_charged_the_total_shown_and_watches_it_ship(
    shop, browser_page, mailbox
):
    """Germany, prices with VAT included (the default), a card that needs 3-D Secure: the bank's
    question is answered in the checkout page, only then is the order placed; the pipeline
    captures exactly the total the checkout showed for Germany. The card number goes browser ->
    Stripe only, never to our server."""
    page = browser_page
    posts = record_posts_to_shop(page, shop)

    page.goto(shop + "/")
    assert page.locator(".product").count() == 12
    page.click("text=Laptop >> nth=0")
    page.wait_for_selector("h1:has-text('Laptop')")
    page.click("button:has-text('Add to cart')")
    page.wait_for_selector(".message:has-text('Laptop added to your cart.')")
    # Adding from the list keeps the shopper on the list; the header counts the cart.
    page.goto(shop + "/?q=mouse")
    page.click("button[aria-label='Add Mouse to cart']")
    page.wait_for_selector(".message:has-text('Mouse added to your cart.')")
    assert page.url == shop + "/?q=mouse"
    assert page.inner_text("#nav-cart .badge") == "2"
    page.click("#nav-cart")
    page.fill("input[aria-label='Quantity of Mouse']", "2")
    page.click("#line-MOUSE-01 button:has-text('Update')")
    page.wait_for_selector(".message:has-text('Cart updated.')")
    assert page.inner_text("#cart-subtotal") == "1059.97 EUR"
    shot(page, "cart")

    page.click("a:has-text('Check out')")
    page.wait_for_url(shop + "/checkout/")
    navigations = record_navigations(page)
    shown_total = fill_address(page, email="ada@example.com", country="DE")
    assert page.inner_text("#cart-tax-label").endswith("VAT 19 %")
    # The number typed with spaces, as printed on the card, is accepted.
    fill_card(page, card=NEEDS_3DS)
    assert page.input_value("#card-element input[placeholder=number]") == NEEDS_3DS
    page.click("#place-order")
    complete = page.get_by_role("button", name="Complete authentication")
    complete.wait_for()
    shot(page, "checkout-3ds-modal")
    # The bank's question is asked on the checkout: no order until it is answered.
    assert navigations == [] and page.url == shop + "/checkout/"
    assert not Order.objects.exists()
    complete.click()
    page.wait_for_url(ORDER_PAGE)
    page.wait_for_selector(".message:has-text('Your card is authorized')")
    shot(page, "order-placed")

    order = Order.objects.get(email="ada@example.com")
    assert order.ship_country == "DE"
    assert [(li.sku, li.quantity) for li in order.lines.all()] == [
        ("LAPTOP-14", 1),
        ("MOUSE-01", 2),
    ]
    # The recorder saw the form (/checkout/pay/) and the authorized intent (/checkout/complete/).
    assert any("ada@example.com" in body for body in posts)
    assert any(order.payment_intent in body for body in posts)
    assert not card_sent(posts, NEEDS_3DS), "card number reached our server"

    # No reload from here on: the page updates itself while the pipeline runs.
    navigations = record_navigations(page)
    page.wait_for_selector("#order-status[data-status='shipped']", timeout=75_000)
    shot(page, "order-shipped")
    assert navigations == []
    assert page.inner_text("#order-invoice").endswith("(PDF)")
    order.refresh_from_db()
    assert order.tracking_number and order.tracking_number in page.inner_text("#order-tracking")
    assert page.locator(".step.done").count() == 3  # placed, invoiced, paid
    assert page.inner_text(".step.current") == "Shipped"  # where it is, not what comes next
    assert "Payment received" in page.inner_text("#order-timeline")

    [intent] = intents_of(order)
    assert intent.id == order.payment_intent
    assert intent.status == "succeeded"
    assert intent.capture_method == "manual"  # authorized in the page, captured by billing
    assert intent.amount_received == minor(shown_total) == int(order.total * 100)
    assert Invoice.objects.get(order_id=order.id).total == order.total

    # The guest's way back: a signed, expiring link to the order page in the confirmation email;
    # a fresh browser following it lands on the page without the token in the URL.
    confirmation = next(m for m in mailbox.messages() if order.number in m["Subject"])
    text = confirmation.get_body(("plain",)).get_content()
    link = re.search(rf"/orders/{order.id}/\?token=[\w:-]+", text).group(0)
    assert order_access_token(order.id) not in text  # the API's token is not in emails
    other = page.context.browser.new_context()
    fresh = other.new_page()
    fresh.goto(shop + link)
    assert fresh.url == f"{shop}/orders/{order.id}/"
    assert order.number in fresh.inner_text("h1")
    other.close()


# --- 2. A declined card: explained on the checkout, nothing happens, another card pays --------


@pytest.mark.parametrize("prices_include_tax", [False], ids=["net-prices"])
def test_declined_card_stays_on_the_checkout_and_another_card_pays(shop, browser_page, mailbox):
    """France, net prices (the country changes the total). The decline is shown next to the card
    field, on the checkout, with the cart and everything typed kept; nothing is created (no
    order, invoice number, credit note, event or email). The next card, in the same page, pays
    the same hold, and the capture is the total shown for France."""
    page = browser_page
    posts = record_posts_to_shop(page, shop)
    add_to_cart(page, shop, "MOUSE-01", "Mouse")
    invoices, credit_notes = Invoice.objects.count(), CreditNote.objects.count()
    page.goto(shop + "/checkout/")
    navigations = record_navigations(page)
    germany = fill_address(page, email="dee@example.com", country="DE")
    shown_total = choose_country(page, "FR")
    assert page.inner_text("#cart-tax-label").endswith("VAT 20 %")
    # 29.99 + 4.90 shipping, plus VAT: 19 % (41.52) in Germany, 20 % (41.87) in France.
    assert (germany, shown_total) == ("41.52 EUR", "41.87 EUR")
    fill_card(page, card=DECLINED)
    page.click("#place-order")
    page.wait_for_selector("#card-errors:has-text('Your card was declined.')")
    page.wait_for_selector("#place-order:not([disabled])")
    shot(page, "checkout-card-declined")

    # Next to the card field, on the checkout, nothing typed lost.
    assert navigations == [] and page.url == shop + "/checkout/"
    assert page.locator("#card-element + #card-errors").count() == 1
    assert page.locator("#checkout-errors").is_hidden()
    typed = {
        "#id_email": "dee@example.com",
        "#id_name": "Ada Lovelace",
        "#id_line1": "12 Analytical Row",
        "#id_postal_code": "10115",
        "#id_city": "Berlin",
        "#id_country": "FR",
    }
    assert {field: page.input_value(field) for field in typed} == typed
    assert page.inner_text("#cart-total") == shown_total
    assert "1 × Mouse" in page.inner_text("aside")
    assert page.inner_text("#nav-cart .badge") == "1"
    # Nothing exists but the hold: no order, no invoice number, no credit note, no event (so
    # no email can follow either), no email.
    checkout = Checkout.objects.get(token=page.input_value("input[name=checkout_token]"))
    assert checkout.status == Checkout.Status.HOLDING
    assert not Order.objects.exists()
    assert (Invoice.objects.count(), CreditNote.objects.count()) == (invoices, credit_notes)
    assert not OutboxEvent.objects.exists()
    assert mailbox.messages() == []
    [declined] = intents_of(checkout)
    assert declined.status == "requires_payment_method"
    assert declined.amount == minor(shown_total)

    # Another card, same page, same hold, same intent.
    fill_card(page, card=VISA_AS_PRINTED)
    assert page.inner_text("#card-errors") == ""  # a new card clears the old message
    page.click("#place-order")
    page.wait_for_url(ORDER_PAGE)
    assert navigations[:-1] == []  # the only navigation: to the order page
    assert not card_sent(posts, DECLINED) and not card_sent(posts, VISA_AS_PRINTED)
    shot(page, "order-placed-after-decline")

    order = Order.objects.get(email="dee@example.com")
    assert (order.id, order.number, order.ship_country) == (checkout.id, checkout.number, "FR")
    assert order.payment_intent == declined.id
    assert [pi.id for pi in intents_of(order)] == [declined.id]
    intent = wait_captured(declined.id)
    assert intent.amount_received == minor(shown_total) == int(order.total * 100)
    confirmation = wait_until(
        lambda: [m for m in mailbox.messages() if order.number in m["Subject"]],
        timeout=30,
        message="the order's email",
    )
    assert confirmation
    assert Invoice.objects.count() == invoices + 1
    assert Invoice.objects.filter(order_id=order.id).exists()
    assert CreditNote.objects.count() == credit_notes
    # Every email is about the placed order; none about the declined card.
    assert all(order.number in m["Subject"] for m in mailbox.messages())


# --- 4. An abandoned 3-D Secure checkout gives its stock back ----------------------------------


def test_abandoned_3d_secure_checkout_gives_the_stock_back_and_voids_the_authorization(
    live_server, stripe_server, settings, catalog, browser_page
):
    """The shopper closes the page with the bank's 3-D Secure question open: the stock stays held
    for CHECKOUT_HOLD_MINUTES, then the sweep (a beat task, run here with the clock moved on)
    gives it back and cancels the PaymentIntent: nothing stays held on the card."""
    seed_vat_rates()
    settings.STRIPE_JS_URL = stripe_server.js_url
    settings.CHECKOUT_HOLD_MINUTES = 10
    settings.CHECKOUT_RELEASE_GRACE_SECONDS = 5
    stock = Product.objects.get(sku="MOUSE-01").stock
    page = browser_page
    add_to_cart(page, live_server.url, "MOUSE-01", "Mouse")
    page.goto(live_server.url + "/checkout/")
    fill_address(page, email="gone@example.com", country="FR")
    fill_card(page, card=NEEDS_3DS)
    page.click("#place-order")
    page.get_by_role("button", name="Complete authentication").wait_for()
    shot(page, "3ds-abandoned")
    page.close()  # never answered

    checkout = Checkout.objects.get(email="gone@example.com")
    [intent] = intents_of(checkout)
    assert (checkout.status, intent.status) == (Checkout.Status.HOLDING, "requires_action")
    assert Product.objects.get(sku="MOUSE-01").stock == stock - 1  # held for the shopper
    # Within the reservation time the sweep leaves it alone.
    result = checkouts_sweep(now=timezone.now() + timedelta(minutes=9))
    assert (result.expired, result.released) == (0, 0)
    assert Product.objects.get(sku="MOUSE-01").stock == stock - 1

    result = checkouts_sweep(now=timezone.now() + timedelta(minutes=11))
    assert (result.expired, result.released) == (1, 1)
    assert Product.objects.get(sku="MOUSE-01").stock == stock
    checkout.refresh_from_db()
    assert checkout.status == Checkout.Status.RELEASED
    assert stripe_client().v1.payment_intents.retrieve(intent.id).status == "canceled"
    assert not Order.objects.exists()


# --- 5. The totals follow the country ----------------------------------------------------------


@pytest.mark.parametrize("gross", [True, False], ids=["prices-incl-vat", "net-prices"])
def test_checkout_totals_follow_the_country_without_a_reload(
    live_server, settings, stripe_server, catalog, browser_page, gross
):
    """Issue 8: the checkout shows subtotal, shipping and tax for the chosen country and
    updates them when the country changes, without reloading the page."""
    seed_vat_rates()
    settings.STRIPE_JS_URL = stripe_server.js_url
    settings.PRICES_INCLUDE_TAX = gross
    page = browser_page
    add_to_cart(page, live_server.url, "MOUSE-01", "Mouse")
    page.goto(live_server.url + "/checkout/")
    navigations = record_navigations(page)

    choose_country(page, "DE")
    assert page.inner_text("#cart-tax-label").endswith("VAT 19 %")
    de = page.inner_text("#cart-total"), page.inner_text("#cart-tax")
    shot(page, "checkout-germany")
    choose_country(page, "HU")
    assert page.inner_text("#cart-tax-label").endswith("VAT 27 %")
    hu = page.inner_text("#cart-total"), page.inner_text("#cart-tax")
    shot(page, "checkout-hungary")
    assert navigations == []  # no reload
    assert page.inner_text("#cart-shipping") == "4.90 EUR"
    if gross:
        # 29.99 + 4.90 paid wherever it goes; the VAT in it is extracted at the country's rate
        # (29.99 x 19/119 = 4.788 -> 4.79, 4.90 x 19/119 = 0.782 -> 0.78).
        assert de == ("34.89 EUR", "5.57 EUR") and hu == ("34.89 EUR", "7.42 EUR")
    else:
        # Net 34.89 plus the country's VAT: 6.6291 -> 6.63, 9.4203 -> 9.42.
        assert de == ("41.52 EUR", "6.63 EUR") and hu == ("44.31 EUR", "9.42 EUR")


# --- The order page's "complete payment" step (orders charged off the page) ------------------


def test_complete_payment_step_confirms_3d_secure_with_stripe_js(
    live_server, transactional_db, stripe_server, settings, browser_page
):
    """The order page's "complete payment" step, against localstripe only (no workers): billing
    reported `payment.action_required` with a client secret; the shopper confirms in the page."""
    from orders.tests.factories import ProductFactory, order_with_line

    settings.STRIPE_JS_URL = stripe_server.js_url
    client = stripe_client()
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4000002500003155", "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    intent = client.v1.payment_intents.create(
        params={"amount": 4187, "currency": "eur", "payment_method": method.id}
    )
    intent = client.v1.payment_intents.confirm(intent.id)
    assert intent.status == "requires_action"
    order = order_with_line(
        product=ProductFactory(stock=3),
        status=Order.Status.ACTION_REQUIRED,
        payment_status="action_required",
        payment_client_secret=intent.client_secret,
    )

    page = browser_page
    page.goto(f"{live_server.url}/orders/{order.id}/?token={order_access_token(order.id)}")
    shot(page, "payment-action-required")
    page.click("#complete-payment")
    page.click("button:has-text('Complete authentication')")
    page.wait_for_selector("#complete-payment:has-text('Confirmed')")
    shot(page, "payment-confirmed")

    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
