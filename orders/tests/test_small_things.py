"""Small things a real shop gets right: no country chosen for the shopper unless they (their
cart, their account, their browser) said so; "Mailbox" only with DEBUG; order lists written as
"1 x Mouse, 3 x Laptop Stand" (with the multiplication sign)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from orders.models import Order
from orders.tests.test_storefront import CHECKOUT, add, buy, checkout_token, pay

pytestmark = pytest.mark.django_db


def selected_country(page: str) -> str:
    select = re.search(r'<select name="country"[^>]*id="id_country".*?</select>', page, re.S)
    chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select.group(0))
    return chosen.group(1) if chosen else ""


def test_no_country_is_preselected_for_a_new_shopper(client, catalog, stripe_server):
    add(client, "MOUSE-01")
    page = client.get(reverse("orders:checkout")).content.decode()
    assert selected_country(page) == ""
    assert '<option value="" selected>Choose your country</option>' in page
    # The totals say which country they are for until the shopper chooses.
    assert "choose your country" in page

    # Not choosing is explained next to the field, and nothing is held or placed.
    token = checkout_token(client)
    answer = pay(client, {**CHECKOUT, "country": "", "checkout_token": token})
    assert answer.status_code == 400
    assert answer.json()["errors"]["country"][0]["message"] == "Choose the country to ship to."
    assert not Order.objects.exists()

    # Choosing works as before.
    response = buy(client, {**CHECKOUT, "checkout_token": token})
    assert response.status_code == 200, response.content
    assert Order.objects.get().ship_country == "GB"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("de-AT,de;q=0.9,en;q=0.8", "AT"), ("fr", ""), ("en-GB", "GB"), ("xx-QQ,", "")],
)
def test_the_browser_language_region_preselects_a_country(client, catalog, header, expected):
    add(client, "MOUSE-01")
    page = client.get(reverse("orders:checkout"), HTTP_ACCEPT_LANGUAGE=header).content.decode()
    assert selected_country(page) == expected


def test_the_accounts_last_order_preselects_its_country(client, catalog, stripe_server):
    user = get_user_model().objects.create_user("ada", "ada@example.com", "pw")
    client.force_login(user)
    add(client, "MOUSE-01")
    token = checkout_token(client)
    bought = buy(client, {**CHECKOUT, "country": "FR", "checkout_token": token})
    assert bought.status_code == 200, bought.content
    assert Order.objects.get(customer=user).ship_country == "FR"
    client.logout()  # a new session: no choice remembered, only the account
    client.force_login(user)
    add(client, "MOUSE-01")
    page = client.get(reverse("orders:checkout"), HTTP_ACCEPT_LANGUAGE="de-AT").content.decode()
    assert selected_country(page) == "FR"


def test_mailbox_is_linked_only_with_debug(client, catalog, settings):
    settings.DEBUG = False
    assert ">Mailbox<" not in client.get("/").content.decode()
    settings.DEBUG = True
    assert ">Mailbox<" in client.get("/").content.decode()


def test_my_orders_lists_items_without_stray_spaces(client, catalog, stripe_server):
    user = get_user_model().objects.create_user("grace", "grace@example.com", "pw")
    client.force_login(user)
    add(client, "MOUSE-01")
    add(client, "STAND-01", 3)
    token = checkout_token(client)
    buy(client, {**CHECKOUT, "checkout_token": token})
    page = client.get(reverse("orders:account-orders")).content.decode()
    assert "1 × Mouse, 3 × Laptop Stand" in page
    assert " ," not in re.sub(r"\s+", " ", page)
