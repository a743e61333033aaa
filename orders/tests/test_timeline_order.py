"""The timeline reads in the order things happened, however late a delivery was retried: rows
recorded while handling an event carry the event's occurred_at."""

from __future__ import annotations

import pytest
from django.utils import timezone

from conftest import place_order
from orders.models import Order
from orders.presenters import describe
from outbox.delivery import deliver
from outbox.models import OutboxEvent
from outbox.registry import subscribers_for

pytestmark = pytest.mark.django_db


def drain_holding_back(held: set[tuple[str, str]]) -> None:
    """Deliver every event like the relay and workers do, except that the (subscriber, event
    type) pairs in `held` are delivered last (a delivery retried for a while)."""
    late = []
    for _ in range(50):
        rows = list(OutboxEvent.objects.exclude(status="published").order_by("id"))
        if not rows:
            break
        for row in rows:
            for sub in subscribers_for(row.type):
                if (sub.name, row.type) in held:
                    late.append((sub.name, row.as_event().to_envelope()))
                else:
                    deliver(subscriber_name=sub.name, envelope=row.as_event().to_envelope())
            row.status, row.published_at = "published", timezone.now()
            row.save(update_fields=["status", "published_at"])
    for name, envelope in late:
        deliver(subscriber_name=name, envelope=envelope)


def test_a_late_payment_delivery_still_reads_before_its_email(catalog, pipeline):
    created = place_order("timeline-late")
    drain_holding_back({("orders.on_payment_succeeded", "payment.succeeded")})
    order = Order.objects.get(pk=created["id"])
    assert order.status == "shipped"
    sentences = [describe(entry) for entry in order.timeline.all()]
    assert sentences.index("Payment received") < sentences.index("Email sent: payment received")
    ats = [entry.at for entry in order.timeline.all()]
    assert ats == sorted(ats)
