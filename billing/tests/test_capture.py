"""Authorize on the checkout page, capture in the pipeline (against the Stripe emulator)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from billing import services
from billing.checkout import (
    AuthorizationError,
    authorization_check,
    authorization_open,
    authorization_release,
)
from billing.models import Payment
from billing.stripe_client import stripe_client
from billing.tests.helpers import ITEMS, TOTALS, events, intent_event, minor, signed_webhook

pytestmark = pytest.mark.django_db

TOTAL = Decimal(TOTALS["total"])


def authorized(order_id: str, *, amount: Decimal = TOTAL, card: str = "pm_card_visa") -> str:
    """What the checkout page does: open the intent, then Stripe.js confirms it with the card."""
    auth = authorization_open(
        order_id=order_id, order_number="CF-TEST", amount=amount, currency="EUR"
    )
    assert auth.client_secret.startswith(auth.payment_intent)
    stripe_client().v1.payment_intents.confirm(auth.payment_intent, params={"payment_method": card})
    return auth.payment_intent


def prepare_authorized(order_id: str, intent_id: str) -> Payment:
    return services.payment_prepare(
        order_id=order_id,
        order_number="CF-TEST",
        email="ada@example.com",
        currency="EUR",
        items=ITEMS,
        totals=TOTALS,
        payment_intent=intent_id,
    )


def collect(order_id: str) -> Payment:
    return services.payment_charge(
        order_id=order_id, invoice_number="2026-000001", totals=TOTALS, currency="EUR"
    )


def test_the_authorization_is_captured_once_for_the_exact_total(stripe_server):
    order_id = str(uuid.uuid4())
    intent_id = authorized(order_id)
    payment = prepare_authorized(order_id, intent_id)
    assert (payment.kind, payment.status) == (Payment.Kind.AUTHORIZED, Payment.Status.AUTHORIZED)
    assert stripe_client().v1.payment_intents.retrieve(intent_id).status == "requires_capture"

    payment = collect(order_id)
    assert payment.status == Payment.Status.SUCCEEDED and payment.step == ""
    intent = stripe_client().v1.payment_intents.retrieve(intent_id)
    assert intent.status == "succeeded" and intent.amount_received == minor(TOTALS["total"])
    (succeeded,) = events("payment.succeeded", order_id)
    assert succeeded.data["amount"] == TOTALS["total"] and succeeded.data["captured"] is True
    collect(order_id)  # invoice.issued again: nothing more
    assert len(events("payment.succeeded", order_id)) == 1


def test_a_crash_after_the_capture_resumes_and_captures_once(stripe_server, monkeypatch, settings):
    order_id = str(uuid.uuid4())
    prepare_authorized(order_id, authorized(order_id))

    def crash(*args, **kwargs):
        raise ConnectionError("worker killed after Stripe captured")

    real = services._apply_intent
    monkeypatch.setattr(services, "_apply_intent", crash)
    with pytest.raises(ConnectionError):
        collect(order_id)
    assert Payment.objects.get(order_id=order_id).step == "capture"
    monkeypatch.setattr(services, "_apply_intent", real)
    settings.BILLING_STEP_LEASE_SECONDS = 0
    payment = collect(order_id)  # the same capture key: Stripe answers with the first capture
    assert payment.status == Payment.Status.SUCCEEDED
    assert len(events("payment.succeeded", order_id)) == 1


def test_an_authorization_that_cannot_be_captured_any_more_fails_the_payment(stripe_server):
    order_id = str(uuid.uuid4())
    intent_id = authorized(order_id)
    prepare_authorized(order_id, intent_id)
    stripe_client().v1.payment_intents.cancel(intent_id)  # expired / voided at the bank
    payment = collect(order_id)
    assert (payment.status, payment.failure_code) == (
        Payment.Status.FAILED,
        "authorization_canceled",
    )
    (failed,) = events("payment.failed", order_id)
    assert "authorization" in failed.data["message"]


def test_a_cancelled_order_releases_the_authorization_instead_of_refunding(stripe_server):
    order_id = str(uuid.uuid4())
    intent_id = authorized(order_id)
    prepare_authorized(order_id, intent_id)
    with pytest.raises(services.RefundError, match="never charged"):
        services.refund_create(order_id=order_id, source="admin:x", reason="changed my mind")
    payment = services.payment_release(order_id=order_id, reason="cancelled by the shop")
    assert payment.status == Payment.Status.RELEASED
    assert stripe_client().v1.payment_intents.retrieve(intent_id).status == "canceled"
    (released,) = events("payment.released", order_id)
    assert released.data["amount"] == TOTALS["total"]
    services.payment_release(order_id=order_id, reason="again")  # a redelivery: nothing more
    assert len(events("payment.released", order_id)) == 1
    assert not events("refund.succeeded", order_id)


def test_a_failed_payment_has_nothing_to_release(stripe_server):
    order_id = str(uuid.uuid4())
    intent_id = authorized(order_id)
    prepare_authorized(order_id, intent_id)
    stripe_client().v1.payment_intents.cancel(intent_id)
    collect(order_id)
    assert services.payment_release(order_id=order_id, reason="x").status == Payment.Status.FAILED
    assert not events("payment.released", order_id)


def test_authorization_check_says_why_an_intent_cannot_pay(stripe_server):
    order_id = str(uuid.uuid4())
    intent_id = authorized(order_id)
    found = authorization_check(
        payment_intent=intent_id, amount=TOTAL, currency="EUR", order_id=order_id
    )
    assert found.authorized and found.amount == TOTAL
    cases = {
        "amount_mismatch": dict(payment_intent=intent_id, amount=TOTAL - Decimal("0.01")),
        "payment_intent_mismatch": dict(payment_intent=intent_id, order_id=str(uuid.uuid4())),
        "unknown_payment_intent": dict(payment_intent="pi_doesnotexist"),
        "invalid_payment_intent": dict(payment_intent="not-an-intent"),
    }
    for code, kwargs in cases.items():
        with pytest.raises(AuthorizationError) as err:
            authorization_check(**{"amount": TOTAL, "currency": "EUR", **kwargs})
        assert err.value.code == code and err.value.status == 402
    unconfirmed = authorization_open(
        order_id=str(uuid.uuid4()), order_number="CF-X", amount=TOTAL, currency="EUR"
    )
    with pytest.raises(AuthorizationError) as err:
        authorization_check(payment_intent=unconfirmed.payment_intent, amount=TOTAL, currency="EUR")
    assert err.value.code == "payment_not_authorized"
    assert authorization_release(payment_intent=unconfirmed.payment_intent).status == "canceled"


def test_opening_twice_for_the_same_order_and_amount_gives_the_same_intent(stripe_server):
    order_id = str(uuid.uuid4())
    first = authorization_open(order_id=order_id, order_number="CF-X", amount=TOTAL, currency="EUR")
    again = authorization_open(order_id=order_id, order_number="CF-X", amount=TOTAL, currency="EUR")
    other = authorization_open(
        order_id=order_id, order_number="CF-X", amount=TOTAL + 1, currency="EUR"
    )
    assert first.payment_intent == again.payment_intent != other.payment_intent


def test_the_webhook_reports_an_authorized_checkout_whose_order_was_never_placed(
    stripe_server, client
):
    order_id = str(uuid.uuid4())
    intent = stripe_client().v1.payment_intents.retrieve(authorized(order_id))
    body, signature = signed_webhook(
        intent_event(intent, "payment_intent.amount_capturable_updated")
    )
    response = client.post(
        "/billing/stripe/webhook/",
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    )
    assert response.status_code == 200
    (reported,) = events("payment.authorized", order_id)
    assert reported.data["payment_intent"] == intent.id
    assert reported.data["amount"] == TOTALS["total"]
