"""The storefront through Django's test client: catalog, cart edge cases, checkout (form errors,
double submit, back button), accounts and order pages."""

from __future__ import annotations

import importlib
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conftest import authorize_intent
from orders.models import Checkout, Order, Product, TimelineEntry
from orders.tests.factories import ProductFactory
from orders.tokens import order_link

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_server")]

CHECKOUT = {
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "line1": "12 Analytical Row",
    "line2": "",
    "city": "London",
    "postal_code": "n1 9gu",
    "country": "GB",
}


def add(client, sku: str, quantity=1):
    return client.post(reverse("orders:cart-add"), {"sku": sku, "quantity": quantity}, follow=True)


def update(client, sku: str, quantity):
    return client.post(
        reverse("orders:cart-update"), {"sku": sku, "quantity": quantity}, follow=True
    )


def cart_of(client) -> dict[str, int]:
    return dict(client.session.get("cart", {}))


def checkout_token(client) -> str:
    page = client.get(reverse("orders:checkout")).content.decode()
    return re.search(r'name="checkout_token" value="([^"]+)"', page).group(1)


def pay(client, form: dict):
    """Step 1 of the page's payment (checkout.js): validate, hold, open the intent."""
    return client.post(reverse("orders:checkout-pay"), form)


def buy(client, form: dict, *, card: str = "pm_card_visa"):
    """What the checkout page does in a browser: POST /checkout/pay/, confirm the PaymentIntent
    with the card (Stripe.js does it in the page), POST /checkout/complete/. Returns the last
    JSON response (its `redirect` is the order page)."""
    answer = pay(client, form)
    assert answer.status_code == 200, answer.content
    authorize_intent(answer.json()["payment_intent"], card)
    return client.post(
        reverse("orders:checkout-complete"),
        {
            "checkout_token": form["checkout_token"],
            "payment_intent": answer.json()["payment_intent"],
        },
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- Catalog ----------------------------------------------------------------------------------


def test_catalog_lists_pages_and_searches(client, catalog):
    first = client.get("/")
    assert first.status_code == 200
    assert "Page 1 of 2" in first.content.decode()
    assert client.get("/?page=2").status_code == 200
    found = client.get("/", {"q": "lap"}).content.decode()
    assert "Laptop" in found and "Laptop Stand" in found and "Mouse" not in found
    assert "No products match" in client.get("/", {"q": "zzz"}).content.decode()


def test_catalog_placeholders_are_distinct_and_not_links_styled(client, catalog):
    page = client.get("/").content.decode()
    arts = re.findall(
        r'<span class="placeholder" style="--hue: (\d+)" aria-hidden="true">(\w+)</span>', page
    )
    assert len(arts) == 12
    names = re.findall(r'<h2>\s*<a href="/products/[^"]+/">([^<]+)</a>', page)
    initials = dict(zip(names, (text for _hue, text in arts), strict=True))
    assert initials["Desk Lamp"] == "DL" and initials["Desk Pad"] == "DP"
    assert initials["Laptop"] == "La" and initials["Laptop Stand"] == "LS"
    # No two look alike: distinct initials across the catalog (Monitor "Mo", Mouse "Mu") and
    # colours, and a product looks the same on every page.
    assert len({text for _hue, text in arts}) == len(arts)
    assert initials["Monitor"] != initials["Mouse"]
    assert len(set(arts)) == len(arts)
    assert len({hue for hue, _text in arts}) == len(arts)
    detail = client.get(reverse("orders:product-detail", args=["LAMP-01"])).content.decode()
    lamp = next(art for art, name in zip(arts, names, strict=True) if name == "Desk Lamp")
    assert f'style="--hue: {lamp[0]}" aria-hidden="true">DL</span>' in detail
    # No images from anywhere; the picture's link is not styled as text.
    assert "<img" not in page
    assert page.count('class="placeholder-link"') == 12


def test_adding_from_the_catalog_stays_on_the_catalog(client, catalog):
    page = client.get("/", {"q": "desk", "page": "1"}).content.decode()
    assert '<input type="hidden" name="next" value="/?q=desk&amp;page=1">' in page
    response = client.post(
        reverse("orders:cart-add"), {"sku": "PAD-01", "quantity": 1, "next": "/?q=desk&page=1"}
    )
    assert response["Location"] == "/?q=desk&page=1"
    response = client.get(response["Location"])
    assert "Desk Pad added to your cart." in messages_of(response)
    assert re.search(
        r'id="nav-cart">Cart\s*<span class="badge">1</span>', response.content.decode()
    )
    # The product page goes to the cart; another site is no place to go back to.
    add_from_page = client.post(reverse("orders:cart-add"), {"sku": "PAD-01", "quantity": 1})
    assert add_from_page["Location"] == reverse("orders:cart")
    elsewhere = client.post(
        reverse("orders:cart-add"),
        {"sku": "PAD-01", "quantity": 1, "next": "https://evil.example/"},
    )
    assert elsewhere["Location"] == reverse("orders:cart")
    assert cart_of(client) == {"PAD-01": 3}
    # Refusals go back to the list too.
    out = ProductFactory(stock=0, name="Gone Thing")
    response = client.post(
        reverse("orders:cart-add"), {"sku": out.sku, "quantity": 1, "next": "/?page=2"}, follow=True
    )
    assert response.redirect_chain == [("/?page=2", 302)]
    assert "Gone Thing is out of stock." in messages_of(response)


def test_pages_have_an_icon_and_favicon_ico_finds_it(client, catalog):
    from django.contrib.staticfiles import finders

    page = client.get("/").content.decode()
    assert re.search(r'<link rel="icon" href="/static/favicon\.svg" type="image/svg\+xml">', page)
    assert finders.find("favicon.svg")
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/favicon.svg"


def test_product_page_shows_price_and_low_stock(client, catalog):
    page = client.get(reverse("orders:product-detail", args=["LAMP-01"])).content.decode()
    assert "49.99 EUR" in page
    assert "Only 3 left" in page
    assert client.get(reverse("orders:product-detail", args=["NOPE"])).status_code == 404


# --- Cart -------------------------------------------------------------------------------------


def test_cart_add_change_and_remove(client, catalog):
    add(client, "LAPTOP-14")
    add(client, "MOUSE-01", 2)
    response = update(client, "MOUSE-01", 3)
    assert cart_of(client) == {"LAPTOP-14": 1, "MOUSE-01": 3}
    page = response.content.decode()
    assert "1089.96 EUR" in page  # 999.99 + 3 x 29.99, free shipping over the threshold
    response = update(client, "LAPTOP-14", 0)
    assert cart_of(client) == {"MOUSE-01": 3}
    assert "Laptop removed from your cart." in messages_of(response)


def test_cart_line_update_and_remove_are_apart(client, catalog):
    page = add(client, "MOUSE-01").content.decode()
    actions = re.search(r'<div class="line-actions">(.*?)</div>', page, re.S).group(1)
    assert ">Update</button>" in actions and ">Remove</button>" in actions


def test_cart_refuses_unknown_products(client, catalog):
    response = add(client, "NO-SUCH-SKU")
    assert "That product does not exist (any more)." in messages_of(response)
    assert cart_of(client) == {}
    response = update(client, "NO-SUCH-SKU", 2)
    assert "That product is not in your cart." in messages_of(response)
    assert cart_of(client) == {}


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        ("-1", "Quantity cannot be negative."),
        ("abc", "Quantity must be a whole number."),
        ("", "Enter a quantity."),
        ("1001", "At most 1000 of one product."),
    ],
)
def test_cart_update_refuses_bad_quantities(client, catalog, quantity, message):
    add(client, "MOUSE-01", 2)
    response = update(client, "MOUSE-01", quantity)
    assert message in messages_of(response)
    assert cart_of(client) == {"MOUSE-01": 2}


