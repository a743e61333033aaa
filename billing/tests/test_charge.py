"""Charging against localstripe: happy path, decline, amount check, crash recovery."""

import pytest

from billing import services
from billing.models import Payment, StripeCustomer
from billing.stripe_client import stripe_client
from billing.tests.helpers import TOTALS, charge, events, intents_for, minor, prepare

pytestmark = pytest.mark.django_db


def test_happy_path_charges_the_invoice_total_once(stripe_server):
    order_id = prepare()
    payment = charge(order_id)
    assert payment.status == Payment.Status.SUCCEEDED
    (intent,) = intents_for(order_id)
    assert intent.amount == minor(TOTALS["total"]) == payment.amount_minor
    assert intent.status == "succeeded" and intent.id == payment.stripe_payment_intent_id
    assert intent.customer == payment.customer.stripe_id
    (succeeded,) = events("payment.succeeded", order_id)
    assert succeeded.data["amount"] == TOTALS["total"]
    # A second invoice.issued (another event id) charges nothing more.
    charge(order_id)
    assert len(intents_for(order_id)) == 1 and len(events("payment.succeeded", order_id)) == 1


def test_the_stripe_customer_is_reused_per_email(stripe_server):
    charge(prepare(email="grace@example.com"))
    charge(prepare(email="grace@example.com"))
    assert StripeCustomer.objects.filter(email="grace@example.com").count() == 1
    found = stripe_client().v1.customers.list(params={"email": "grace@example.com"})
    assert len(found.data) == 1


def test_a_declined_card_ends_in_payment_failed_with_the_reason(stripe_server):
    order_id = prepare(payment_method="pm_card_chargeCustomerFail")
    payment = charge(order_id)
    assert payment.status == Payment.Status.FAILED
    (failed,) = events("payment.failed", order_id)
    assert failed.data["code"] == payment.failure_code != ""
    assert "declined" in failed.data["message"].lower()
    assert len(intents_for(order_id)) == 1


def test_an_invoice_that_does_not_match_the_order_is_refused_without_charging(stripe_server):
    order_id = prepare()
    wrong = {**TOTALS, "subtotal": "1000.00", "total": "1211.99"}
    payment = charge(order_id, wrong)
    assert (payment.status, payment.failure_code) == (Payment.Status.FAILED, "amount_mismatch")
    assert intents_for(order_id) == []
    assert events("payment.failed", order_id)
    # Totals that do not add up are refused too.
    other = prepare()
    charge(other, {**TOTALS, "tax": "211.98"})
    assert Payment.objects.get(order_id=other).failure_code == "amount_mismatch"


def test_the_charge_must_be_the_total_the_order_was_placed_with(stripe_server):
    """The order fixed its total at checkout (order.placed): an invoice with another total, even
    one that adds up and has the same subtotal, is refused and nothing is charged."""
    order_id = prepare()
    assert Payment.objects.get(order_id=order_id).expected_total_minor == minor(TOTALS["total"])
    other_tax = {**TOTALS, "shipping": "4.90", "tax": "212.97", "total": "1277.84"}
    payment = charge(order_id, other_tax)
    assert (payment.status, payment.failure_code) == (Payment.Status.FAILED, "amount_mismatch")
    assert intents_for(order_id) == []
    # An order.placed from before totals were fixed: the subtotal check alone still applies.
    legacy = prepare(totals=None)
    assert Payment.objects.get(order_id=legacy).expected_total_minor is None
    assert charge(legacy, other_tax).status == Payment.Status.SUCCEEDED


def test_invoice_before_order_placed_is_retried_not_lost(stripe_server):
    with pytest.raises(services.PaymentNotReady):
        charge("7c9e6679-7425-40de-944b-e07fc1f90ae7")


@pytest.mark.parametrize("crash_in", ["_apply_intent", "confirm"])
def test_a_crash_after_the_stripe_call_resumes_from_the_recorded_step(
    stripe_server, monkeypatch, settings, crash_in
):
    """The worker dies after Stripe answered (before the answer was recorded), or between
    creating the intent and confirming it. The step was committed before the call; the retry
    makes the same calls with the same keys and Stripe answers with what it did the first time:
    one intent, one charge, one payment.succeeded."""
    order_id = prepare()
    real_apply = services._apply_intent
    real_confirm = stripe_client().v1.payment_intents.confirm

    def crash(*args, **kwargs):
        raise ConnectionError("worker killed")

    if crash_in == "confirm":
        monkeypatch.setattr(stripe_client().v1.payment_intents, "confirm", crash)
    else:
        monkeypatch.setattr(services, "_apply_intent", crash)
    with pytest.raises(ConnectionError):
        charge(order_id)
    payment = Payment.objects.get(order_id=order_id)
    assert (payment.status, payment.step) == (Payment.Status.PENDING, "charge")
    assert len(intents_for(order_id)) == 1
    # While the step's lease runs, a duplicate leaves it to the worker that holds it.
    with pytest.raises(services.StepInFlight):
        charge(order_id)
    settings.BILLING_STEP_LEASE_SECONDS = 0  # the lease ran out: the worker is gone

    monkeypatch.setattr(services, "_apply_intent", real_apply)
    monkeypatch.setattr(stripe_client().v1.payment_intents, "confirm", real_confirm)
    payment = charge(order_id)
    (intent,) = intents_for(order_id)
    assert payment.status == Payment.Status.SUCCEEDED and payment.step == ""
    assert payment.stripe_payment_intent_id == intent.id and intent.status == "succeeded"
    assert payment.attempts == 1
    assert len(events("payment.succeeded", order_id)) == 1
