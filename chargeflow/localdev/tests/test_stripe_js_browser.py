"""The emulator's Stripe.js in a real browser: authorize on the page with confirmCardPayment.

A tiny static page (served here) loads the fake Stripe.js from the wrapper, mounts the Card
Element and confirms a PaymentIntent the server created with the secret key, as a checkout page
does: publishable key and client secret only in the browser.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from chargeflow.localdev.stripe_server import start_stripe_server

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>checkout</title>
<script src="{js_url}"></script></head>
<body>
<div id="card"></div>
<script>
  const stripe = Stripe("pk_test_emulator");
  const card = stripe.elements().create("card");
  card.mount("#card");
  window.result = null;
  window.pay = function (clientSecret) {{
    window.result = null;
    stripe.confirmCardPayment(clientSecret, {{
      payment_method: {{card: card, billing_details: {{name: "Ada Lovelace"}}}},
    }}).then(r => {{ window.result = r; }});
  }};
</script>
</body></html>
"""


@pytest.fixture(scope="module")
def server():
    server = start_stripe_server(port=0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shop(server):
    """The checkout page, on its own origin (another port), like the storefront."""
    page = PAGE.format(js_url=server.js_url).encode()
    posts: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def do_POST(self):
            posts.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/", posts
    httpd.shutdown()


@pytest.fixture
def client(server):
    return stripe.StripeClient("sk_test_emulator", base_addresses={"api": server.url})


def new_intent(client, capture_method: str = "manual"):
    return client.v1.payment_intents.create(
        params={"amount": 102998, "currency": "eur", "capture_method": capture_method}
    )


def type_card(page, number: str) -> None:
    page.fill("#card input[placeholder=number]", number)
    page.fill("#card input[placeholder=exp_month]", "12")
    page.fill("#card input[placeholder=exp_year]", "34")
    page.fill("#card input[placeholder=cvc]", "123")
    page.fill("#card input[placeholder=postal_code]", "75001")


def pay(page, client_secret: str, *, then_click: str | None = None) -> dict:
    page.evaluate("secret => window.pay(secret)", client_secret)
    if then_click:
        page.get_by_role("button", name=then_click).click()
    page.wait_for_function("window.result !== null")
    return page.evaluate("window.result")


@pytest.fixture
def checkout(browser_page, shop):
    url, posts = shop
    browser_page.goto(url)
    browser_page.wait_for_selector("#card input[placeholder=number]")
    yield browser_page
    assert posts == []  # nothing (no card number) ever goes to the shop


def test_authorize_on_the_page(checkout, client):
    intent = new_intent(client)
    type_card(checkout, "4242 4242 4242 4242")
    result = pay(checkout, intent.client_secret)
    checkout.shot("authorized")
    assert "error" not in result
    assert result["paymentIntent"]["id"] == intent.id
    assert result["paymentIntent"]["status"] == "requires_capture"
    fresh = client.v1.payment_intents.retrieve(intent.id)
    assert fresh.status == "requires_capture"
    method = client.v1.payment_methods.retrieve(fresh.payment_method)
    assert method.card.last4 == "4242"
    assert method.billing_details["name"] == "Ada Lovelace"
    assert method.billing_details["address"]["postal_code"] == "75001"
    retrieved = checkout.evaluate(
        "secret => stripe.retrievePaymentIntent(secret)", intent.client_secret
    )
    assert retrieved["paymentIntent"]["status"] == "requires_capture"
    assert client.v1.payment_intents.capture(intent.id).status == "succeeded"


def test_automatic_capture_succeeds(checkout, client):
    intent = new_intent(client, "automatic")
    type_card(checkout, "4242424242424242")
    result = pay(checkout, intent.client_secret)
    assert result["paymentIntent"]["status"] == "succeeded"


def test_decline_then_another_card_on_the_same_intent(checkout, client):
    intent = new_intent(client)
    type_card(checkout, "4000 0000 0000 0341")
    declined = pay(checkout, intent.client_secret)
    checkout.shot("declined")
    error = declined["error"]
    assert error["type"] == "card_error"
    assert (error["code"], error["decline_code"]) == ("card_declined", "generic_decline")
    assert error["message"] == "Your card was declined."
    assert error["payment_intent"]["id"] == intent.id
    assert error["payment_intent"]["status"] == "requires_payment_method"

    type_card(checkout, "4242 4242 4242 4242")
    result = pay(checkout, intent.client_secret)
    assert result["paymentIntent"]["status"] == "requires_capture"
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_three_d_secure_completed_in_the_modal(checkout, client):
    intent = new_intent(client)
    type_card(checkout, "4000 0025 0000 3155")
    result = pay(checkout, intent.client_secret, then_click="Complete authentication")
    checkout.shot("authenticated")
    assert result["paymentIntent"]["status"] == "requires_capture"
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_three_d_secure_failed_then_another_card(checkout, client):
    intent = new_intent(client)
    type_card(checkout, "4000 0025 0000 3155")
    failed = pay(checkout, intent.client_secret, then_click="Fail authentication")
    error = failed["error"]
    assert error["code"] == "payment_intent_authentication_failure"
    assert error["payment_intent"]["status"] == "requires_payment_method"

    type_card(checkout, "4242 4242 4242 4242")
    result = pay(checkout, intent.client_secret)
    assert result["paymentIntent"]["status"] == "requires_capture"


def test_incomplete_card_and_wrong_secret(checkout, client):
    intent = new_intent(client)
    checkout.fill("#card input[placeholder=number]", "4242")
    incomplete = pay(checkout, intent.client_secret)
    assert incomplete["error"]["type"] == "validation_error"
    type_card(checkout, "4242424242424242")
    wrong = pay(checkout, intent.client_secret.rsplit("_", 1)[0] + "_wrongsecret")
    assert wrong["error"]["message"] == "Unauthorized"
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"