@pytest.mark.parametrize("quantity", ["0", "-3", "x"])
def test_cart_add_refuses_quantities_below_one(client, catalog, quantity):
    response = add(client, "MOUSE-01", quantity)
    assert "Choose a quantity between 1 and 1000." in messages_of(response)
    assert cart_of(client) == {}


def test_cart_caps_quantities_at_the_stock(client, catalog):
    response = add(client, "LAMP-01", 5)
    assert cart_of(client) == {"LAMP-01": 3}
    assert "Only 3 of Desk Lamp in stock: your cart holds all of them." in messages_of(response)
    response = update(client, "LAMP-01", 7)
    assert cart_of(client) == {"LAMP-01": 3}
    assert "Only 3 of Desk Lamp left." in messages_of(response)


def test_out_of_stock_product_cannot_be_added(client):
    product = ProductFactory(stock=0, name="Gone Thing")
    response = add(client, product.sku)
    assert "Gone Thing is out of stock." in messages_of(response)
    assert cart_of(client) == {}


def test_cart_says_so_when_a_product_runs_out_while_in_it(client, catalog):
    add(client, "LAMP-01", 2)
    Product.objects.filter(sku="LAMP-01").update(stock=1)
    page = client.get(reverse("orders:cart")).content.decode()
    assert "Only 1 of Desk Lamp left: lower the quantity to check out." in page
    assert "Fix the lines marked above to check out." in page
    Product.objects.filter(sku="LAMP-01").update(stock=0)
    page = client.get(reverse("orders:cart")).content.decode()
    assert "Desk Lamp is out of stock: remove it to check out." in page
    # Checkout refuses it too, with the same words, and holds and places nothing.
    token = checkout_token(client)
    page = client.get(reverse("orders:checkout")).content.decode()
    assert "Desk Lamp is out of stock" in page
    response = pay(client, {**CHECKOUT, "checkout_token": token})
    assert response.status_code == 409 and response.json()["redirect"] == reverse("orders:cart")
    assert Order.objects.count() == 0 and not Checkout.objects.exists()


