"""A customer in a real browser (Debian's Chromium through Playwright) against the live server, the
real relay and Celery worker processes on the SQS emulator, localstripe (with its stand-in
Stripe.js) and the shipping simulator. Screenshots of every step go to test-artifacts/."""

from __future__ import annotations

import importlib
import os
import re

import pytest
from django.apps import apps

# Playwright's sync API keeps an asyncio loop running in this thread; Django's ORM refuses to run
# in a thread with a running loop unless told it is safe (it is: the loop never runs ORM code).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from billing.stripe_client import stripe_client
from orders.models import Order
from orders.tokens import order_access_token

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

VISA = "4242424242424242"
VISA_AS_PRINTED = "4242 4242 4242 4242"  # how the README (and the card) shows it
DECLINED_ON_CHARGE = "4000000000000341"  # attaches fine, the charge is declined


@pytest.fixture
def shop(live_server, live_stack, stripe_server, settings, catalog):
    """The live server with checkout pointed at localstripe's Stripe.js, and the pipeline's
    processes running."""
    settings.STRIPE_JS_URL = stripe_server.js_url
    live_stack.start("relay")
    live_stack.start("worker")
    return live_server.url


def fill_checkout(page, *, email: str, card: str, cvc: str = "123") -> None:
    page.fill("#id_email", email)
    page.fill("#id_name", "Ada Lovelace")
    page.fill("#id_line1", "12 Analytical Row")
    page.fill("#id_postal_code", "N1 9GU")
    page.fill("#id_city", "London")
    page.select_option("#id_country", "GB")
    fill_card(page, card=card, cvc=cvc)


def fill_card(page, *, card: str, cvc: str = "123") -> None:
    """Types the card key by key, as a customer does (spaces included, if the card has them)."""
    card_element = page.locator("#card-element")
    number = card_element.locator("input[placeholder=number]")
    number.fill("")
    number.press_sequentially(card)
    card_element.locator("input[placeholder=exp_month]").fill("12")
    card_element.locator("input[placeholder=exp_year]").fill("34")
    card_element.locator("input[placeholder=cvc]").fill(cvc)
    card_element.locator("input[placeholder=postal_code]").fill("N19GU")


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


def intents_of(order: Order) -> list:
    return [
        pi
        for pi in stripe_client().v1.payment_intents.list(params={"limit": 100}).data
        if pi.metadata.get("order_id") == str(order.id)
    ]


