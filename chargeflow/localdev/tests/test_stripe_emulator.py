"""The Stripe emulator where the money path depends on it: idempotency, the customer filter,
confirm with a payment method, manual capture, and webhooks. Against the real wrapper process,
with the stripe SDK configured as billing/stripe_client.py configures it."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from chargeflow.localdev.stripe_server import start_stripe_server
from conftest import wait_until


@pytest.fixture(scope="module")
def server():
    server = start_stripe_server(port=0)
    yield server
    server.stop()


def client_for(server) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_emulator",
        base_addresses={"api": server.url},
        max_network_retries=2,
        http_client=stripe.RequestsClient(timeout=10),
    )


@pytest.fixture
def client(server) -> stripe.StripeClient:
    return client_for(server)


@pytest.fixture
def customer(client):
    return client.v1.customers.create(params={"email": "ada@example.com"})


def raw_post(server, path: str, fields: dict[str, str], key: str) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=urllib.parse.urlencode(fields).encode(),
        headers={"Authorization": "Bearer sk_test_emulator", "Idempotency-Key": key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def intents_of(client, customer_id: str) -> list:
    return client.v1.payment_intents.list(params={"customer": customer_id, "limit": 100}).data


# --- 1. Idempotency-Key -----------------------------------------------------------------------


def test_same_key_same_parameters_answers_the_first_answer_without_doing_it_again(client, customer):
    params = {"amount": 1234, "currency": "eur", "customer": customer.id}
    options = {"idempotency_key": "test:create-once"}
    first = client.v1.payment_intents.create(params=params, options=options)
    again = client.v1.payment_intents.create(params=params, options=options)
    assert again.id == first.id
    assert again.client_secret == first.client_secret
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert [i.id for i in intents_of(client, customer.id)] == [first.id]


def test_same_key_other_parameters_is_an_idempotency_error(client, customer):
    options = {"idempotency_key": "test:other-params"}
    client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "eur", "customer": customer.id}, options=options
    )
    with pytest.raises(stripe.IdempotencyError) as excinfo:
        client.v1.payment_intents.create(
            params={"amount": 2000, "currency": "eur", "customer": customer.id}, options=options
        )
    assert excinfo.value.http_status == 400
    assert excinfo.value.error.type == "idempotency_error"
    assert excinfo.value.user_message.startswith(
        "Keys for idempotent requests can only be used with the same parameters they were "
        "first used with."
    )
    with pytest.raises(stripe.IdempotencyError, match="same endpoint"):
        client.v1.customers.create(params={"email": "x@example.com"}, options=options)
    assert len(intents_of(client, customer.id)) == 1


def test_a_decline_is_replayed_not_charged_again(client, customer):
    params = {
        "amount": 5000,
        "currency": "eur",
        "customer": customer.id,
        "payment_method": "pm_card_chargeCustomerFail",
        "confirm": True,
    }
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as excinfo:
            client.v1.payment_intents.create(
                params=params, options={"idempotency_key": "test:declined"}
            )
        errors.append(excinfo.value)
    assert [e.http_status for e in errors] == [402, 402]
    assert errors[0].json_body == errors[1].json_body
    assert errors[1].headers["Idempotent-Replayed"] == "true"
    [intent] = intents_of(client, customer.id)
    assert errors[0].error.payment_intent["id"] == intent.id
    charges = client.v1.charges.list(params={"customer": customer.id}).data
    assert len(charges) == 1 and charges[0].status == "failed"


def test_a_validation_failure_is_not_saved(server):
    # Nothing ran (unknown customer: 404), so, as at Stripe, the key stays free.
    status, body, _ = raw_post(
        server,
        "/v1/payment_intents",
        {"amount": "100", "currency": "eur", "customer": "cus_doesnotexist"},
        "test:not-saved",
    )
    assert status == 404
    status, body, headers = raw_post(
        server, "/v1/payment_intents", {"amount": "100", "currency": "eur"}, "test:not-saved"
    )
    assert status == 200 and body["object"] == "payment_intent"
    assert "Idempotent-Replayed" not in headers


def test_concurrent_duplicates_run_once(server, client, customer):
    params = {
        "amount": "777",
        "currency": "eur",
        "customer": customer.id,
        "payment_method": "pm_card_visa",
        "confirm": "true",
    }
    barrier = threading.Barrier(6)
    answers: list[tuple[int, dict, dict]] = []

    def post() -> None:
        barrier.wait()
        answers.append(raw_post(server, "/v1/payment_intents", params, "test:concurrent"))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert [status for status, _, _ in answers] == [200] * 6
    assert len({body["id"] for _, body, _ in answers}) == 1
    assert sum(h.get("Idempotent-Replayed") == "true" for _, _, h in answers) == 5
    [intent] = intents_of(client, customer.id)
    assert intent.status == "succeeded"
    assert len(client.v1.charges.list(params={"customer": customer.id}).data) == 1


def test_keys_are_kept_in_the_state_file(tmp_path):
    state = tmp_path / "stripe.pickle"
    params = {"email": "kept@example.com"}
    options = {"idempotency_key": "test:persisted"}
    first = start_stripe_server(port=0, state_file=state)
    try:
        created = client_for(first).v1.customers.create(params=params, options=options)
    finally:
        first.stop()
    second = start_stripe_server(port=0, state_file=state)
    try:
        again = client_for(second).v1.customers.create(params=params, options=options)
        assert again.id == created.id
        assert again.last_response.headers["Idempotent-Replayed"] == "true"
        assert len(client_for(second).v1.customers.list().data) == 1
        second.flush()  # DELETE /_config/data wipes the keys with the objects
        fresh = client_for(second).v1.customers.create(params=params, options=options)
        assert fresh.id != created.id
    finally:
        second.stop()


# --- 2. The customer filter -------------------------------------------------------------------


def test_payment_intents_list_filters_by_customer(client, customer):
    other = client.v1.customers.create(params={"email": "bob@example.com"})
    mine = client.v1.payment_intents.create(
        params={"amount": 100, "currency": "eur", "customer": customer.id}
    )
    client.v1.payment_intents.create(
        params={"amount": 200, "currency": "eur", "customer": other.id}
    )
    client.v1.payment_intents.create(params={"amount": 300, "currency": "eur"})
    assert [i.id for i in intents_of(client, customer.id)] == [mine.id]
    assert len(client.v1.payment_intents.list(params={"limit": 100}).data) >= 3
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.list(params={"customer": "nope"})


# --- 3. Confirm with a payment method (server side) ------------------------------------------


def test_confirm_with_a_payment_method_and_again_after_a_decline(client, customer):
    intent = client.v1.payment_intents.create(
        params={
            "amount": 4200,
            "currency": "eur",
            "customer": customer.id,
            "capture_method": "manual",
        }
    )
    assert intent.status == "requires_payment_method"
    with pytest.raises(stripe.InvalidRequestError, match="missing a payment method"):
        client.v1.payment_intents.confirm(intent.id)

    with pytest.raises(stripe.CardError) as excinfo:
        client.v1.payment_intents.confirm(
            intent.id, params={"payment_method": "pm_card_chargeCustomerFail"}
        )
    error = excinfo.value.error
    assert (error.type, error.code, error.decline_code) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    assert error.payment_intent["status"] == "requires_payment_method"
    declined = client.v1.payment_intents.retrieve(intent.id)
    assert declined.status == "requires_payment_method"
    assert declined.payment_method is None
    assert declined.last_payment_error.decline_code == "generic_decline"
    assert declined.last_payment_error.payment_method["card"]["last4"] == "0341"

    authorized = client.v1.payment_intents.confirm(
        intent.id, params={"payment_method": "pm_card_visa"}
    )
    assert authorized.status == "requires_capture"
    assert authorized.amount_capturable == 4200
    assert authorized.last_payment_error is None


@pytest.mark.parametrize(
    ("number", "code", "decline_code"),
    [
        ("4000000000000002", "card_declined", "generic_decline"),
        ("4000000000009995", "card_declined", "insufficient_funds"),
        ("4000000000000069", "expired_card", "expired_card"),
    ],
)
def test_stripe_decline_cards_are_declined(client, number, code, decline_code):
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    with pytest.raises(stripe.CardError) as excinfo:
        client.v1.payment_intents.create(
            params={"amount": 100, "currency": "eur", "payment_method": method.id, "confirm": True}
        )
    assert (excinfo.value.code, excinfo.value.error.decline_code) == (code, decline_code)


def test_three_d_secure_card_asks_for_action_on_confirm(client):
    intent = client.v1.payment_intents.create(
        params={"amount": 900, "currency": "eur", "capture_method": "manual"}
    )
    intent = client.v1.payment_intents.confirm(
        intent.id, params={"payment_method": "pm_card_threeDSecure2Required"}
    )
    assert intent.status == "requires_action"
    assert intent.next_action.type == "use_stripe_sdk"


# --- 4. Manual capture ------------------------------------------------------------------------


def test_manual_capture_then_refund(client, customer):
    intent = client.v1.payment_intents.create(
        params={
            "amount": 102998,
            "currency": "eur",
            "customer": customer.id,
            "capture_method": "manual",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    assert intent.status == "requires_capture"
    assert (intent.amount_capturable, intent.amount_received) == (102998, 0)
    assert intent.latest_charge.captured is False

    captured = client.v1.payment_intents.capture(intent.id)
    assert captured.status == "succeeded"
    assert (captured.amount_capturable, captured.amount_received) == (0, 102998)
    assert captured.latest_charge.captured is True

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.payment_intents.capture(intent.id)
    assert excinfo.value.http_status == 400
    assert excinfo.value.code == "payment_intent_unexpected_state"
    assert excinfo.value.user_message.startswith(
        "This PaymentIntent could not be captured because it has a status of succeeded"
    )
    with pytest.raises(stripe.InvalidRequestError, match="cannot cancel this PaymentIntent"):
        client.v1.payment_intents.cancel(intent.id)

    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 2998})
    assert (refund.status, refund.amount) == ("succeeded", 2998)


def test_refunds_never_exceed_the_charge(client):
    intent = client.v1.payment_intents.create(
        params={
            "amount": 3000,
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    partial = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1000})
    assert partial.amount == 1000
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 2001})
    assert excinfo.value.code == "amount_too_large"
    rest = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert rest.amount == 2000  # what is left, not the whole charge again
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.refunds.create(params={"payment_intent": intent.id})
    assert excinfo.value.code == "charge_already_refunded"


def test_an_uncaptured_or_cancelled_authorization_cannot_be_refunded(client):
    intent = client.v1.payment_intents.create(
        params={
            "amount": 3000,
            "currency": "eur",
            "capture_method": "manual",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    with pytest.raises(stripe.InvalidRequestError, match="does not have a successful charge"):
        client.v1.refunds.create(params={"payment_intent": intent.id})
    client.v1.payment_intents.cancel(intent.id)
    with pytest.raises(stripe.InvalidRequestError, match="does not have a successful charge"):
        client.v1.refunds.create(params={"payment_intent": intent.id})


def test_partial_capture(client):
    intent = client.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "eur",
            "capture_method": "manual",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    captured = client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 4000})
    assert (captured.status, captured.amount_received) == ("succeeded", 4000)
    assert captured.latest_charge.amount_refunded == 1000  # the uncaptured part, released
    refund = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert refund.amount == 4000


def test_cancel_releases_the_authorization(client):
    intent = client.v1.payment_intents.create(
        params={
            "amount": 5000,
            "currency": "eur",
            "capture_method": "manual",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    canceled = client.v1.payment_intents.cancel(
        intent.id, params={"cancellation_reason": "abandoned"}
    )
    assert canceled.status == "canceled"
    assert canceled.cancellation_reason == "abandoned"
    assert canceled.latest_charge.refunded is True
    assert canceled.amount_capturable == 0
    with pytest.raises(stripe.InvalidRequestError, match="status of canceled"):
        client.v1.payment_intents.capture(intent.id)


class _Sink(BaseHTTPRequestHandler):
    events: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).events.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhooks_of_a_manual_capture(client, server):
    _Sink.events = []
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    name = "manual-capture-test"
    server.register_webhook(f"http://127.0.0.1:{sink.server_port}/", "whsec_test", name=name)
    try:
        captured = client.v1.payment_intents.create(
            params={
                "amount": 700,
                "currency": "eur",
                "capture_method": "manual",
                "payment_method": "pm_card_visa",
                "confirm": True,
            }
        )
        client.v1.payment_intents.capture(captured.id)
        canceled = client.v1.payment_intents.create(
            params={
                "amount": 800,
                "currency": "eur",
                "capture_method": "manual",
                "payment_method": "pm_card_visa",
                "confirm": True,
            }
        )
        client.v1.payment_intents.cancel(canceled.id)

        def seen():
            return {
                (e["type"], e["data"]["object"]["id"], e["data"]["object"].get("status"))
                for e in _Sink.events
            }

        expected = {
            ("payment_intent.amount_capturable_updated", captured.id, "requires_capture"),
            ("payment_intent.succeeded", captured.id, "succeeded"),
            ("payment_intent.amount_capturable_updated", canceled.id, "requires_capture"),
            ("payment_intent.canceled", canceled.id, "canceled"),
        }
        wait_until(lambda: expected <= seen(), timeout=10, message=f"webhooks: {seen()}")
    finally:
        # Unregister: point it at an event type that never happens.
        server.register_webhook(
            f"http://127.0.0.1:{sink.server_port}/", "whsec_test", ["none.never"], name=name
        )
        sink.shutdown()


# --- 6. The store's indexes (issue 11: no cost that grows with the objects stored) ------------


def paid_intent(client, amount: int):
    return client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "eur",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )


def test_a_charges_refunds_and_the_lists_are_the_stores_objects_of_that_kind(tmp_path):
    state = tmp_path / "stripe.pickle"
    first = start_stripe_server(port=0, state_file=state)
    try:
        client = client_for(first)
        refunded, other = paid_intent(client, 3000), paid_intent(client, 500)
        client.v1.refunds.create(params={"payment_intent": refunded.id, "amount": 1000})
        client.v1.refunds.create(params={"payment_intent": refunded.id, "amount": 500})
        charge = client.v1.charges.retrieve(refunded.latest_charge.id)
        assert (charge.amount_refunded, charge.refunded) == (1500, False)
        assert sorted(r.amount for r in charge.refunds.data) == [500, 1000]
        assert client.v1.charges.retrieve(other.latest_charge.id).amount_refunded == 0
        assert len(client.v1.refunds.list().data) == 2
        assert {c.id for c in client.v1.charges.list().data} == {
            refunded.latest_charge.id,
            other.latest_charge.id,
        }
        ids = [pi.id for pi in client.v1.payment_intents.list().data]
        assert ids == [refunded.id, other.id]  # localstripe's order: oldest first
    finally:
        first.stop()
    second = start_stripe_server(port=0, state_file=state)  # the indexes are rebuilt on load
    try:
        client = client_for(second)
        assert client.v1.charges.retrieve(refunded.latest_charge.id).amount_refunded == 1500
        with pytest.raises(stripe.InvalidRequestError) as excinfo:
            client.v1.refunds.create(params={"payment_intent": refunded.id, "amount": 1501})
        assert excinfo.value.code == "amount_too_large"
        assert len(client.v1.payment_intents.list().data) == 2
        second.flush()
        assert client.v1.payment_intents.list().data == []
        assert client.v1.refunds.list().data == []
        again = paid_intent(client, 700)
        client.v1.refunds.create(params={"payment_intent": again.id})
        assert client.v1.charges.retrieve(again.latest_charge.id).refunded is True
    finally:
        second.stop()


def test_the_state_file_is_written_soon_after_a_change_while_running(tmp_path):
    import pickle

    state = tmp_path / "stripe.pickle"
    server = start_stripe_server(port=0, state_file=state)
    try:
        created = client_for(server).v1.customers.create(params={"email": "soon@example.com"})

        def saved() -> bool:
            if not state.exists():
                return False
            with open(state, "rb") as f:
                return f"customer:{created.id}" in pickle.load(f)

        wait_until(saved, timeout=5, message="the customer in the state file")
    finally:
        server.stop()