def test_a_deleted_product_leaves_the_cart_with_a_message(client):
    product = ProductFactory(stock=5)
    add(client, product.sku)
    sku = product.sku
    product.delete()
    response = client.get(reverse("orders:cart"), follow=True)
    assert f"A product ({sku}) is no longer sold and left your cart." in messages_of(response)
    assert cart_of(client) == {}


# --- Checkout ---------------------------------------------------------------------------------


def test_checkout_places_the_order_and_shows_its_page(client, catalog):
    add(client, "LAPTOP-14")
    add(client, "MOUSE-01", 2)
    token = checkout_token(client)
    response = buy(client, {**CHECKOUT, "checkout_token": token})
    order = Order.objects.get()
    assert response.status_code == 200
    assert response.json()["redirect"] == f"/orders/{order.id}/"  # no token in the URL
    assert order.ship_postal_code == "N1 9GU"
    assert order.payment_intent.startswith("pi_") and order.payment_method == ""
    assert [(li.sku, li.quantity) for li in order.lines.all()] == [
        ("LAPTOP-14", 1),
        ("MOUSE-01", 2),
    ]
    assert Product.objects.get(sku="LAPTOP-14").stock == catalog["LAPTOP-14"].stock - 1
    assert cart_of(client) == {}
    page = client.get(response.json()["redirect"]).content.decode()
    assert f"Order {order.number}" in page and "Placed" in page


@pytest.fixture
def seeded():
    # Transactional tests elsewhere (live server) flush the seeded VAT rates; the seed is
    # idempotent.
    importlib.import_module(
        "orders.migrations.0003_seed_tax_rates_and_copy_pricing_tables"
    ).seed_vat_rates(apps, None)


