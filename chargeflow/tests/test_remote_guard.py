"""The guard that keeps "no transaction open during a remote call" true (chargeflow.remote_guard).

Each test makes a real call to a real local component (the partner simulator over `requests`,
the SMTP sink over smtplib, moto's SQS over botocore) inside `transaction.atomic()`: the guard
must stop it before anything is sent. The same call outside a transaction goes through.
"""

from __future__ import annotations

import smtplib
import uuid

import pytest
import requests
from django.db import transaction
from django.utils import timezone

from chargeflow import remote_guard
from chargeflow.remote_guard import RemoteCallInTransaction
from outbox.delivery import deliver

pytestmark = pytest.mark.django_db


def test_the_guard_is_on_for_the_whole_suite():
    assert remote_guard.installed()


def test_http_inside_atomic_raises_and_is_recorded(partner):
    url = f"{partner.url}/v1/shipments/shp_none"
    with transaction.atomic(), pytest.raises(RemoteCallInTransaction, match="HTTP GET"):
        requests.get(url, timeout=5)
    [violation] = remote_guard.take_violations()  # (else this test would fail at teardown)
    assert "/v1/shipments/shp_none" in violation
    assert partner.shipments() == []
    # Outside any transaction of ours (the test case's own atomic block does not count):
    assert requests.get(url, timeout=5).status_code in (401, 404)


def test_a_call_on_a_pooled_connection_is_caught_too(partner):
    """`connect` runs once per pooled connection; the guard hooks every request."""
    session = requests.Session()
    assert session.get(f"{partner.url}/v1/shipments/x", timeout=5).status_code in (401, 404)
    with transaction.atomic(), pytest.raises(RemoteCallInTransaction):
        session.get(f"{partner.url}/v1/shipments/x", timeout=5)
    assert remote_guard.take_violations()


def test_smtp_inside_atomic_raises(mailbox):
    with transaction.atomic(), pytest.raises(RemoteCallInTransaction, match="SMTP connect"):
        smtplib.SMTP(mailbox.host, mailbox.port, timeout=5)
    assert remote_guard.take_violations()
    assert mailbox.messages() == []
    with smtplib.SMTP(mailbox.host, mailbox.port, timeout=5) as smtp:  # outside: fine
        smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: ok\r\n\r\nok")
    assert len(mailbox.messages()) == 1


def test_botocore_inside_atomic_is_recorded_even_when_swallowed(sqs):
    """botocore wraps any error of its HTTP layer: the guard's exception does not reach the
    caller as itself, but the violation is remembered and fails the test at teardown."""
    with transaction.atomic(), pytest.raises(Exception):  # noqa: B017
        sqs.client.list_queues()
    [violation, *_] = remote_guard.take_violations()
    assert "HTTP POST" in violation


def test_nested_inside_a_savepoint_is_caught(partner):
    with transaction.atomic(), transaction.atomic(), pytest.raises(RemoteCallInTransaction):
        requests.get(f"{partner.url}/v1/shipments/x", timeout=5)
    assert remote_guard.take_violations()


def test_the_inbox_transaction_is_durable_no_caller_can_widen_it():
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "shipment.delivered",
        "version": 1,
        "occurred_at": timezone.now().isoformat(),
        "aggregate_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
        "data": {},
    }
    with transaction.atomic(), pytest.raises(RuntimeError, match="durable"):
        deliver(subscriber_name="orders.on_shipment_delivered", envelope=envelope)
