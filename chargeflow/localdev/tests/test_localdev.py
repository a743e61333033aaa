"""Tests of the local stand-ins for Stripe and the email service (plain pytest, no Django)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest
import stripe

from chargeflow.localdev.smtp_sink import read_mailbox, start_smtp_sink
from chargeflow.localdev.stripe_server import start_stripe_server


@pytest.fixture(scope="module")
def stripe_server():
    server = start_stripe_server(port=0)
    yield server
    server.stop()


@pytest.fixture
def stripe_client(stripe_server):
    previous = stripe.api_base, stripe.api_key
    stripe.api_base = stripe_server.url
    stripe.api_key = "sk_test_12345"
    yield stripe
    stripe.api_base, stripe.api_key = previous


def test_stripe_server_listens_on_loopback_free_port(stripe_server):
    assert stripe_server.url.startswith("http://127.0.0.1:")
    assert stripe_server.port > 0
    assert stripe_server.process.poll() is None


def test_payment_intent_succeeds(stripe_client):
    customer = stripe_client.Customer.create(email="ada@example.com")
    intent = stripe_client.PaymentIntent.create(
        amount=102998,
        currency="eur",
        customer=customer.id,
        payment_method="pm_card_visa",
        confirm=True,
        metadata={"order_id": "42"},
    )
    assert intent.status == "succeeded"
    assert intent.metadata["order_id"] == "42"
    refund = stripe_client.Refund.create(payment_intent=intent.id)
    assert refund.status == "succeeded"
    assert refund.amount == 102998


def test_payment_intent_declined(stripe_client):
    with pytest.raises(stripe.CardError) as excinfo:
        stripe_client.PaymentIntent.create(
            amount=1000,
            currency="eur",
            payment_method="pm_card_chargeCustomerFail",
            confirm=True,
        )
    assert excinfo.value.code == "card_declined"


def test_instances_do_not_share_state(stripe_client, stripe_server):
    stripe_client.Customer.create(email="only-in-first@example.com")
    other = start_stripe_server(port=0)
    try:
        assert other.port != stripe_server.port
        customers = stripe_client.Customer.list(email="only-in-first@example.com")
        assert [c.email for c in customers.data] == ["only-in-first@example.com"]
        stripe_client.api_base = other.url
        assert stripe_client.Customer.list().data == []
    finally:
        stripe_client.api_base = stripe_server.url
        other.stop()
    assert other.process.returncode == 0


def test_smtp_sink_stores_messages(tmp_path):
    mailbox = tmp_path / "mailbox"
    sink = start_smtp_sink(mailbox)
    try:
        assert sink.port > 0
        message = EmailMessage()
        message["From"] = "shop@example.com"
        message["To"] = "ada@example.com"
        message["Subject"] = "Your order CF-1001 — thank you"
        message.set_content("Grüße, your order is confirmed.\n")
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.send_message(message, to_addrs=["ada@example.com", "audit@example.com"])
            client.send_message(message, to_addrs=["ada@example.com"])
    finally:
        sink.stop()

    files = sorted(p.name for p in mailbox.iterdir())
    assert len(files) == 2
    assert all(name.endswith(".eml") and not name.startswith(".") for name in files)
    messages = read_mailbox(mailbox)
    assert len(messages) == 2
    first = messages[0]
    assert first["Subject"] == "Your order CF-1001 — thank you"
    assert first["To"] == "ada@example.com"
    assert first["X-Envelope-To"] == "ada@example.com, audit@example.com"
    assert first.get_content() == "Grüße, your order is confirmed.\n"
    assert read_mailbox(tmp_path / "does-not-exist") == []