def _text(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def test_cart_quotes_the_exact_total_for_the_shop_country_then_the_chosen_one(
    client, catalog, seeded, settings
):
    settings.PRICES_INCLUDE_TAX, settings.SHOP_COUNTRY = True, "DE"
    settings.SHIPPING_FEE, settings.FREE_SHIPPING_THRESHOLD = Decimal("4.90"), Decimal("100.00")
    add(client, "MOUSE-01", 2)  # 59.98 incl. VAT
    page = client.get(reverse("orders:cart"))
    text = _text(page)
    assert '<option value="DE" selected>' in page.content.decode()
    # 59.98 x 19/119 = 9.577 -> 9.58, 4.90 x 19/119 = 0.782 -> 0.78: included, the total is
    # goods + shipping as shown, and adds up visibly.
    for expected in (
        "Subtotal (incl. VAT) 59.98 EUR",
        "Shipping to Germany 4.90 EUR",
        "Total 64.88 EUR",
        "incl. VAT 19 % 10.36 EUR",
        "Shipping to Germany is free from 100.00 EUR.",
    ):
        assert expected in text, expected
    # Without JavaScript: the form's Recalculate button submits ?country=; the choice is kept.
    assert "Recalculate" in text
    text = _text(client.get(reverse("orders:cart"), {"country": "hu"}))
    assert "Shipping to Hungary 4.90 EUR" in text and "incl. VAT 27 % 13.79 EUR" in text
    assert client.session["quote_country"] == "HU"
    assert "incl. VAT 27 %" in _text(client.get(reverse("orders:cart")))


def test_cart_in_net_mode_adds_the_vat_line_before_the_total(client, catalog, seeded, settings):
    settings.PRICES_INCLUDE_TAX = False
    add(client, "MOUSE-01", 2)
    text = _text(client.get(reverse("orders:cart"), {"country": "FR"}))
    # Net 59.98 + 4.90 = 64.88, VAT 20 % = 12.976 -> 12.98: 77.86.
    assert (
        "Subtotal (excl. VAT) 59.98 EUR Shipping to France 4.90 EUR VAT 20 % 12.98 EUR "
        "Total 77.86 EUR"
    ) in text


def test_cart_totals_json_for_a_country_and_refuses_unknown_ones(client, catalog, seeded, settings):
    settings.PRICES_INCLUDE_TAX = True
    add(client, "LAPTOP-14")
    data = client.get(reverse("orders:cart-totals"), {"country": "FI"}).json()
    assert data["country"] == "FI"
    # 999.99 x 25.5/125.5 = 203.185 -> 203.19; shipping free from 100.00.
    assert data["totals"] == {
        "subtotal": "796.80",
        "shipping": "0.00",
        "tax": "203.19",
        "total": "999.99",
        "currency": "EUR",
    }
    assert 'id="cart-total">999.99 EUR<' in data["html"]
    assert client.session["quote_country"] == "FI"
    bad = client.get(reverse("orders:cart-totals"), {"country": "XX"})
    assert bad.status_code == 400 and "XX" in bad.json()["error"]
    empty = Client().get(reverse("orders:cart-totals"), {"country": "DE"}).json()
    assert empty["totals"] is None


def test_cart_totals_are_rate_limited_as_quotes(client, catalog, settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**rates, "quote": "2/min"},
    }
    add(client, "MOUSE-01")
    url = reverse("orders:cart-totals")
    assert [client.get(url, {"country": "DE"}).status_code for _ in range(3)] == [200, 200, 429]


def test_checkout_recalculates_without_javascript_and_places_what_it_showed(
    client, catalog, seeded
):
    add(client, "MOUSE-01", 2)
    token = checkout_token(client)
    data = {**CHECKOUT, "checkout_token": token, "country": "SE", "recalculate": "1"}
    page = client.post(reverse("orders:checkout"), data)
    assert page.status_code == 200 and not Order.objects.exists()
    text = _text(page)
    assert "Shipping to Sweden" in text and "incl. VAT 25 %" in text
    assert 'value="Ada Lovelace"' in page.content.decode()  # the answers stay
    assert "This field is required" not in text
    shown = re.search(r"Total ([\d.]+) EUR", text).group(1)
    del data["recalculate"]
    placed = buy(client, data)
    order = Order.objects.get()
    # The order page shows the same numbers, the same way (VAT included).
    text = _text(client.get(placed.json()["redirect"]))
    assert f"Total {shown} EUR incl. VAT 25 % {order.tax} EUR" in text
    assert (order.ship_country, str(order.total), order.tax_rate) == (
        "SE",
        shown,
        Decimal("0.2500"),
    )


