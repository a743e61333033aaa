"""End to end: real relay and worker processes, SQS emulator, localstripe, partner simulator, SMTP
sink and the test database. An order placed through the API travels the whole pipeline."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from billing.stripe_client import stripe_client
from conftest import place_order, wait_until
from orders.models import Order, Product

pytestmark = pytest.mark.e2e


def status_of(order_id) -> str:
    return Order.objects.values_list("status", flat=True).get(pk=order_id)


def test_order_reaches_shipped_through_real_workers(live_stack, catalog, stripe_server, mailbox):
    live_stack.start("relay")
    live_stack.start("worker")
    created = place_order("e2e-happy")

    wait_until(
        lambda: status_of(created["id"]) == "shipped", timeout=90, message="order to be shipped"
    )
    order = (
        APIClient()
        .get(f"/api/v1/orders/{created['id']}/", HTTP_X_ORDER_TOKEN=created["access_token"])
        .json()
    )
    assert order["payment"] == {"status": "succeeded"}
    assert order["shipment"]["tracking_number"]
    assert order["invoice"]["number"]
    transitions = [e["detail"]["to"] for e in order["timeline"] if e["type"] == "status_changed"]
    assert transitions == ["placed", "invoiced", "paid", "shipped"]

    # One PaymentIntent on localstripe, for the invoice total (all pages: the emulator is shared
    # by the whole session and holds the intents of earlier tests).
    intents = [
        pi
        for pi in stripe_client().v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
        if pi.metadata.get("order_id") == created["id"]
    ]
    assert len(intents) == 1
    assert intents[0].amount == int(order["totals"]["total"].replace(".", ""))
    assert intents[0].status == "succeeded"

    # One PDF, served to the token holder.
    pdf = APIClient().get(order["invoice"]["pdf_url"], HTTP_X_ORDER_TOKEN=created["access_token"])
    assert pdf.status_code == 200
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")

    # One email per step, to the customer's address.
    kinds = {"order_confirmation", "invoice_issued", "payment_received", "shipped"}
    wait_until(lambda: len(mailbox.messages()) >= len(kinds), timeout=30, message="four emails")
    messages = mailbox.messages()
    assert len(messages) == len(kinds)
    assert {m["To"] for m in messages} == {"ada@example.com"}
    assert sum(1 for m in messages if list(m.iter_attachments())) == 1


def test_declined_and_undeliverable_orders_end_in_a_terminal_status(live_stack, catalog, mailbox):
    live_stack.start("relay")
    live_stack.start("worker")
    client = APIClient()
    declined = place_order("e2e-declined", payment_method="pm_card_chargeCustomerFail")
    undeliverable = place_order("e2e-undeliverable", postal_code="00000")

    wait_until(
        lambda: status_of(declined["id"]) == "cancelled"
        and status_of(undeliverable["id"]) == "refunded",
        timeout=120,
        message="cancelled and refunded",
    )
    stock = {p.sku: p.stock for p in Product.objects.all()}
    assert stock["LAPTOP-14"] == catalog["LAPTOP-14"].stock  # both reservations released
    assert stock["MOUSE-01"] == catalog["MOUSE-01"].stock
    for created in (declined, undeliverable):
        order = client.get(
            f"/api/v1/orders/{created['id']}/", HTTP_X_ORDER_TOKEN=created["access_token"]
        ).json()
        wait_until(
            lambda o=created: Order.objects.get(pk=o["id"]).credit_notes.exists(),
            timeout=30,
            message="a credit note",
        )
    order = client.get(
        f"/api/v1/orders/{undeliverable['id']}/", HTTP_X_ORDER_TOKEN=undeliverable["access_token"]
    ).json()
    assert order["payment"] == {"status": "refunded"}
