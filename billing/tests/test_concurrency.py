"""The same invoice.issued delivered twice at once, on PostgreSQL: one PaymentIntent."""

import threading

import pytest
from django.db import connection

from billing.models import Payment
from billing.services import StepInFlight
from billing.tests.helpers import events, intents_for, invoice_issued_envelope, prepare
from outbox.delivery import deliver


def run_together(*envelopes) -> list:
    barrier = threading.Barrier(len(envelopes))
    results: list = []

    def work(envelope):
        try:
            barrier.wait()
            results.append(deliver(subscriber_name="billing.on_invoice_issued", envelope=envelope))
        except BaseException as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(e,)) for e in envelopes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_twice_concurrently_charges_once(stripe_server):
    order_id = prepare()
    envelope = invoice_issued_envelope(order_id)
    results = run_together(envelope, dict(envelope))
    # One made the Stripe calls; the other found them in flight (or done) and did nothing.
    assert True in results
    assert all(r in (True, False) or isinstance(r, StepInFlight) for r in results), results
    assert len(intents_for(order_id)) == 1
    assert Payment.objects.get(order_id=order_id).status == Payment.Status.SUCCEEDED
    # Its retry finds the event handled.
    assert deliver(subscriber_name="billing.on_invoice_issued", envelope=envelope) is False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_events_for_the_same_invoice_concurrently_charge_once(stripe_server):
    """Different event ids (the inbox cannot help): the step recorded under the Payment row's
    lock lets one worker call Stripe; the other is retried and finds the payment collected."""
    order_id = prepare()
    envelopes = [invoice_issued_envelope(order_id), invoice_issued_envelope(order_id)]
    results = run_together(*envelopes)
    assert True in results
    assert all(r is True or isinstance(r, StepInFlight) for r in results), results
    for envelope in envelopes:  # the retries
        deliver(subscriber_name="billing.on_invoice_issued", envelope=envelope)
    assert len(intents_for(order_id)) == 1
    assert len(events("payment.succeeded", order_id)) == 1