def test_form_labels_have_no_colon(client, catalog):
    add(client, "MOUSE-01")
    checkout = client.get(reverse("orders:checkout")).content.decode()
    assert '<label for="id_email">Email</label>' in checkout
    assert '<label for="id_postal_code">Postal code</label>' in checkout
    for page in (checkout, client.get(reverse("login")).content.decode()):
        labels = re.findall(r"<label[^>]*>([^<]*)</label>", page)
        assert labels and not [label for label in labels if label.endswith(":")]


def test_checkout_form_errors_are_all_shown_at_once_before_the_card(client, catalog):
    add(client, "MOUSE-01")
    token = checkout_token(client)
    bad = {
        **CHECKOUT,
        "email": "not-an-email",
        "postal_code": "",
        "country": "XX",
        "city": "",
        "checkout_token": token,
    }
    response = pay(client, bad)
    assert response.status_code == 400
    errors = {
        field: [e["message"] for e in found] for field, found in response.json()["errors"].items()
    }
    assert errors == {
        "email": ["Enter a valid email address."],
        "postal_code": ["This field is required."],
        "country": ["Select a valid choice. XX is not one of the available choices."],
        "city": ["This field is required."],
    }
    assert Order.objects.count() == 0 and not Checkout.objects.exists()
    # A postal code that is no postal code.
    response = pay(client, {**CHECKOUT, "postal_code": "!!", "checkout_token": token})
    assert "Enter a valid postal code" in response.json()["errors"]["postal_code"][0]["message"]
    # Without JavaScript the same errors show next to the fields, and the answers stay.
    page = client.post(reverse("orders:checkout"), bad).content.decode()
    assert re.search(r'id="id_email-error">Enter a valid email address.<', page)
    assert 'value="Ada Lovelace"' in page


def test_checkout_page_loads_stripe_js_from_the_setting(client, catalog, settings):
    settings.STRIPE_JS_URL = "https://js.example.test/v3/"
    add(client, "MOUSE-01")
    page = client.get(reverse("orders:checkout")).content.decode()
    assert '<script src="https://js.example.test/v3/"></script>' in page
    assert 'id="card-element"' in page
    assert f'data-stripe-key="{settings.STRIPE_PUBLISHABLE_KEY}"' in page


def test_double_submit_and_back_button_place_one_order(client, catalog):
    add(client, "MOUSE-01", 2)
    token = checkout_token(client)
    form = {**CHECKOUT, "checkout_token": token}
    first = buy(client, form)
    # The same form again (a reload, back + submit): the order it placed, no second hold.
    again = pay(client, form)
    assert again.status_code == 200 and again.json()["redirect"] == first.json()["redirect"]
    order = Order.objects.get()
    assert Product.objects.get(sku="MOUSE-01").stock == catalog["MOUSE-01"].stock - 2
    assert (
        Checkout.objects.get().status == Checkout.Status.PLACED
        and order.pk == Checkout.objects.get().pk
    )


def test_a_second_card_after_a_decline_uses_the_same_hold_and_intent(client, catalog):
    add(client, "MOUSE-01")
    token = checkout_token(client)
    form = {**CHECKOUT, "checkout_token": token}
    first = pay(client, form).json()
    with pytest.raises(Exception, match="declined"):
        authorize_intent(first["payment_intent"], "pm_card_chargeCustomerFail")
    refused = client.post(
        reverse("orders:checkout-complete"),
        {"checkout_token": token, "payment_intent": first["payment_intent"]},
    )
    assert refused.status_code == 402 and not Order.objects.exists()
    assert refused.json()["code"] == "payment_not_authorized"
    again = buy(client, form)  # the shopper types another card and presses Pay again
    assert again.status_code == 200
    assert Order.objects.get().payment_intent == first["payment_intent"]
    assert Product.objects.get(sku="MOUSE-01").stock == catalog["MOUSE-01"].stock - 1