def test_guest_buys_two_products_and_watches_the_order_ship(shop, browser_page, mailbox):
    page = browser_page
    posts = record_posts_to_shop(page, shop)

    page.goto(shop + "/")
    assert page.locator(".product").count() == 12
    page.shot("catalog")

    page.click("text=Laptop >> nth=0")
    page.wait_for_selector("h1:has-text('Laptop')")
    page.shot("product-page")
    page.click("button:has-text('Add to cart')")
    page.wait_for_selector(".message:has-text('Laptop added to your cart.')")

    # Adding from the list keeps the customer on the list; the header counts the cart.
    page.goto(shop + "/?q=mouse")
    page.click("button[aria-label='Add Mouse to cart']")
    page.wait_for_selector(".message:has-text('Mouse added to your cart.')")
    assert page.url == shop + "/?q=mouse"
    assert page.inner_text("#nav-cart .badge") == "2"
    page.shot("catalog-added")
    page.click("#nav-cart")
    page.fill("input[aria-label='Quantity of Mouse']", "2")
    page.click("#line-MOUSE-01 button:has-text('Update')")
    page.wait_for_selector(".message:has-text('Cart updated.')")
    assert page.inner_text("#cart-subtotal") == "1059.97 EUR"
    page.shot("cart")

    page.click("a:has-text('Check out')")
    # A card the payment provider refuses (a two-digit CVC): a sentence, not "Bad request".
    fill_checkout(page, email="ada@example.com", card=VISA_AS_PRINTED, cvc="12")
    # The exact total for Great Britain, shown before paying (VAT 20 % included).
    page.wait_for_selector("#quote-totals [data-country=GB]")
    shown_total = page.inner_text("#cart-total")
    page.click("#place-order")
    page.wait_for_selector("#card-errors:has-text('could not be checked')")
    assert "Bad request" not in page.inner_text("#card-errors")
    page.shot("checkout-card-refused")
    assert not Order.objects.filter(email="ada@example.com").exists()
    # The number typed with spaces, as printed on the card, is accepted.
    fill_card(page, card=VISA_AS_PRINTED)
    assert page.input_value("#card-element input[placeholder=number]") == VISA_AS_PRINTED
    page.shot("checkout")
    page.click("#place-order")
    page.wait_for_url(re.compile(r"/orders/[0-9a-f-]{36}/$"))  # no token in the URL
    page.shot("order-placed")

    order = Order.objects.get(email="ada@example.com")
    assert order.payment_method.startswith("pm_") and order.payment_method != "pm_card_visa"
    assert [(li.sku, li.quantity) for li in order.lines.all()] == [
        ("LAPTOP-14", 1),
        ("MOUSE-01", 2),
    ]
    assert not any(
        VISA in body or VISA_AS_PRINTED in body or "4242+4242" in body for body in posts
    ), "card number reached our server"

    # No reload from here on: the page updates itself while the pipeline runs.
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.wait_for_selector("#order-status[data-status='shipped']", timeout=75_000)
    page.shot("order-shipped")
    assert navigations == []
    assert page.inner_text("#order-invoice").endswith("(PDF)")
    order.refresh_from_db()
    assert order.tracking_number and order.tracking_number in page.inner_text("#order-tracking")
    assert page.locator(".step.done").count() == 3  # placed, invoiced, paid
    assert page.inner_text(".step.current") == "Shipped"  # where it is, not what comes next
    assert "Payment received" in page.inner_text("#order-timeline")

    page.set_viewport_size({"width": 390, "height": 844})
    page.shot("order-shipped-phone")

    [intent] = intents_of(order)
    assert intent.status == "succeeded"
    assert f"{intent.amount / 100:.2f} EUR" == shown_total  # charged what the checkout showed
    assert intent.payment_method == order.payment_method

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


@pytest.mark.parametrize("gross", [True, False], ids=["prices-incl-vat", "net-prices"])
def test_checkout_totals_follow_the_country_without_a_reload(
    live_server, settings, stripe_server, catalog, browser_page, gross
):
    """Issue 8: the checkout shows subtotal, shipping and tax for the chosen country and
    updates them when the country changes, without reloading the page."""
    seed = importlib.import_module("orders.migrations.0003_seed_tax_rates_and_copy_pricing_tables")
    seed.seed_vat_rates(apps, None)  # live_server flushes the tables after each test
    settings.STRIPE_JS_URL = stripe_server.js_url
    settings.PRICES_INCLUDE_TAX = gross
    page = browser_page
    page.goto(live_server.url + "/products/MOUSE-01/")
    page.click("button:has-text('Add to cart')")
    page.wait_for_selector(".message:has-text('Mouse added to your cart.')")
    page.goto(live_server.url + "/checkout/")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    page.select_option("#id_country", "DE")
    page.wait_for_selector("#quote-totals [data-country=DE]")
    assert page.inner_text("#cart-tax-label").endswith("VAT 19 %")
    de = page.inner_text("#cart-total"), page.inner_text("#cart-tax")
    page.shot("checkout-germany")
    page.select_option("#id_country", "HU")
    page.wait_for_selector("#quote-totals [data-country=HU]")
    assert page.inner_text("#cart-tax-label").endswith("VAT 27 %")
    hu = page.inner_text("#cart-total"), page.inner_text("#cart-tax")
    page.shot("checkout-hungary")
    assert navigations == []  # no reload
    assert page.inner_text("#cart-shipping") == "4.90 EUR"
    if gross:
        # 29.99 + 4.90 paid wherever it goes; the VAT in it is extracted at the country's rate
        # (29.99 x 19/119 = 4.788 -> 4.79, 4.90 x 19/119 = 0.782 -> 0.78).
        assert de == ("34.89 EUR", "5.57 EUR") and hu == ("34.89 EUR", "7.42 EUR")
    else:
        # Net 34.89 plus the country's VAT: 6.6291 -> 6.63, 9.4203 -> 9.42.
        assert de == ("41.52 EUR", "6.63 EUR") and hu == ("44.31 EUR", "9.42 EUR")


