"""Tests of the shipping partner simulator (plain pytest, no Django)."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from shipping.simulator import start_simulator

API_KEY = "test-partner-key"


@pytest.fixture
def sim():
    server = start_simulator(api_key=API_KEY, transit_seconds=0.3, delivery_seconds=0.6)
    yield server
    server.stop()


def _body(reference: str = "ord_1", postal_code: str = "10115") -> dict:
    return {
        "reference": reference,
        "recipient": {
            "name": "Ada Lovelace",
            "line1": "Unter den Linden 1",
            "line2": "",
            "city": "Berlin",
            "postal_code": postal_code,
            "country": "DE",
        },
        "parcel": {"weight_grams": 1200},
    }


def _create(sim, body: dict, key: str | None = None, api_key: str = API_KEY) -> requests.Response:
    headers = {"Authorization": f"Bearer {api_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return requests.post(f"{sim.url}/v1/shipments", json=body, headers=headers, timeout=5)


def _get(sim, shipment_id: str) -> requests.Response:
    return requests.get(
        f"{sim.url}/v1/shipments/{shipment_id}",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )


def test_create_shipment_and_idempotent_replay(sim):
    key = uuid.uuid4().hex
    first = _create(sim, _body(), key)
    assert first.status_code == 201, first.text
    shipment = first.json()
    assert shipment["id"].startswith("shp_")
    assert shipment["reference"] == "ord_1"
    assert shipment["carrier"] == "SimPost"
    assert shipment["status"] == "created"
    tracking = shipment["tracking_number"]
    assert tracking.startswith("SP") and len(tracking) == 14 and tracking[2:].isdigit()
    assert "Idempotent-Replayed" not in first.headers

    again = _create(sim, _body(), key)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == shipment["id"]
    assert again.json()["tracking_number"] == tracking

    [stored] = requests.get(f"{sim.url}/_sim/shipments", timeout=5).json()["shipments"]
    assert stored["id"] == shipment["id"]
    assert stored["create_calls"] == 2

    other = _create(sim, _body(), uuid.uuid4().hex)
    assert other.status_code == 201
    assert other.json()["id"] != shipment["id"]


def test_same_key_different_body_conflicts(sim):
    key = uuid.uuid4().hex
    assert _create(sim, _body("ord_1"), key).status_code == 201
    conflict = _create(sim, _body("ord_2"), key)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert len(sim.shipments()) == 1


def test_idempotency_key_is_required(sim):
    response = _create(sim, _body(), key=None)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert sim.shipments() == []


def test_validation_errors_name_fields(sim):
    body = _body()
    del body["recipient"]["city"]
    body["recipient"]["country"] = "Germany"
    response = _create(sim, body, uuid.uuid4().hex)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert set(error["fields"]) == {"recipient.city", "recipient.country"}

    malformed = requests.post(
        f"{sim.url}/v1/shipments",
        data=b"{not json",
        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "k"},
        timeout=5,
    )
    assert malformed.status_code == 400


def test_postal_code_00000_is_undeliverable(sim):
    response = _create(sim, _body(postal_code="00000"), uuid.uuid4().hex)
    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "code": "undeliverable",
            "message": "Address is undeliverable: postal code 00000",
        }
    }
    assert sim.shipments() == []


def test_api_key_is_required(sim):
    no_auth = requests.post(f"{sim.url}/v1/shipments", json=_body(), timeout=5)
    assert no_auth.status_code == 401
    assert no_auth.json()["error"]["code"] == "unauthorized"
    wrong = _create(sim, _body(), uuid.uuid4().hex, api_key="wrong")
    assert wrong.status_code == 401
    assert requests.get(f"{sim.url}/v1/shipments/shp_x", timeout=5).status_code == 401
    assert sim.shipments() == []


def test_status_progression_and_unknown_id(sim):
    shipment = _create(sim, _body(), uuid.uuid4().hex).json()
    assert _get(sim, shipment["id"]).json()["status"] == "created"
    time.sleep(0.35)
    assert _get(sim, shipment["id"]).json()["status"] == "in_transit"
    time.sleep(0.3)
    delivered = _get(sim, shipment["id"]).json()
    assert delivered["status"] == "delivered"
    assert [e["status"] for e in delivered["events"]] == ["created", "in_transit", "delivered"]

    missing = _get(sim, "shp_doesnotexist")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_fail_next_answers_503_without_creating(sim):
    config = requests.post(f"{sim.url}/_sim/config", json={"fail_next": 2}, timeout=5).json()
    assert config["fail_next"] == 2
    key = uuid.uuid4().hex
    assert _create(sim, _body(), key).status_code == 503
    assert _create(sim, _body(), key).status_code == 503
    assert sim.shipments() == []
    assert _create(sim, _body(), key).status_code == 201
    assert requests.get(f"{sim.url}/_sim/config", timeout=5).json()["fail_next"] == 0


def test_lose_next_drops_connection_but_creates_shipment(sim):
    requests.post(f"{sim.url}/_sim/config", json={"lose_next": 1}, timeout=5)
    key = uuid.uuid4().hex
    with pytest.raises(requests.ConnectionError):
        _create(sim, _body(), key)
    [stored] = sim.shipments()
    assert stored["create_calls"] == 1

    retry = _create(sim, _body(), key)
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == stored["id"]
    assert sim.shipments()[0]["create_calls"] == 2


def test_failure_rate_and_latency_config(sim):
    sim.configure(failure_rate=1.0)
    assert _create(sim, _body(), uuid.uuid4().hex).status_code == 503
    sim.configure(failure_rate=0.0, latency_ms=100)
    started = time.monotonic()
    assert _create(sim, _body(), uuid.uuid4().hex).status_code == 201
    assert time.monotonic() - started >= 0.1
    bad = requests.post(f"{sim.url}/_sim/config", json={"failure_rate": 2}, timeout=5)
    assert bad.status_code == 400


def test_reset_wipes_shipments_and_counters(sim):
    assert _create(sim, _body(), "k1").status_code == 201
    sim.configure(fail_next=3)
    assert requests.post(f"{sim.url}/_sim/reset", timeout=5).status_code == 200
    assert sim.shipments() == []
    assert requests.get(f"{sim.url}/_sim/config", timeout=5).json()["fail_next"] == 0
    assert requests.get(f"{sim.url}/_sim/health", timeout=5).json() == {"status": "ok"}
    # The key is forgotten too: a different body under it is a fresh shipment, not a 409.
    assert _create(sim, _body("ord_9"), "k1").status_code == 201