def test_the_browser_cannot_place_an_order_with_an_unauthorized_or_foreign_intent(client, catalog):
    add(client, "MOUSE-01")
    token = checkout_token(client)
    opened = pay(client, {**CHECKOUT, "checkout_token": token}).json()
    for intent in (opened["payment_intent"], "pi_madeup"):
        answer = client.post(
            reverse("orders:checkout-complete"), {"checkout_token": token, "payment_intent": intent}
        )
        assert answer.status_code == 402, intent
    assert not Order.objects.exists()


def test_out_of_stock_at_checkout_is_a_clear_message(client):
    product = ProductFactory(stock=2, name="Rare Thing")
    add(client, product.sku, 2)
    token = checkout_token(client)
    Product.objects.filter(pk=product.pk).update(stock=1)
    response = pay(client, {**CHECKOUT, "checkout_token": token})
    assert response.status_code == 409
    assert Order.objects.count() == 0
    assert Product.objects.get(pk=product.pk).stock == 1


def test_empty_cart_checkout_goes_back_to_the_catalog(client, catalog):
    response = client.get(reverse("orders:checkout"), follow=True)
    assert "Your cart is empty." in messages_of(response)


def test_every_form_needs_a_csrf_token(catalog):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert strict.post(reverse("orders:cart-add"), {"sku": "MOUSE-01"}).status_code == 403
    assert strict.post(reverse("orders:checkout"), CHECKOUT).status_code == 403
    assert strict.post(reverse("orders:checkout-pay"), CHECKOUT).status_code == 403
    assert strict.post(reverse("orders:checkout-complete"), {}).status_code == 403
    assert strict.post(reverse("orders:signup"), {}).status_code == 403


# --- Order page -------------------------------------------------------------------------------


def _place(client) -> tuple[Order, str]:
    add(client, "MOUSE-01")
    token = checkout_token(client)
    response = buy(client, {**CHECKOUT, "checkout_token": token})
    return Order.objects.get(), response.json()["redirect"]


def test_order_page_and_status_json_need_the_token(client, catalog):
    order, url = _place(client)
    from django.test import Client

    stranger = Client()
    assert stranger.get(f"/orders/{order.id}/").status_code == 404
    assert stranger.get(f"/orders/{order.id}/?token=wrong").status_code == 404
    assert stranger.get(url).status_code == 404
    assert stranger.get(f"{url}status.json").status_code == 404
    # The emailed link: exchanged for the session, then the page without the token.
    link = order_link(order).removeprefix(settings.SITE_URL)
    assert stranger.get(link)["Location"] == url
    assert stranger.get(url).status_code == 200
    status = stranger.get(f"{url}status.json")
    assert status.status_code == 200
    data = status.json()
    assert data["status"] == "placed" and data["final"] is False
    assert 'data-status="placed"' in data["html"]
    assert data["payment_client_secret"] is None


def test_order_page_shows_complete_payment_when_the_bank_asks(client, catalog):
    order, url = _place(client)
    Order.objects.filter(pk=order.pk).update(
        status="action_required", payment_client_secret="pi_1_secret_abc"
    )
    page = client.get(url).content.decode()
    assert 'id="complete-payment"' in page and 'data-client-secret="pi_1_secret_abc"' in page
    data = client.get(f"{url}status.json").json()
    assert data["payment_client_secret"] == "pi_1_secret_abc"


