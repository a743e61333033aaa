"""Failure paths end in a terminal, explained state: money and stock reconciled, one email per step.

The in-process pipeline (real inbox, real handlers) against the real local components: localstripe,
the partner simulator and the SMTP sink. `pipeline.drain(duplicate=True)` delivers every event
twice, as SQS may.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import stripe
from rest_framework.test import APIClient

from billing.stripe_client import stripe_client
from conftest import free_port, place_order
from orders.models import Order, Product
from orders.services import orders_flag_stuck
from outbox.delivery import deliver
from outbox.models import FailedDelivery, OutboxEvent
from outbox.registry import subscribers_for
from shipping.client import PartnerError, partner_session
from shipping.models import Shipment
from shipping.tasks import poll_open_shipments

pytestmark = pytest.mark.django_db


@pytest.fixture
def fast_partner(settings, partner):
    settings.SHIPPING_PARTNER_BACKOFF_FACTOR = 0.01
    settings.SHIPPING_PARTNER_BACKOFF_MAX = 0.05
    partner_session.cache_clear()
    yield partner
    partner_session.cache_clear()


def fetch(created: dict) -> dict:
    response = APIClient().get(
        f"/api/v1/orders/{created['id']}/", HTTP_X_ORDER_TOKEN=created["access_token"]
    )
    assert response.status_code == 200
    return response.json()


def stock() -> dict[str, int]:
    return dict(Product.objects.values_list("sku", "stock"))


def emails(mailbox) -> Counter:
    return Counter(m["X-ChargeFlow-Kind"] for m in mailbox.messages())


def timeline_emails(order: dict) -> Counter:
    return Counter(e["detail"]["kind"] for e in order["timeline"] if e["type"] == "email_sent")


def transitions(order: dict) -> list[str]:
    return [e["detail"]["to"] for e in order["timeline"] if e["type"] == "status_changed"]


def stripe_refunds(order_id: str) -> list:
    return [
        r
        # every page: the session's emulator holds the refunds of earlier tests
        for r in stripe_client().v1.refunds.list(params={"limit": 100}).auto_paging_iter()
        if (r.metadata or {}).get("order_id") == order_id
    ]


def test_payment_failed_cancels_releases_stock_and_credits(pipeline, catalog, mailbox):
    before = stock()
    created = place_order("comp-declined", payment_method="pm_card_chargeCustomerFail")
    assert stock() != before  # reserved at checkout
    pipeline.drain(duplicate=True)

    order = fetch(created)
    assert order["status"] == "cancelled"
    assert order["payment"]["status"] == "failed"
    assert transitions(order)[-1] == "cancelled"
    assert stock() == before
    [credit_note] = order["credit_notes"]
    assert credit_note["amount"] == order["totals"]["total"]
    assert order["shipment"] is None  # never handed to the partner
    # The decline and the cancellation it causes are one email, with the credit note attached.
    expected = {"order_confirmation": 1, "invoice_issued": 1, "cancelled": 1}
    assert emails(mailbox) == expected
    assert timeline_emails(order) == expected
    [cancelled] = [m for m in mailbox.messages() if m["X-ChargeFlow-Kind"] == "cancelled"]
    assert "did not go through" in cancelled["Subject"]
    text = cancelled.get_body(preferencelist=("plain",)).get_content()
    assert "Your bank declined the payment." in text
    assert "Nothing was charged" in text
    assert "declined.)." not in text and "back in stock" not in text
    assert [a.get_filename() for a in cancelled.iter_attachments()] == [
        f"credit-note-{credit_note['number']}.pdf"
    ]


def test_undeliverable_address_is_refunded_once(pipeline, catalog, mailbox, fast_partner):
    before = stock()
    created = place_order("comp-undeliverable", postal_code="00000")
    pipeline.drain(duplicate=True)

    order = fetch(created)
    assert order["status"] == "refunded"
    assert transitions(order) == ["placed", "invoiced", "paid", "refunded"]
    assert order["payment"]["status"] == "refunded"
    assert order["shipment"]["status"] == "failed"
    assert fast_partner.shipments() == []
    # Money: exactly one refund on localstripe, of the whole total; one credit note for it.
    [refund] = stripe_refunds(created["id"])
    assert refund.amount == int(order["totals"]["total"].replace(".", ""))
    [credit_note] = order["credit_notes"]
    assert credit_note["amount"] == order["totals"]["total"]
    # Stock: back where it was.
    assert stock() == before
    # The customer: one refund email, with the reason; no "shipped".
    assert emails(mailbox) == {
        "order_confirmation": 1,
        "invoice_issued": 1,
        "payment_received": 1,
        "refunded": 1,
    }
    [refunded] = [m for m in mailbox.messages() if m["X-ChargeFlow-Kind"] == "refunded"]
    text = refunded.get_body(preferencelist=("plain",)).get_content()
    # The reason in the customer's words, never the partner's error text.
    assert "Our shipping partner could not deliver to the address" in text
    assert "undeliverable" not in text and "postal code 00000" not in text
    assert f"{order['totals']['total']} EUR" in text
    assert [a.get_filename() for a in refunded.iter_attachments()] == [
        f"credit-note-{credit_note['number']}.pdf"
    ]
    assert timeline_emails(order)["refunded"] == 1


@pytest.mark.parametrize(
    "fault", [{"fail_next": 2}, {"lose_next": 1}, {"fail_next": 1, "lose_next": 1}]
)
def test_partner_faults_still_make_one_shipment(pipeline, catalog, mailbox, fast_partner, fault):
    fast_partner.configure(**fault)
    created = place_order(f"comp-fault-{'-'.join(fault)}")
    pipeline.drain()
    order = fetch(created)
    assert order["status"] == "shipped"
    [shipment] = fast_partner.shipments()
    assert order["shipment"]["tracking_number"] == shipment["tracking_number"]
    assert emails(mailbox)["shipped"] == 1


def test_partner_down_fails_after_the_last_attempt_and_refunds(
    pipeline, catalog, mailbox, fast_partner, settings
):
    settings.SHIPPING_CREATE_MAX_ATTEMPTS = 3
    fast_partner.configure(failure_rate=1.0)
    before = stock()
    created = place_order("comp-partner-down")
    failures = 0
    while True:  # what Celery does: redeliver after each failure (with backoff)
        try:
            pipeline.drain()
            break
        except PartnerError:
            failures += 1
            assert failures < 3
            assert Order.objects.get(pk=created["id"]).status == "paid"
    assert failures == 2
    order = fetch(created)
    assert order["status"] == "refunded"
    shipment = Shipment.objects.get(order_id=created["id"])
    assert shipment.failure_reason.startswith("shipping partner unavailable")
    assert shipment.attempts == 3
    assert len(stripe_refunds(created["id"])) == 1
    assert len(order["credit_notes"]) == 1
    assert stock() == before
    assert emails(mailbox)["refunded"] == 1
    [failure] = FailedDelivery.objects.filter(aggregate_id=created["id"])
    assert failure.subscriber == "shipping.on_payment_succeeded"
    assert failure.attempts == 2 and failure.resolved_at is not None


def test_failing_refund_is_retried_and_shows_as_stuck_with_its_cause(
    pipeline, catalog, mailbox, fast_partner, settings
):
    created = place_order("comp-refund-fails", postal_code="00000")
    real_stripe = settings.STRIPE_API_BASE
    # Stripe goes away just as the shipment fails: the refund step cannot run.
    with pytest.raises(stripe.APIConnectionError):
        drain_with_stripe_down_from("shipment.failed", settings)
    failure = FailedDelivery.objects.get(aggregate_id=created["id"], resolved_at__isnull=True)
    assert failure.subscriber == "billing.on_shipment_failed"
    assert failure.last_error.startswith("APIConnectionError")
    assert Order.objects.get(pk=created["id"]).status == "paid"  # not refunded yet, not lost

    settings.STUCK_ORDER_MINUTES = 0
    orders_flag_stuck()
    assert Order.objects.get(pk=created["id"]).stuck_since is not None  # the admin shows it

    # Stripe is back; the retry (here: the admin's "redeliver") completes the saga.
    settings.STRIPE_API_BASE = real_stripe
    stripe_client.cache_clear()
    deliver(subscriber_name=failure.subscriber, envelope=failure.envelope)
    pipeline.drain()
    order = fetch(created)
    assert order["status"] == "refunded"
    assert len(stripe_refunds(created["id"])) == 1
    assert len(order["credit_notes"]) == 1
    assert emails(mailbox)["refunded"] == 1
    failure.refresh_from_db()
    assert failure.resolved_at is not None


def drain_with_stripe_down_from(event_type: str, settings) -> None:
    """The pipeline's drain, with Stripe unreachable (a closed port) from `event_type` on."""
    for _ in range(50):
        rows = list(OutboxEvent.objects.exclude(status=OutboxEvent.Status.PUBLISHED).order_by("id"))
        if not rows:
            return
        for row in rows:
            if row.type == event_type:
                settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"
                stripe_client.cache_clear()
            for sub in subscribers_for(row.type):
                deliver(subscriber_name=sub.name, envelope=row.as_event().to_envelope())
            row.status = OutboxEvent.Status.PUBLISHED
            row.save(update_fields=["status"])


def test_every_event_delivered_twice_sends_every_email_once(
    pipeline, catalog, mailbox, fast_partner
):
    fast_partner.configure(transit_seconds=0, delivery_seconds=0.2)
    created = place_order("comp-twice")
    pipeline.drain(duplicate=True)
    assert Order.objects.get(pk=created["id"]).status == "shipped"
    time.sleep(0.25)
    poll_open_shipments()
    poll_open_shipments()
    pipeline.drain(duplicate=True)

    order = fetch(created)
    assert order["status"] == "delivered"
    assert order["shipment"]["status"] == "delivered"
    expected = {
        "order_confirmation": 1,
        "invoice_issued": 1,
        "payment_received": 1,
        "shipped": 1,
        "delivered": 1,
    }
    assert emails(mailbox) == expected
    assert timeline_emails(order) == expected
    assert {m["To"] for m in mailbox.messages()} == {"ada@example.com"}
