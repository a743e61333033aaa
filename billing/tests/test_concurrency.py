"""The same invoice.issued delivered twice at once, on PostgreSQL: one PaymentIntent."""

import threading

import pytest
from django.db import connection

from billing.models import Payment
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
    assert sorted(results) == [False, True]  # the inbox let one through
    assert len(intents_for(order_id)) == 1
    assert Payment.objects.get(order_id=order_id).status == Payment.Status.SUCCEEDED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_events_for_the_same_invoice_concurrently_charge_once(stripe_server):
    """Different event ids (the inbox cannot help): the locked Payment row serialises them."""
    order_id = prepare()
    results = run_together(invoice_issued_envelope(order_id), invoice_issued_envelope(order_id))
    assert results == [True, True]
    assert len(intents_for(order_id)) == 1
    assert len(events("payment.succeeded", order_id)) == 1
