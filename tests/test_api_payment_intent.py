"""The API's authorize-first path (issue 8): POST /api/v1/payment-intents/ quotes the exact total,
holds the stock and opens a PaymentIntent; the client confirms it; POST /api/v1/orders/ with
`payment_intent` places the order only if the intent is authorized for exactly that total."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from billing.stripe_client import stripe_client
from conftest import GUEST_ADDRESS, GUEST_ITEMS
from orders.models import Checkout, Order, Product
from outbox.models import OutboxEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_server")]


@pytest.fixture
def api():
    return APIClient()


def quote(api, *, items=GUEST_ITEMS, country="GB", key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post(
        "/api/v1/payment-intents/", {"items": items, "country": country}, format="json", **headers
    )


def confirm(intent_id: str, card: str = "pm_card_visa"):
    return stripe_client().v1.payment_intents.confirm(intent_id, params={"payment_method": card})


def order_with(api, intent_id: str, *, key="order-1", items=GUEST_ITEMS, address=GUEST_ADDRESS):
    body = {
        "email": "ada@example.com",
        "shipping_address": address,
        "items": items,
        "payment_intent": intent_id,
    }
    return api.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_the_quote_holds_the_stock_and_opens_an_intent_for_the_exact_total(api, catalog):
    response = quote(api, key="q-1")
    assert response.status_code == 201, response.content
    data = response.json()
    totals = data["totals"]
    assert Decimal(totals["subtotal"]) + Decimal(totals["shipping"]) + Decimal(
        totals["tax"]
    ) == Decimal(totals["total"])
    assert data["amount"] == totals["total"] and data["currency"] == "EUR"
    intent = stripe_client().v1.payment_intents.retrieve(data["payment_intent"])
    assert intent.amount == int(Decimal(totals["total"]) * 100)
    assert intent.capture_method == "manual" and intent.status == "requires_payment_method"
    assert data["client_secret"] == intent.client_secret
    assert Product.objects.get(sku="MOUSE-01").stock == catalog["MOUSE-01"].stock - 2
    # The same key and body: the same quote and intent, the stock held once.
    again = quote(api, key="q-1").json()
    assert again["payment_intent"] == data["payment_intent"]
    assert Product.objects.get(sku="MOUSE-01").stock == catalog["MOUSE-01"].stock - 2


def test_the_quote_refuses_bad_input_with_field_errors(api, catalog):
    bad = api.post(
        "/api/v1/payment-intents/",
        {"items": [{"sku": "NOPE", "quantity": 0}], "country": "XX"},
        format="json",
    )
    assert bad.status_code == 400
    assert set(bad.json()) >= {"items", "country"}
    too_many = quote(api, items=[{"sku": "LAPTOP-14", "quantity": 1000}])
    assert too_many.status_code == 409 and too_many.json()["code"] == "out_of_stock"


def test_an_authorized_intent_places_the_order_with_its_final_totals(api, catalog):
    data = quote(api).json()
    confirm(data["payment_intent"])
    response = order_with(api, data["payment_intent"])
    assert response.status_code == 201, response.content
    order = response.json()
    assert order["totals"] == data["totals"]
    assert order["status"] == "placed" and order["access_token"]
    placed = Order.objects.get(pk=order["id"])
    assert placed.payment_intent == data["payment_intent"] and placed.payment_method == ""
    event = OutboxEvent.objects.get(type="order.placed", aggregate_id=order["id"])
    assert event.data["payment"] == {"payment_intent": data["payment_intent"]}
    # The held stock became the order's: taken once.
    assert Product.objects.get(sku="MOUSE-01").stock == catalog["MOUSE-01"].stock - 2
    # The same key and body again: the same order.
    replay = order_with(api, data["payment_intent"])
    assert replay.status_code == 201 and replay.json()["id"] == order["id"]
    assert replay["Idempotent-Replayed"] == "true"


def test_an_intent_that_is_not_authorized_is_402(api, catalog):
    data = quote(api).json()
    response = order_with(api, data["payment_intent"])  # never confirmed
    assert response.status_code == 402
    assert response.json()["code"] == "payment_not_authorized"
    with pytest.raises(Exception, match="declined"):
        confirm(data["payment_intent"], "pm_card_chargeCustomerFail")
    assert order_with(api, data["payment_intent"]).status_code == 402
    assert not Order.objects.exists()


def test_an_intent_for_another_amount_is_402(api, catalog):
    data = quote(api, items=[{"sku": "MOUSE-01", "quantity": 1}]).json()
    confirm(data["payment_intent"])
    response = order_with(api, data["payment_intent"])  # GUEST_ITEMS: a laptop and two mice
    assert response.status_code == 402
    assert response.json()["code"] == "quote_mismatch"
    other_country = order_with(
        api,
        data["payment_intent"],
        items=[{"sku": "MOUSE-01", "quantity": 1}],
        address={**GUEST_ADDRESS, "country": "DE", "postal_code": "10115"},
    )
    assert other_country.status_code == 402
    assert not Order.objects.exists()


def test_an_unknown_intent_is_402_and_a_reused_one_409(api, catalog):
    assert order_with(api, "pi_madeup").status_code == 402
    data = quote(api).json()
    confirm(data["payment_intent"])
    assert order_with(api, data["payment_intent"], key="first").status_code == 201
    reused = order_with(api, data["payment_intent"], key="second")
    assert reused.status_code == 409 and reused.json()["code"] == "payment_intent_used"
    assert Order.objects.count() == 1


def test_payment_method_and_payment_intent_are_one_or_the_other(api, catalog):
    body = {
        "email": "ada@example.com",
        "shipping_address": GUEST_ADDRESS,
        "items": GUEST_ITEMS,
    }
    neither = api.post("/api/v1/orders/", body, format="json")
    both = api.post(
        "/api/v1/orders/",
        {**body, "payment_method": "pm_card_visa", "payment_intent": "pi_x"},
        format="json",
    )
    for response in (neither, both):
        assert response.status_code == 400
        assert set(response.json()) >= {"payment_method", "payment_intent"}


def test_the_payment_method_path_still_places_at_once(api, catalog):
    response = api.post(
        "/api/v1/orders/",
        {
            "email": "ada@example.com",
            "shipping_address": GUEST_ADDRESS,
            "items": GUEST_ITEMS,
            "payment_method": "pm_card_visa",
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="pm-1",
    )
    assert response.status_code == 201
    totals = response.json()["totals"]
    assert Decimal(totals["subtotal"]) + Decimal(totals["shipping"]) + Decimal(
        totals["tax"]
    ) == Decimal(totals["total"])
    assert not Checkout.objects.exists()
