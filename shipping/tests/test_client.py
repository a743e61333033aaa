"""The partner client against the simulator's faults (real HTTP, no mocks)."""

from __future__ import annotations

import time
import uuid

import pytest

from conftest import GUEST_ADDRESS, free_port
from shipping import client

RECIPIENT = GUEST_ADDRESS  # the shared test address (conftest)


def create(key: str | None = None, **recipient):
    return client.create_shipment(
        reference="order-1",
        recipient={**RECIPIENT, **recipient},
        idempotency_key=key or uuid.uuid4().hex,
    )


def counters(partner) -> dict:
    return partner.state.get_counters()


def test_503_twice_then_success_makes_one_shipment(fast_partner):
    fast_partner.configure(fail_next=2)
    shipment = create()
    [stored] = fast_partner.shipments()
    assert stored["id"] == shipment.id
    assert shipment.tracking_number == stored["tracking_number"]
    assert counters(fast_partner)["injected_failures"] == 2


def test_lost_response_is_retried_with_the_same_key(fast_partner):
    fast_partner.configure(lose_next=1)
    shipment = create()
    [stored] = fast_partner.shipments()
    assert stored["id"] == shipment.id
    assert stored["create_calls"] == 2  # created, answer lost, replayed
    assert counters(fast_partner)["lost_responses"] == 1


def test_read_timeout_is_retried_and_never_duplicates(fast_partner, client_settings):
    client_settings(SHIPPING_PARTNER_READ_TIMEOUT=0.1, SHIPPING_PARTNER_RETRIES=2)
    fast_partner.configure(latency_ms=300)
    key = uuid.uuid4().hex
    with pytest.raises(client.PartnerError) as info:
        create(key)
    assert not info.value.permanent
    assert info.value.code == "unreachable"
    time.sleep(0.35)  # the partner finishes the requests we gave up on
    fast_partner.configure(latency_ms=0)
    shipment = create(key)  # the next delivery: same key, same shipment
    [stored] = fast_partner.shipments()
    assert stored["id"] == shipment.id
    assert stored["create_calls"] == 4  # three timed-out tries and the last one, one shipment


def test_undeliverable_address_is_permanent(fast_partner):
    with pytest.raises(client.PartnerError) as info:
        create(postal_code="00000")
    assert info.value.permanent
    assert info.value.code == "undeliverable"
    assert "undeliverable" in str(info.value)
    assert fast_partner.shipments() == []


def test_retries_exhausted_is_transient(fast_partner, client_settings):
    client_settings(SHIPPING_PARTNER_RETRIES=3)
    fast_partner.configure(failure_rate=1.0)
    with pytest.raises(client.PartnerError) as info:
        create()
    assert not info.value.permanent and not info.value.misconfigured
    assert info.value.code == "server_error"
    assert counters(fast_partner)["injected_failures"] == 4  # the call and 3 retries
    assert fast_partner.shipments() == []


def test_wrong_api_key_is_a_configuration_error(fast_partner, client_settings):
    client_settings(SHIPPING_PARTNER_API_KEY="wrong-key")
    with pytest.raises(client.PartnerError) as info:
        create()
    assert info.value.misconfigured and not info.value.permanent
    assert fast_partner.shipments() == []


def test_partner_down_is_transient(fast_partner, client_settings):
    client_settings(SHIPPING_PARTNER_URL=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(client.PartnerError) as info:
        create()
    assert not info.value.permanent
    assert info.value.code == "unreachable"
    assert time.monotonic() - started < 5


def test_get_shipment_follows_the_partner_status(fast_partner):
    fast_partner.configure(transit_seconds=0.1, delivery_seconds=0.2)
    shipment = create()
    assert client.get_shipment(shipment.id).status == "created"
    time.sleep(0.25)
    assert client.get_shipment(shipment.id).status == "delivered"
    with pytest.raises(client.PartnerError) as info:
        client.get_shipment("shp_missing")
    assert info.value.permanent and info.value.code == "not_found"


def test_bearer_key_and_idempotency_key_are_sent(fast_partner):
    key = uuid.uuid4().hex
    create(key)
    [stored] = fast_partner.shipments()
    assert stored["idempotency_key"] == key
