"""Rate limits (issue 13): checkouts per client on the API and the storefront, order lookups,
and the login lockout for the storefront, the admin and the API's Basic authentication. Each
answers 429 with Retry-After, counted in the cache."""

from __future__ import annotations

import base64
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from conftest import GUEST_ADDRESS, GUEST_ITEMS

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-Passphrase-42"


@pytest.fixture
def rates(settings):
    def set_rates(**rates):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                **rates,
            },
        }

    return set_rates


def api_order(client, key: str, **headers):
    return client.post(
        "/api/v1/orders/",
        json.dumps(
            {
                "email": "ada@example.com",
                "shipping_address": GUEST_ADDRESS,
                "items": GUEST_ITEMS,
                "payment_method": "pm_card_visa",
            }
        ),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
        **headers,
    )


def assert_throttled(response):
    assert response.status_code == 429, response.content
    assert int(response["Retry-After"]) >= 1


def test_api_checkouts_per_client_are_limited(catalog, rates):
    rates(checkout="3/min")
    client = Client()
    for n in range(3):
        assert api_order(client, f"rl-{n}").status_code == 201
    response = api_order(client, "rl-3")
    assert_throttled(response)
    assert int(response["Retry-After"]) <= 60
    # Another client (address) has its own budget.
    assert api_order(client, "rl-4", REMOTE_ADDR="10.1.2.3").status_code == 201


def test_api_checkouts_per_address_cover_several_accounts(catalog, rates):
    rates(checkout="100/min", checkout_ip="2/min")
    users = [
        get_user_model().objects.create_user(f"u{n}", f"u{n}@example.com", PASSWORD)
        for n in range(3)
    ]
    codes = []
    for n, user in enumerate(users):
        client = Client()
        client.force_login(user)
        codes.append(api_order(client, f"acct-{n}").status_code)
    assert codes == [201, 201, 429]


def test_order_lookups_are_limited(catalog, rates):
    rates(order_lookup="2/min")
    client = Client()
    order = api_order(client, "lookup-1").json()
    url = f"/api/v1/orders/{order['id']}/"
    headers = {"HTTP_X_ORDER_TOKEN": order["access_token"]}
    assert client.get(url, **headers).status_code == 200
    assert client.get(url, **headers).status_code == 200
    assert_throttled(client.get(url, **headers))


def _storefront_checkout(client):
    client.post(reverse("orders:cart-add"), {"sku": "MOUSE-01", "quantity": 1})
    page = client.get(reverse("orders:checkout")).content.decode()
    token = re.search(r'name="checkout_token" value="([^"]+)"', page).group(1)
    return client.post(
        reverse("orders:checkout-pay"),
        {
            "email": "ada@example.com",
            "name": "Ada",
            "line1": "1 Row",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
            "checkout_token": token,
        },
    )


def test_storefront_checkouts_share_the_api_budget(catalog, rates, stripe_server):
    rates(checkout="2/min")
    client = Client()
    assert api_order(client, "shared-1").status_code == 201
    assert _storefront_checkout(client).status_code == 200  # Pay: the stock held, an intent
    assert_throttled(_storefront_checkout(client))
    assert_throttled(api_order(client, "shared-2"))


def test_unset_rate_means_no_limit(catalog, rates):
    rates(checkout="", checkout_ip="")
    client = Client()
    for n in range(4):
        assert api_order(client, f"free-{n}").status_code == 201


# --- Login lockout -----------------------------------------------------------------------------


@pytest.fixture
def ada(db):
    return get_user_model().objects.create_user("ada", "ada@example.com", PASSWORD)


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)


def test_storefront_login_locks_after_failures_even_with_the_right_password(ada, settings):
    settings.LOGIN_LOCKOUT_FAILURES = 3
    client = Client()
    url = reverse("login")
    for _ in range(2):
        assert client.post(url, {"username": "ada", "password": "wrong"}).status_code == 200
    assert_throttled(client.post(url, {"username": "ada", "password": "wrong"}))
    response = client.post(url, {"username": "ada", "password": PASSWORD})
    assert_throttled(response)
    assert int(response["Retry-After"]) <= settings.LOGIN_LOCKOUT_SECONDS
    assert "_auth_user_id" not in client.session
    # Another address may still log in as ada.
    other = Client(REMOTE_ADDR="10.9.9.9")
    assert other.post(url, {"username": "ada", "password": PASSWORD}).status_code == 302


def test_a_successful_login_resets_the_count(ada, settings):
    settings.LOGIN_LOCKOUT_FAILURES = 3
    client = Client()
    url = reverse("login")
    for _ in range(2):
        client.post(url, {"username": "ada", "password": "wrong"})
    assert client.post(url, {"username": "ada", "password": PASSWORD}).status_code == 302
    client.logout()
    for _ in range(2):
        assert client.post(url, {"username": "ada", "password": "wrong"}).status_code == 200
    assert client.post(url, {"username": "ada", "password": PASSWORD}).status_code == 302


def test_admin_login_locks_too(staff, settings):
    settings.LOGIN_LOCKOUT_FAILURES = 3
    client = Client()
    url = reverse("admin:login")
    codes = [
        client.post(url, {"username": "root", "password": f"guess{n}"}).status_code
        for n in range(4)
    ]
    assert codes == [200, 200, 429, 429]
    assert_throttled(client.post(url, {"username": "root", "password": PASSWORD}))


def test_one_address_guessing_many_usernames_is_locked(ada, settings):
    settings.LOGIN_LOCKOUT_IP_FAILURES = 4
    client = Client()
    url = reverse("login")
    codes = [
        client.post(url, {"username": f"user{n}", "password": "x"}).status_code for n in range(5)
    ]
    assert codes == [200, 200, 200, 429, 429]
    assert_throttled(client.post(url, {"username": "ada", "password": PASSWORD}))


def _basic(username: str, password: str) -> dict:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def test_api_basic_auth_guesses_are_locked_out(staff, catalog, settings):
    settings.LOGIN_LOCKOUT_FAILURES = 3
    client = Client()
    codes = [
        client.get("/api/v1/products/", **_basic("root", f"guess{n}")).status_code for n in range(3)
    ]
    assert codes[:2] in ([401, 401], [403, 403])
    assert codes[2] == 429
    response = client.get("/api/v1/products/", **_basic("root", PASSWORD))
    assert_throttled(response)
    assert response.json()["code"] == "throttled"
    assert (
        client.get(
            "/api/v1/products/", **_basic("root", PASSWORD), REMOTE_ADDR="10.0.0.7"
        ).status_code
        == 200
    )
