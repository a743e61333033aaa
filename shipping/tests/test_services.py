"""Shipment creation and tracking through the real inbox delivery, against the simulator."""

from __future__ import annotations

import time
import uuid

import pytest
from django.utils import timezone

from conftest import GUEST_ADDRESS
from outbox.delivery import deliver
from outbox.models import FailedDelivery, OutboxEvent
from shipping import services
from shipping.handlers import SHIPMENT_CREATE_SUBSCRIBER
from shipping.models import Shipment
from shipping.tasks import poll_open_shipments

pytestmark = pytest.mark.django_db

ADDRESS = GUEST_ADDRESS  # the shared test address (conftest)


def prepared(postal_code: str = "N1 9GU") -> Shipment:
    return services.shipment_prepare(
        order_id=str(uuid.uuid4()),
        order_number="CF-000001",
        address={**ADDRESS, "postal_code": postal_code},
    )


def payment_succeeded(shipment: Shipment) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "payment.succeeded",
        "version": 1,
        "occurred_at": timezone.now().isoformat(),
        "aggregate_id": str(shipment.order_id),
        "correlation_id": str(uuid.uuid4()),
        "data": {"order_id": str(shipment.order_id), "amount": "10.00", "currency": "EUR"},
    }


def events(type_: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(type=type_))


def test_created_once_however_often_payment_succeeded_arrives(fast_partner):
    shipment = prepared()
    envelope = payment_succeeded(shipment)
    assert deliver(subscriber_name=SHIPMENT_CREATE_SUBSCRIBER, envelope=envelope)
    assert not deliver(subscriber_name=SHIPMENT_CREATE_SUBSCRIBER, envelope=envelope)
    services.shipment_create(order_id=str(shipment.order_id))  # a stray direct call too
    shipment.refresh_from_db()
    assert shipment.status == Shipment.Status.CREATED
    assert shipment.tracking_number
    assert len(fast_partner.shipments()) == 1
    [created] = events("shipment.created")
    assert created.data["tracking_number"] == shipment.tracking_number


def test_undeliverable_fails_at_once_with_the_reason(fast_partner):
    shipment = prepared(postal_code="00000")
    deliver(subscriber_name=SHIPMENT_CREATE_SUBSCRIBER, envelope=payment_succeeded(shipment))
    shipment.refresh_from_db()
    assert shipment.status == Shipment.Status.FAILED
    assert "undeliverable" in shipment.failure_reason
    [failed] = events("shipment.failed")
    assert failed.data["code"] == "undeliverable"
    assert "00000" in failed.data["reason"]


def test_transient_failure_retries_the_delivery_then_fails_the_shipment(
    fast_partner, client_settings, settings
):
    client_settings(SHIPPING_PARTNER_RETRIES=1)
    settings.SHIPPING_CREATE_MAX_ATTEMPTS = 3
    fast_partner.configure(failure_rate=1.0)
    shipment = prepared()
    envelope = payment_succeeded(shipment)
    for attempt in (1, 2):  # the outbox numbers the deliveries (Event.attempt)
        with pytest.raises(Exception, match="503"):
            deliver(subscriber_name=SHIPMENT_CREATE_SUBSCRIBER, envelope=envelope, attempt=attempt)
        shipment.refresh_from_db()
        assert shipment.status == Shipment.Status.CREATING  # the intent is committed
        assert shipment.attempts == attempt and "503" in shipment.last_error
        failure = FailedDelivery.objects.get(subscriber=SHIPMENT_CREATE_SUBSCRIBER)
        assert failure.attempts == attempt
        assert "503" in failure.last_error
        assert events("shipment.failed") == []
    assert deliver(subscriber_name=SHIPMENT_CREATE_SUBSCRIBER, envelope=envelope, attempt=3)
    shipment.refresh_from_db()
    assert shipment.status == Shipment.Status.FAILED
    assert shipment.attempts == 3
    assert shipment.failure_reason.startswith("shipping partner unavailable")
    [failed] = events("shipment.failed")
    assert failed.data["code"] == "server_error"
    assert FailedDelivery.objects.get().resolved_at is not None
    assert fast_partner.shipments() == []