def test_order_page_explains_a_declined_card(client, catalog):
    order, url = _place(client)
    Order.objects.filter(pk=order.pk).update(
        status="cancelled", payment_status="failed", payment_message="Your card was declined."
    )
    page = client.get(url).content.decode()
    problem = re.search(r'id="payment-problem">(.*?)</div>', page, re.S).group(1)
    # The bank's sentence once, not "Your payment was declined: Your card was declined."
    assert "<strong>Your card was declined.</strong>" in problem
    assert problem.count("declined") == 1
    assert "Nothing was charged" in problem
    # Without a sentence from the bank, ours.
    Order.objects.filter(pk=order.pk).update(payment_message="")
    page = client.get(url).content.decode()
    assert "<strong>Your payment was declined.</strong>" in page


def steps_of(html: str) -> list[tuple[str, str]]:
    """The progress bar as (state, step) pairs."""
    return re.findall(r'class="step (\w+)"\s+data-step="(\w+)"', html)


def status_json(client, url: str) -> dict:
    return client.get(f"{url}status.json").json()


STEP_KEYS = ("placed", "invoiced", "paid", "shipped", "delivered")


@pytest.mark.parametrize(
    ("status", "states"),
    [
        ("placed", ("current", "todo", "todo", "todo", "todo")),
        # Invoiced; the payment waits for the customer (3-D Secure).
        ("action_required", ("done", "current", "todo", "todo", "todo")),
        ("shipped", ("done", "done", "done", "current", "todo")),
        ("delivered", ("done", "done", "done", "done", "done")),
    ],
)
def test_order_steps_mark_the_current_step_not_the_next_one(client, catalog, status, states):
    expected = list(zip(states, STEP_KEYS, strict=True))
    order, url = _place(client)
    Order.objects.filter(pk=order.pk).update(status=status)
    page = client.get(url).content.decode()
    assert steps_of(page) == expected
    assert steps_of(status_json(client, url)["html"]) == expected
    current = re.search(r'<li class="step current"[^>]*>', page)
    assert current is None or 'aria-current="step"' in current.group(0)


@pytest.mark.parametrize(
    ("status", "reached", "expected"),
    [
        (
            "cancelled",
            "invoiced",
            [("done", "placed"), ("done", "invoiced"), ("ended", "cancelled")],
        ),
        (
            "refunded",
            "paid",
            [("done", "placed"), ("done", "invoiced"), ("done", "paid"), ("ended", "refunded")],
        ),
    ],
)
def test_an_ended_order_shows_how_far_it_got_and_its_end(
    client, catalog, status, reached, expected
):
    order, url = _place(client)
    TimelineEntry.objects.create(
        order=order, type="status_changed", detail={"from": "placed", "to": reached}
    )
    TimelineEntry.objects.create(
        order=order, type="status_changed", detail={"from": reached, "to": status}
    )
    Order.objects.filter(pk=order.pk).update(status=status)
    page = client.get(url).content.decode()
    assert steps_of(page) == expected
    assert 'aria-current="step">' + status.capitalize() + "</li>" in page


def test_tracking_is_shown_only_for_orders_that_can_still_ship(client, catalog):
    order, url = _place(client)
    assert "when shipped" in client.get(url).content.decode()
    for status in ("cancelled", "refunded"):
        Order.objects.filter(pk=order.pk).update(status=status)
        page = client.get(url).content.decode()
        assert "Tracking" not in page and "when shipped" not in page, status
    Order.objects.filter(pk=order.pk).update(
        status="shipped", carrier="DHL", tracking_number="TRK123"
    )
    page = client.get(url).content.decode()
    assert re.search(r'id="order-tracking">\s*DHL TRK123\s*<', page)


