"""The Stripe webhook: signature, deduplication, late and out-of-order events, and completing a
payment whose worker transaction was lost."""

import pytest

from billing import services
from billing.models import Payment, StripeEvent
from billing.stripe_client import stripe_client
from billing.tests.helpers import (
    TOTALS,
    charge,
    events,
    intent_event,
    intents_for,
    minor,
    prepare,
    signed_webhook,
)
from conftest import wait_until

pytestmark = pytest.mark.django_db
URL = "/billing/stripe/webhook/"


def post(client, event: dict, *, secret: str | None = None, signature: str | None = None):
    body, header = signed_webhook(event, secret)
    headers = {} if signature == "" else {"HTTP_STRIPE_SIGNATURE": signature or header}
    return client.post(URL, body, content_type="application/json", **headers)


def intent_created_at_stripe_only(order_id: str):
    """What a worker leaves behind when it dies after confirming, before its commit."""
    payment = Payment.objects.get(order_id=order_id)
    client = stripe_client()
    intent = client.v1.payment_intents.create(
        params={
            "amount": minor(TOTALS["total"]),
            "currency": "eur",
            "customer": services.customer_ensure(email=payment.email).stripe_id,
            "payment_method": payment.payment_method,
            "metadata": {"order_id": order_id},
        }
    )
    return client.v1.payment_intents.confirm(intent.id)


@pytest.mark.parametrize("signature", ["", "t=1,v1=deadbeef", "wrong-secret"])
def test_a_bad_or_missing_signature_is_400_and_changes_nothing(stripe_server, client, signature):
    order_id = prepare()
    intent = intent_created_at_stripe_only(order_id)
    event = intent_event(intent, "payment_intent.succeeded")
    if signature == "wrong-secret":
        response = post(client, event, secret="whsec_other")
    else:
        response = post(client, event, signature=signature)
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    assert Payment.objects.get(order_id=order_id).status == Payment.Status.PENDING


def test_the_webhook_completes_a_payment_whose_worker_died_and_the_retry_adds_nothing(
    stripe_server, client
):
    order_id = prepare()
    intent = intent_created_at_stripe_only(order_id)
    assert post(client, intent_event(intent, "payment_intent.succeeded")).status_code == 200
    payment = Payment.objects.get(order_id=order_id)
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_payment_intent_id == intent.id
    assert payment.amount_minor == minor(TOTALS["total"])
    # The worker's retry of invoice.issued: no second intent, no second event.
    charge(order_id)
    assert len(intents_for(order_id)) == 1
    assert len(events("payment.succeeded", order_id)) == 1


def test_replayed_and_out_of_order_events_change_nothing(stripe_server, client):
    order_id = prepare()
    payment = charge(order_id)
    intent = stripe_client().v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    succeeded = intent_event(intent, "payment_intent.succeeded", "evt_replayed_1")
    # A stale "failed" and "requires_action" arrive after success, then success is replayed.
    stale_failed = intent_event(
        {**intent, "status": "requires_payment_method"}, "payment_intent.payment_failed"
    )
    for event in (succeeded, stale_failed, succeeded, succeeded):
        assert post(client, event).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert StripeEvent.objects.filter(event_id="evt_replayed_1").count() == 1
    assert StripeEvent.objects.count() == 2
    assert len(events("payment.succeeded", order_id)) == 1
    assert events("payment.failed", order_id) == []


def test_a_late_failure_event_reads_the_current_state_from_stripe(stripe_server, client):
    """payment_failed arrives before our worker recorded anything: the state is read back."""
    order_id = prepare(payment_method="pm_card_chargeCustomerFail")
    payment = Payment.objects.get(order_id=order_id)
    client_ = stripe_client()
    intent = client_.v1.payment_intents.create(
        params={
            "amount": 100,
            "currency": "eur",
            "customer": services.customer_ensure(email=payment.email).stripe_id,
            "payment_method": payment.payment_method,
            "metadata": {"order_id": order_id},
        }
    )
    with pytest.raises(Exception):  # noqa: B017 (localstripe answers the decline with a 402)
        client_.v1.payment_intents.confirm(intent.id)
    assert post(client, intent_event(intent, "payment_intent.payment_failed")).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED and "declined" in payment.failure_message


@pytest.mark.django_db(transaction=True)
def test_localstripe_signs_webhooks_our_endpoint_accepts(stripe_server, live_server):
    """localstripe's own delivery (~1 s after the event), to a live server."""
    stripe_server.register_webhook(
        f"{live_server.url}{URL}",
        "whsec_chargeflow_local",
        ["payment_intent.succeeded"],
        name="billing-test",
    )
    try:
        order_id = prepare()
        intent = intent_created_at_stripe_only(order_id)
        wait_until(
            lambda: StripeEvent.objects.filter(
                object_id=intent.id, processed_at__isnull=False
            ).exists(),
            timeout=10,
            message="localstripe's webhook",
        )
        assert Payment.objects.get(order_id=order_id).status == Payment.Status.SUCCEEDED
    finally:
        stripe_server.register_webhook("http://127.0.0.1:9/", "x", ["none"], name="billing-test")