def test_transient_failure_then_recovery_ships_once(fast_partner, client_settings):
    client_settings(SHIPPING_PARTNER_RETRIES=1)
    fast_partner.configure(fail_next=2, lose_next=1)  # the whole first delivery fails
    shipment = prepared()
    envelope = payment_succeeded(shipment)
    with pytest.raises(Exception, match="503"):
        deliver(subscriber_name=SHIPMENT_CREATE_SUBSCRIBER, envelope=envelope, attempt=1)
    assert deliver(subscriber_name=SHIPMENT_CREATE_SUBSCRIBER, envelope=envelope, attempt=2)
    shipment.refresh_from_db()
    assert shipment.status == Shipment.Status.CREATED
    assert shipment.attempts == 2
    [stored] = fast_partner.shipments()
    assert stored["create_calls"] == 2  # lost answer, then replayed
    assert len(events("shipment.created")) == 1


def test_wrong_api_key_never_fails_the_shipment(fast_partner, client_settings, settings):
    client_settings(SHIPPING_PARTNER_API_KEY="expired-key")
    settings.SHIPPING_CREATE_MAX_ATTEMPTS = 1
    shipment = prepared()
    with pytest.raises(Exception, match="credentials"):
        deliver(subscriber_name=SHIPMENT_CREATE_SUBSCRIBER, envelope=payment_succeeded(shipment))
    shipment.refresh_from_db()
    assert shipment.status == Shipment.Status.CREATING  # no refund for our own mistake
    assert "credentials" in FailedDelivery.objects.get().last_error


def test_polling_follows_the_shipment_to_delivered(fast_partner):
    fast_partner.configure(transit_seconds=0.1, delivery_seconds=0.3)
    shipment = prepared()
    services.shipment_create(order_id=str(shipment.order_id))
    assert poll_open_shipments() == 1
    shipment.refresh_from_db()
    assert shipment.status == Shipment.Status.CREATED
    time.sleep(0.15)
    poll_open_shipments()
    shipment.refresh_from_db()
    assert shipment.status == Shipment.Status.IN_TRANSIT
    time.sleep(0.2)
    poll_open_shipments()
    shipment.refresh_from_db()
    assert shipment.status == Shipment.Status.DELIVERED
    assert shipment.delivered_at and shipment.last_polled_at
    assert poll_open_shipments() == 0  # closed: not polled any more
    [delivered] = events("shipment.delivered")
    assert delivered.data["tracking_number"] == shipment.tracking_number


def test_polling_survives_one_broken_shipment(fast_partner):
    fast_partner.configure(transit_seconds=0, delivery_seconds=0)
    broken = prepared()
    services.shipment_create(order_id=str(broken.order_id))
    Shipment.objects.filter(pk=broken.pk).update(partner_shipment_id="shp_unknown")
    good = prepared()
    services.shipment_create(order_id=str(good.order_id))
    assert poll_open_shipments() == 1
    good.refresh_from_db()
    broken.refresh_from_db()
    assert good.status == Shipment.Status.DELIVERED
    assert broken.status == Shipment.Status.CREATED


def test_a_cancelled_order_cancels_its_waiting_shipment_and_never_ships(fast_partner):
    shipment = prepared()
    cancelled = {
        **payment_succeeded(shipment),
        "type": "order.cancelled",
        "data": {"order_id": str(shipment.order_id), "reason": "payment failed"},
    }
    assert deliver(subscriber_name="shipping.on_order_cancelled", envelope=cancelled)
    shipment.refresh_from_db()
    assert shipment.status == Shipment.Status.CANCELLED
    assert shipment.failure_reason == "payment failed"
    # A payment.succeeded arriving after all (out of order) creates nothing at the partner.
    assert deliver(subscriber_name=SHIPMENT_CREATE_SUBSCRIBER, envelope=payment_succeeded(shipment))
    shipment.refresh_from_db()
    assert shipment.status == Shipment.Status.CANCELLED
    assert fast_partner.shipments() == []
    assert events("shipment.created") == []


def test_cancelling_leaves_a_shipment_the_partner_has(fast_partner):
    shipment = prepared()
    deliver(subscriber_name=SHIPMENT_CREATE_SUBSCRIBER, envelope=payment_succeeded(shipment))
    services.shipment_cancel(order_id=str(shipment.order_id), reason="late")
    shipment.refresh_from_db()
    assert shipment.status == Shipment.Status.CREATED
