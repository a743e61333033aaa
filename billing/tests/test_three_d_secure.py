"""3-D Secure on localstripe: card 4000002500003155 needs authentication; its fake Stripe.js
completes it with POST /v1/payment_intents/{id}/_authenticate (what confirmCardPayment does
after its confirm/cancel dialog). We make that same call here."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from billing import services
from billing.models import Payment
from billing.stripe_client import stripe_client
from billing.tests.helpers import card_payment_method, charge, events, intents_for, prepare

pytestmark = pytest.mark.django_db

THREE_DS_CARD = "4000002500003155"


def authenticate(server, payment: Payment, *, success: bool) -> None:
    intent = stripe_client().v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    response = requests.post(
        f"{server.url}/v1/payment_intents/{intent.id}/_authenticate",
        params={"success": "true" if success else "false"},
        json={"key": "pk_test", "client_secret": intent.client_secret},
        timeout=5,
    )
    assert response.status_code == 200, response.text


def action_required(order_id) -> tuple[Payment, dict]:
    payment = charge(order_id)
    assert payment.status == Payment.Status.ACTION_REQUIRED
    (event,) = events("payment.action_required", order_id)
    return payment, event.data


def test_requires_action_then_the_customer_completes_it(stripe_server, client):
    order_id = prepare(payment_method=card_payment_method(THREE_DS_CARD))
    payment, data = action_required(order_id)
    assert data["client_secret"].startswith(payment.stripe_payment_intent_id)
    assert payment.action_expires_at > timezone.now()

    page = client.get(data["action_url"].removeprefix("http://127.0.0.1:8000"))
    assert page.status_code == 200
    html = page.content.decode()
    assert data["client_secret"] in html and "/js.stripe.com/v3/" in html
    assert "confirmCardPayment" in html

    authenticate(stripe_server, payment, success=True)
    token = data["action_url"].rstrip("/").rsplit("/", 1)[-1]
    back = client.post(f"/billing/pay/{token}/return/")
    assert back.status_code == 302 and back["Location"] == f"/orders/{order_id}/"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert len(events("payment.succeeded", order_id)) == 1
    assert len(intents_for(order_id)) == 1


def test_failed_authentication_ends_in_payment_failed(stripe_server, client):
    order_id = prepare(payment_method=card_payment_method(THREE_DS_CARD))
    payment, _ = action_required(order_id)
    authenticate(stripe_server, payment, success=False)
    services.payment_sync(order_id=order_id)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED
    (failed,) = events("payment.failed", order_id)
    assert failed.data["code"] == "payment_intent_authentication_failure"


def test_an_unfinished_authentication_is_cancelled_after_the_timeout(stripe_server):
    order_id = prepare(payment_method=card_payment_method(THREE_DS_CARD))
    payment, _ = action_required(order_id)
    assert services.payment_actions_expire_due() == 0  # not due yet
    Payment.objects.filter(pk=payment.pk).update(
        action_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.payment_actions_expire_due() == 1
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == ("failed", "authentication_expired")
    (intent,) = intents_for(order_id)
    assert intent.status == "canceled"


def test_a_forged_action_link_is_404(client):
    assert client.get("/billing/pay/not-a-token/").status_code == 404