def test_declined_card_is_explained_and_nothing_is_charged(shop, browser_page):
    page = browser_page
    page.goto(shop + "/products/MOUSE-01/")
    page.click("button:has-text('Add to cart')")
    page.click("a:has-text('Check out')")
    fill_checkout(page, email="decline@example.com", card=DECLINED_ON_CHARGE)
    page.click("#place-order")
    page.wait_for_url(re.compile(r"/orders/[0-9a-f-]{36}/$"))  # no token in the URL

    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.wait_for_selector("#order-status[data-status='cancelled']", timeout=60_000)
    message = page.inner_text("#payment-problem")
    page.shot("declined")
    assert message.startswith("Your card was declined.")  # once, not "declined: ... declined"
    assert "Nothing was charged" in message
    assert page.locator(".message.order-placed").count() == 0  # no "Thank you!" above it
    assert page.inner_text(".step.ended") == "Cancelled"
    assert page.locator("#order-tracking").count() == 0

    # The credit note and the cancellation email come seconds after the final status: the page
    # keeps polling and shows them without a reload.
    page.wait_for_selector("#order-live dt:has-text('Credit note')", timeout=45_000)
    page.wait_for_selector("#order-timeline li:has-text('Email sent: cancelled')", timeout=45_000)
    page.shot("declined-settled")
    assert navigations == []

    order = Order.objects.get(email="decline@example.com")
    assert order.payment_status == "failed"
    assert order.stock_released_at is not None
    assert not [pi for pi in intents_of(order) if pi.status == "succeeded"]


def test_complete_payment_step_confirms_3d_secure_with_stripe_js(
    live_server, transactional_db, stripe_server, settings, browser_page
):
    """The order page's "complete payment" step, against localstripe only (no workers): billing
    reported `payment.action_required` with a client secret; the customer confirms in the page."""
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
    page.shot("payment-action-required")
    page.click("#complete-payment")
    page.click("button:has-text('Complete authentication')")
    page.wait_for_selector("#complete-payment:has-text('Confirmed')")
    page.shot("payment-confirmed")

    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"


def test_3d_secure_checkout_completed_on_the_order_page_ships(
    shop, browser_page, stripe_server, settings
):
    """The whole 3-D Secure path: checkout with a card that needs authentication, billing reports
    `action_required`, the customer completes it on the order page with Stripe.js, Stripe's
    webhook tells billing, and the order ships, without a reload."""
    stripe_server.register_webhook(
        f"{shop}/billing/stripe/webhook/",
        settings.STRIPE_WEBHOOK_SECRET,
        events=["payment_intent.succeeded", "payment_intent.payment_failed"],
        name="browser-3ds",
    )
    page = browser_page
    page.goto(f"{shop}/products/MOUSE-01/")
    page.click("button:has-text('Add to cart')")
    page.goto(f"{shop}/checkout/")
    fill_checkout(page, email="tess@example.com", card="4000 0025 0000 3155")
    page.click("#place-order")
    page.wait_for_selector("#complete-payment", timeout=60_000)
    page.shot("3ds-action-required")
    page.click("#complete-payment")
    page.click("button:has-text('Complete authentication')")
    page.wait_for_selector("[data-status='shipped']", timeout=90_000)
    page.shot("3ds-shipped")

    order = Order.objects.get(email="tess@example.com")
    assert order.status == Order.Status.SHIPPED
    (intent,) = intents_of(order)
    assert intent.status == "succeeded"
