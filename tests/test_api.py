"""The public API contract of DESIGN.md §6."""

from __future__ import annotations

import copy

import pytest
from rest_framework.test import APIClient

from orders.models import Order, Product
from outbox.models import OutboxEvent

BODY = {
    "email": "grace@example.com",
    "shipping_address": {
        "name": "Grace Hopper",
        "line1": "1 Compiler Way",
        "line2": "",
        "city": "Arlington",
        "postal_code": "22201",
        "country": "US",
    },
    "items": [{"sku": "LAPTOP-14", "quantity": 1}, {"sku": "MOUSE-01", "quantity": 1}],
    "payment_method": "pm_card_visa",
}


@pytest.fixture
def api():
    return APIClient()


def create(api, body=None, key="key-1"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post("/api/v1/orders/", body or BODY, format="json", **headers)


def test_products_are_paginated_with_decimal_string_prices(api, catalog):
    data = api.get("/api/v1/products/").json()
    assert set(data) == {"count", "next", "previous", "results"}
    assert data["count"] == len(catalog)
    laptop = next(p for p in data["results"] if p["sku"] == "LAPTOP-14")
    assert laptop == {
        "id": catalog["LAPTOP-14"].id,
        "sku": "LAPTOP-14",
        "name": "Laptop",
        "description": catalog["LAPTOP-14"].description,
        "price": "999.99",
        "currency": "EUR",
        "stock": catalog["LAPTOP-14"].stock,
    }


def test_create_returns_the_order_with_its_access_token(api, catalog):
    response = create(api)
    assert response.status_code == 201
    order = response.json()
    assert order["status"] == "placed"
    assert order["email"] == "grace@example.com"
    assert order["items"] == [
        {
            "sku": "LAPTOP-14",
            "name": "Laptop",
            "quantity": 1,
            "unit_price": "999.99",
            "line_total": "999.99",
        },
        {
            "sku": "MOUSE-01",
            "name": "Mouse",
            "quantity": 1,
            "unit_price": "29.99",
            "line_total": "29.99",
        },
    ]
    # The final totals, fixed at placement (prices include VAT by default: 1029.98 paid, of
    # which GB VAT 20 % = 1029.98 / 6 = 171.663 -> 171.66); subtotal and shipping are net and
    # add up to the total exactly, whatever the display setting.
    assert order["totals"] == {
        "subtotal": "858.32",
        "shipping": "0.00",
        "tax": "171.66",
        "total": "1029.98",
        "currency": "EUR",
    }
    assert order["invoice"] is None and order["shipment"] is None
    assert order["credit_notes"] == []
    assert order["timeline"][0]["type"] == "status_changed"
    assert order["timeline"][0]["detail"] == {"from": None, "to": "placed"}
    assert len(order["access_token"]) == 64
    assert Product.objects.get(sku="LAPTOP-14").stock == catalog["LAPTOP-14"].stock - 1


def test_create_with_net_prices_adds_the_tax_and_still_adds_up(api, catalog, settings):
    settings.PRICES_INCLUDE_TAX = False  # a B2B shop: catalog prices are net
    order = create(api).json()
    # 1029.98 net + 20 % GB VAT on the whole base, rounded once: 205.996 -> 206.00.
    assert order["totals"] == {
        "subtotal": "1029.98",
        "shipping": "0.00",
        "tax": "206.00",
        "total": "1235.98",
        "currency": "EUR",
    }


def test_same_key_and_body_return_the_same_order(api, catalog):
    first = create(api).json()
    again = create(api)
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first["id"]
    assert Order.objects.count() == 1
    assert OutboxEvent.objects.filter(type="order.placed").count() == 1
    assert Product.objects.get(sku="LAPTOP-14").stock == catalog["LAPTOP-14"].stock - 1


def test_same_key_with_another_body_is_a_conflict(api, catalog):
    create(api)
    other = copy.deepcopy(BODY)
    other["items"][0]["quantity"] = 2
    response = create(api, other)
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "field_path"),
    [
        (lambda b: b.update(email="not-an-email"), ["email"]),
        (lambda b: b["shipping_address"].update(country="XX"), ["shipping_address", "country"]),
        (lambda b: b["shipping_address"].pop("postal_code"), ["shipping_address", "postal_code"]),
        (lambda b: b["items"][0].update(sku="NOPE"), ["items", 0, "sku"]),
        (lambda b: b["items"][1].update(quantity=0), ["items", 1, "quantity"]),
        (lambda b: b["items"][1].update(quantity="two"), ["items", 1, "quantity"]),
        (lambda b: b.update(items=[]), ["items"]),
        (lambda b: b.update(payment_method="4242424242424242"), ["payment_method"]),
        (lambda b: b.pop("shipping_address"), ["shipping_address"]),
    ],
)
def test_invalid_input_is_a_400_naming_the_field(api, catalog, change, field_path):
    body = copy.deepcopy(BODY)
    change(body)
    response = create(api, body)
    assert response.status_code == 400, response.content
    node = response.json()
    for step in field_path:
        node = node[step]
    assert node  # the offending field carries its messages
    assert Order.objects.count() == 0


