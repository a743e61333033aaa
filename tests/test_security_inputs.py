"""Inputs that used to be 500s (issue 13): deep or huge JSON, `next` values that are not local
paths, NUL bytes, correctly signed but unusable Stripe events. Each answers 4xx now."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from billing.models import StripeEvent
from billing.tests.helpers import signed_webhook
from conftest import GUEST_ADDRESS, GUEST_ITEMS

pytestmark = pytest.mark.django_db

ORDER = {
    "email": "ada@example.com",
    "shipping_address": GUEST_ADDRESS,
    "items": GUEST_ITEMS,
    "payment_method": "pm_card_visa",
}


@pytest.fixture
def web():
    """A client that answers like the server does (a 500 is a response, not an exception)."""
    return Client(raise_request_exception=False)


# --- JSON limits -------------------------------------------------------------------------------


def test_deeply_nested_json_is_a_400_naming_the_problem(web, catalog):
    deep = "[" * 100_000 + "]" * 100_000
    response = web.post("/api/v1/orders/", deep, content_type="application/json")
    assert response.status_code == 400
    assert "nested" in response.json()["detail"]


def test_json_nested_past_the_limit_inside_a_valid_order_is_refused(web, catalog, settings):
    settings.API_JSON_MAX_DEPTH = 20
    nested = {"a": 1}
    for _ in range(30):
        nested = {"a": nested}
    body = json.dumps({**ORDER, "extra": nested})
    response = web.post("/api/v1/orders/", body, content_type="application/json")
    assert response.status_code == 400
    assert "deeper than 20" in response.json()["detail"]


def test_a_body_over_the_upload_limit_is_not_parsed(web, catalog):
    huge = json.dumps({**ORDER, "padding": "x" * (30 * 1024 * 1024)})
    response = web.post("/api/v1/orders/", huge, content_type="application/json")
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


def test_nan_and_bad_json_are_400(web, catalog):
    for body in ('{"email": NaN}', "{", '{"a": "\\ud800"'):
        response = web.post("/api/v1/orders/", body, content_type="application/json")
        assert response.status_code == 400, body


def test_a_normal_order_still_goes_through(web, catalog, stripe_server):
    response = web.post(
        "/api/v1/orders/",
        json.dumps(ORDER),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="inputs-normal-1",
    )
    assert response.status_code == 201, response.content


def test_an_idempotency_key_with_control_characters_is_a_400(web, catalog):
    response = web.post(
        "/api/v1/orders/",
        json.dumps(ORDER),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="key\x01with\x7fcontrol",
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()


# --- `next` ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["foo", "//evil.example/", "https://evil.example/", "\\\\x"])
def test_cart_add_ignores_a_next_that_is_not_a_local_path(web, catalog, target):
    response = web.post(
        reverse("orders:cart-add"), {"sku": "MOUSE-01", "quantity": 1, "next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("orders:cart")


def test_cart_add_follows_a_local_next(web, catalog):
    response = web.post(
        reverse("orders:cart-add"), {"sku": "MOUSE-01", "quantity": 1, "next": "/?page=2"}
    )
    assert response["Location"] == "/?page=2"


def test_signup_with_next_foo_creates_the_account_and_goes_home(web, catalog):
    response = web.post(
        reverse("orders:signup") + "?next=foo",
        {
            "username": "grace",
            "email": "grace@example.com",
            "password1": "a-long-Passphrase-42",
            "password2": "a-long-Passphrase-42",
            "next": "foo",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("orders:product-list")
    assert get_user_model().objects.filter(username="grace").exists()


@pytest.mark.parametrize("target", ["foo", "//evil.example/x", "https://evil.example/"])
def test_login_with_a_bad_next_goes_to_the_default_page(web, db, target):
    get_user_model().objects.create_user("ada", "ada@example.com", "a-long-Passphrase-42")
    response = web.post(
        reverse("login"), {"username": "ada", "password": "a-long-Passphrase-42", "next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("orders:product-list")
    response = web.get(reverse("login") + f"?next={target}")
    assert response.status_code in (200, 302)


def test_login_follows_a_local_next(web, db):
    get_user_model().objects.create_user("ada", "ada@example.com", "a-long-Passphrase-42")
    response = web.post(
        reverse("login"),
        {"username": "ada", "password": "a-long-Passphrase-42", "next": "/accounts/orders/"},
    )
    assert response["Location"] == "/accounts/orders/"


# --- NUL bytes ----------------------------------------------------------------------------------


def test_a_nul_byte_in_the_checkout_token_is_refused_before_any_query(web, catalog):
    web.post(reverse("orders:cart-add"), {"sku": "MOUSE-01", "quantity": 1})
    response = web.post(reverse("orders:checkout"), {"checkout_token": "abc\x00def"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "url",
    [
        "/?q=mouse%00",
        "/products/MOUSE%0001/",
        "/api/v1/products/?search=a%00b",
        "/accounts/login/?next=/%00",
    ],
)
def test_a_nul_byte_in_a_url_is_a_400(web, catalog, url):
    assert web.get(url).status_code == 400


def test_a_nul_byte_in_any_form_field_is_a_400(web, catalog):
    for url, data in [
        (reverse("orders:cart-add"), {"sku": "MOUSE\x0001", "quantity": 1}),
        (reverse("login"), {"username": "a\x00", "password": "x"}),
        (reverse("orders:signup"), {"username": "a\x00", "email": "a@example.com"}),
    ]:
        assert web.post(url, data).status_code == 400, url


def test_a_nul_byte_in_api_json_is_a_field_error(web, catalog):
    body = json.dumps({**ORDER, "items": [{"sku": "MOUSE\x0001", "quantity": 1}]})
    response = web.post("/api/v1/orders/", body, content_type="application/json")
    assert response.status_code == 400
    assert "items" in response.json()


# --- Stripe webhook -----------------------------------------------------------------------------


def _post_event(web, event) -> int:
    body, signature = signed_webhook(event) if not isinstance(event, str) else _signed_raw(event)
    return web.post(
        reverse("billing:stripe-webhook"),
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    ).status_code


def _signed_raw(body: str) -> tuple[str, str]:
    import hashlib
    import hmac
    import time

    from django.conf import settings

    timestamp = int(time.time())
    mac = hmac.new(
        settings.STRIPE_WEBHOOK_SECRET.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256
    ).hexdigest()
    return body, f"t={timestamp},v1={mac}"


@pytest.mark.parametrize(
    "event",
    [
        {"id": "evt_1", "type": "payment_intent.succeeded"},
        {"id": "evt_2", "type": "payment_intent.succeeded", "data": None},
        {"id": "evt_3", "type": "payment_intent.succeeded", "data": {"object": "x"}},
        {
            "id": "evt_4",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "metadata": {"order_id": "not-a-uuid"}}},
        },
        {
            "id": "evt_5",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "metadata": "x"}},
        },
        {"type": "payment_intent.succeeded", "data": {"object": {}}},
        {"id": "x" * 300, "type": "t", "data": {"object": {}}},
        [1, 2, 3],
        "[" * 50_000 + "]" * 50_000,
        '{"id": "evt_6", "type": "x", "data": {"object": {"deep": ' + "[" * 500 + "]" * 500 + "}}}",
    ],
)
def test_signed_but_unusable_stripe_events_are_400_and_change_nothing(web, event):
    assert _post_event(web, event) == 400
    assert not StripeEvent.objects.exists()


def test_a_usable_event_of_another_type_is_accepted(web):
    event = {
        "id": "evt_ok",
        "type": "customer.created",
        "data": {"object": {"id": "cus_1", "metadata": {"order_id": str(uuid.uuid4())}}},
    }
    assert _post_event(web, event) == 200
    assert StripeEvent.objects.filter(event_id="evt_ok").exists()


def test_an_event_for_an_intent_stripe_does_not_know_is_400(web, stripe_server):
    event = {
        "id": "evt_unknown",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_nope", "metadata": {"order_id": str(uuid.uuid4())}}},
    }
    assert _post_event(web, event) == 400


def test_the_api_takes_json_only(web, catalog):
    response = web.post("/api/v1/orders/", {"email": "ada@example.com"})  # multipart
    assert response.status_code == 415