def test_thank_you_message_is_not_shown_above_an_ended_order(client, catalog):
    add(client, "MOUSE-01")
    token = checkout_token(client)
    response = buy(client, {**CHECKOUT, "checkout_token": token})
    order = Order.objects.get()
    page = client.get(response.json()["redirect"]).content.decode()
    assert f"Thank you! Your card is authorized and order {order.number} is placed." in page
    assert 'class="message order-placed success"' in page  # order.js hides it if the order ends
    # The card was declined before the customer got to the order page.
    add(client, "MOUSE-01")
    token = checkout_token(client)
    form = {**CHECKOUT, "email": "b@example.com", "checkout_token": token}
    url = buy(client, form).json()["redirect"]
    Order.objects.filter(email="b@example.com").update(
        status="cancelled", payment_status="failed", payment_message="Your card was declined."
    )
    page = client.get(url).content.decode()
    assert "Thank you!" not in page
    assert 'class="messages"' not in page
    assert "Your card was declined." in page


def test_order_page_shows_the_country_name(client, catalog):
    _order, url = _place(client)
    page = client.get(url).content.decode()
    address = re.search(r"<address>(.*?)</address>", page, re.S).group(1)
    assert "United Kingdom" in address
    assert "GB" not in address


def test_order_page_keeps_polling_until_a_final_order_has_settled(client, catalog):
    """Emails and the credit note follow a final status by seconds: the page keeps asking until
    the order has been quiet for a minute (order.js also stops a minute after it saw it final)."""
    order, url = _place(client)
    data = status_json(client, url)
    assert data["final"] is False and data["settled"] is False
    Order.objects.filter(pk=order.pk).update(status="cancelled")
    data = status_json(client, url)
    assert data["final"] is True and data["settled"] is False  # the news may still come
    assert 'data-settled="false"' in data["html"]
    a_while_ago = timezone.now() - timedelta(seconds=61)
    Order.objects.filter(pk=order.pk).update(updated_at=a_while_ago)
    TimelineEntry.objects.filter(order=order).update(at=a_while_ago)
    data = status_json(client, url)
    assert data["settled"] is True
    page = client.get(url).content.decode()
    assert 'data-settled="true"' in page
    assert 'http-equiv="refresh"' not in page
    # Something new (the credit note, an email) restarts the minute.
    TimelineEntry.objects.create(order=order, type="credit_note_issued", detail={})
    assert status_json(client, url)["settled"] is False


# --- Accounts ---------------------------------------------------------------------------------


def test_signup_logs_in_and_keeps_the_cart(client, catalog):
    add(client, "MOUSE-01", 2)
    response = client.post(
        reverse("orders:signup"),
        {
            "username": "grace",
            "email": "grace@example.com",
            "password1": "a-long-unusual-pass-42",
            "password2": "a-long-unusual-pass-42",
        },
        follow=True,
    )
    assert response.context["user"].username == "grace"
    assert cart_of(client) == {"MOUSE-01": 2}


def test_login_rotates_the_session_and_keeps_the_cart(client, catalog):
    get_user_model().objects.create_user("grace", "grace@example.com", "a-long-unusual-pass-42")
    add(client, "MOUSE-01", 2)
    before = client.session.session_key
    response = client.post(
        reverse("login"), {"username": "grace", "password": "a-long-unusual-pass-42"}
    )
    assert response.status_code == 302
    assert client.session.session_key != before
    assert cart_of(client) == {"MOUSE-01": 2}


def test_order_history_lists_only_my_orders(client, catalog):
    from orders.tests.factories import OrderFactory

    user = get_user_model().objects.create_user("grace", "grace@example.com", "pw-long-enough-1")
    client.force_login(user)
    add(client, "MOUSE-01")
    assert 'value="grace@example.com"' in client.get(reverse("orders:checkout")).content.decode()
    order, _ = _place(client)
    assert order.customer == user
    someone_else = OrderFactory(email="someone@example.com")
    page = client.get(reverse("orders:account-orders")).content.decode()
    assert order.number in page
    assert someone_else.number not in page
    # The owner sees the order page without a token; nobody else does.
    assert client.get(f"/orders/{order.id}/").status_code == 200
    assert client.get(f"/orders/{someone_else.id}/").status_code == 404


def test_order_history_needs_login(client):
    response = client.get(reverse("orders:account-orders"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