def test_malformed_json_is_a_400(api, catalog):
    response = api.post(
        "/api/v1/orders/", "{not json", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert response.status_code == 400
    assert "detail" in response.json()


def test_quantity_above_stock_is_a_409_and_reserves_nothing(api, catalog):
    body = copy.deepcopy(BODY)
    body["items"][1]["quantity"] = catalog["MOUSE-01"].stock + 1
    response = create(api, body)
    assert response.status_code == 409
    assert response.json()["code"] == "out_of_stock"
    assert response.json()["items"][0]["sku"] == "MOUSE-01"
    assert Product.objects.get(sku="LAPTOP-14").stock == catalog["LAPTOP-14"].stock
    assert Order.objects.count() == 0


def test_order_is_visible_with_its_token_and_404_for_anyone_else(api, catalog):
    mine = create(api, key="mine").json()
    other_body = copy.deepcopy(BODY)
    other_body["email"] = "someone@example.com"
    theirs = create(api, other_body, key="theirs").json()
    url = f"/api/v1/orders/{mine['id']}/"

    assert api.get(url, HTTP_X_ORDER_TOKEN=mine["access_token"]).status_code == 200
    assert api.get(url).status_code == 404
    assert api.get(url, HTTP_X_ORDER_TOKEN=theirs["access_token"]).status_code == 404
    assert api.get(url, HTTP_X_ORDER_TOKEN="0" * 64).status_code == 404
    assert api.get("/api/v1/orders/not-a-uuid/").status_code == 404


def test_the_invoice_pdf_is_protected_like_the_order(api, catalog, pipeline):
    mine = create(api, key="mine").json()
    other_body = copy.deepcopy(BODY)
    other_body["email"] = "someone@example.com"
    theirs = create(api, other_body, key="theirs").json()
    pipeline.drain()

    order = api.get(f"/api/v1/orders/{mine['id']}/", HTTP_X_ORDER_TOKEN=mine["access_token"]).json()
    pdf_url = order["invoice"]["pdf_url"]
    ok = api.get(pdf_url, HTTP_X_ORDER_TOKEN=mine["access_token"])
    assert ok.status_code == 200 and ok["Content-Type"] == "application/pdf"
    assert api.get(pdf_url, HTTP_X_ORDER_TOKEN=theirs["access_token"]).status_code == 404
    assert api.get(pdf_url).status_code == 404


def test_staff_and_the_owner_see_the_order(api, catalog, django_user_model):
    owner = django_user_model.objects.create_user("owner", "owner@example.com", "pw-123456!")
    staff = django_user_model.objects.create_user("staff", "s@example.com", "pw", is_staff=True)
    stranger = django_user_model.objects.create_user("x", "x@example.com", "pw")
    api.force_authenticate(owner)
    order = create(api).json()
    url = f"/api/v1/orders/{order['id']}/"
    assert api.get(url).status_code == 200
    api.force_authenticate(staff)
    assert api.get(url).status_code == 200
    api.force_authenticate(stranger)
    assert api.get(url).status_code == 404


def test_health_reports_each_dependency(api, db, sqs):
    response = api.get("/health/")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}


def test_health_is_503_when_the_broker_is_unreachable(api, db, sqs, settings):
    # Celery reads its configuration from Django settings (CELERY_ namespace) on each access.
    settings.CELERY_BROKER_URL = "sqs://test:test@127.0.0.1:9"
    response = api.get("/health/")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "error"
