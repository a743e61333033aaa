"""Refunds: partial then full, idempotent per source and per Idempotency-Key, over-refund
refused, staff-only API, crash recovery."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from billing import services
from billing.models import Payment, Refund
from billing.stripe_client import stripe_client
from billing.tests.helpers import TOTALS, charge, events, minor, prepare

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    client = APIClient()
    user = get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    client.force_authenticate(user)
    return client


def stripe_refunds(payment: Payment) -> list:
    return (
        stripe_client()
        .v1.refunds.list(params={"payment_intent": payment.stripe_payment_intent_id, "limit": 100})
        .data
    )


def refund(client, order_id, key, **body):
    return client.post(
        f"/api/v1/orders/{order_id}/refunds/", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )


def test_partial_then_full_refund_through_the_api(stripe_server, staff):
    order_id = prepare()
    payment = charge(order_id)

    first = refund(staff, order_id, "r-1", amount="100.00", reason="Scratched lid")
    assert first.status_code == 201, first.content
    assert first.json()["amount"] == "100.00"
    assert first.json()["payment"] == {
        "status": "partially_refunded",
        "refunded": "100.00",
        "refundable": "1171.96",
    }
    again = refund(staff, order_id, "r-1", amount="100.00", reason="Scratched lid")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert refund(staff, order_id, "r-1", amount="5.00", reason="x").status_code == 409

    rest = refund(staff, order_id, "r-2", reason="Returned")
    assert rest.status_code == 201 and rest.json()["amount"] == "1171.96"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert payment.refunded_minor == payment.amount_minor == minor(TOTALS["total"])
    assert sorted(r.amount for r in stripe_refunds(payment)) == [10000, 117196]
    published = events("refund.succeeded", order_id)
    assert [(e.data["amount"], e.data["full"]) for e in published] == [
        ("100.00", False),
        ("1171.96", True),
    ]


def test_over_refund_is_refused_with_a_clear_error(stripe_server, staff):
    order_id = prepare()
    payment = charge(order_id)
    response = refund(staff, order_id, "r-big", amount="1271.97", reason="Too much")
    assert response.status_code == 400
    assert response.json()["code"] == "over_refund"
    assert "exceeds what is left to refund (1271.96 EUR)" in response.json()["detail"]
    assert stripe_refunds(payment) == [] and not Refund.objects.exists()
    refund(staff, order_id, "r-all", reason="All")
    after = refund(staff, order_id, "r-more", amount="0.01", reason="More")
    assert after.status_code == 400 and after.json()["code"] == "not_refundable"


def test_refunds_are_for_staff_only(stripe_server):
    order_id = prepare()
    charge(order_id)
    anonymous = refund(APIClient(), order_id, "k", reason="x")
    assert anonymous.status_code in (401, 403)
    assert refund(APIClient(), order_id, "", reason="x").status_code in (401, 403)


def test_missing_idempotency_key_is_400(stripe_server, staff):
    order_id = prepare()
    charge(order_id)
    assert refund(staff, order_id, "", reason="x").status_code == 400


def test_a_crash_after_the_stripe_refund_refunds_once_after_retry(stripe_server, monkeypatch):
    """The pending refund is committed before Stripe is called; the worker dies after Stripe
    refunded, before recording it. The retry calls again with the same key: one refund."""
    order_id = prepare()
    payment = charge(order_id)
    real = services._refund_record

    def crash(*args, **kwargs):
        raise ConnectionError("worker killed before commit")

    monkeypatch.setattr(services, "_refund_record", crash)
    with pytest.raises(ConnectionError):
        services.refund_create(order_id=order_id, source="shipment_failed", reason="Lost")
    assert len(stripe_refunds(payment)) == 1
    pending = Refund.objects.get()
    assert pending.status == Refund.Status.PENDING
    # The amount in flight is reserved: nothing more can be refunded meanwhile.
    with pytest.raises(services.RefundError):
        services.refund_create(order_id=order_id, source="admin:x", reason="x", amount="1.00")
    monkeypatch.setattr(services, "_refund_record", real)
    done, created = services.refund_create(
        order_id=order_id, source="shipment_failed", reason="Lost"
    )
    assert not created and done.pk == pending.pk and done.amount_minor == payment.amount_minor
    assert done.status == Refund.Status.SUCCEEDED
    assert len(stripe_refunds(payment)) == 1
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.REFUNDED
    assert len(events("refund.succeeded", order_id)) == 1


def test_admin_refund_action_partial(stripe_server, admin_client):
    order_id = prepare()
    payment = charge(order_id)
    url = "/admin/billing/payment/"
    form = admin_client.post(url, {"action": "refund", "_selected_action": [payment.pk]})
    assert form.status_code == 200 and b"Refund" in form.content
    token = form.context["form"].initial["token"]
    data = {
        "action": "refund",
        "_selected_action": [payment.pk],
        "apply": "1",
        "amount": "10.00",
        "reason": "Goodwill",
        "token": token,
    }
    admin_client.post(url, data)
    admin_client.post(url, data)  # submitted twice: refunded once
    payment.refresh_from_db()
    assert payment.refunded_minor == 1000
    assert payment.status == Payment.Status.PARTIALLY_REFUNDED
    assert Refund.objects.get().amount_minor == 1000
    assert Decimal(events("refund.succeeded", order_id)[0].data["amount"]) == Decimal("10.00")
