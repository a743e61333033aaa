"""Through every app in-process (the `pipeline` fixture): the order API sees the invoice, the
payment, partial and full refunds and their credit notes. Only HTTP: billing imports no app."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from billing.tests.helpers import intents_for
from conftest import place_order

pytestmark = pytest.mark.django_db


def order_of(created: dict) -> dict:
    return (
        APIClient()
        .get(f"/api/v1/orders/{created['id']}/", HTTP_X_ORDER_TOKEN=created["access_token"])
        .json()
    )


def test_paid_then_partially_and_fully_refunded_with_credit_notes(catalog, pipeline):
    created = place_order("billing-pm_card_visa")
    pipeline.drain(duplicate=True)
    order = order_of(created)
    assert order["payment"]["status"] == "succeeded"
    assert order["invoice"]["number"]
    (intent,) = intents_for(created["id"])
    assert intent.amount == int(order["totals"]["total"].replace(".", ""))

    staff = APIClient()
    staff.force_authenticate(get_user_model().objects.create_user("s", is_staff=True))
    url = f"/api/v1/orders/{created['id']}/refunds/"
    partial = staff.post(url, {"amount": "10.00", "reason": "Scratch"}, HTTP_IDEMPOTENCY_KEY="a")
    assert partial.status_code == 201, partial.content
    pipeline.drain(duplicate=True)
    assert [n["amount"] for n in order_of(created)["credit_notes"]] == ["10.00"]

    assert staff.post(url, {"reason": "Returned"}, HTTP_IDEMPOTENCY_KEY="b").status_code == 201
    pipeline.drain(duplicate=True)
    order = order_of(created)
    notes = sorted(order["credit_notes"], key=lambda n: n["number"])
    assert [n["number"][-6:] for n in notes] == ["000001", "000002"]
    assert sum(Decimal(n["amount"]) for n in notes) == Decimal(order["totals"]["total"])
    assert all(n["number"].startswith("CN-") for n in notes)
    assert order["payment"]["status"] == "refunded"
    pdf = APIClient().get(notes[0]["pdf_url"], HTTP_X_ORDER_TOKEN=created["access_token"])
    assert pdf.status_code == 200


def test_declined_order_is_cancelled_with_a_credit_note(catalog, pipeline):
    created = place_order("billing-declined", payment_method="pm_card_chargeCustomerFail")
    pipeline.drain(duplicate=True)
    order = order_of(created)
    assert order["status"] == "cancelled"
    assert order["payment"]["status"] == "failed"
    (note,) = order["credit_notes"]
    assert note["amount"] == order["totals"]["total"]
