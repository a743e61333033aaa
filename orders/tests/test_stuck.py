"""Stuck orders: flagged by the periodic task, shown in the admin with their failure causes, and
retried from there (failed deliveries sent again, unpublished events made due)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from orders.models import Order
from orders.services import order_retry_stuck
from orders.tasks import flag_stuck_orders
from orders.tests.factories import ProductFactory, envelope, order_with_line
from outbox.models import FailedDelivery, OutboxEvent

pytestmark = pytest.mark.django_db


def test_orders_without_progress_are_flagged_and_final_ones_are_not(settings):
    settings.STUCK_ORDER_MINUTES = 15
    product = ProductFactory(stock=10)
    old = timezone.now() - timedelta(minutes=16)
    stuck = order_with_line(product=product, status="invoiced", last_progress_at=old)
    fresh = order_with_line(product=product, status="invoiced")
    done = order_with_line(product=product, status="delivered", last_progress_at=old)

    assert flag_stuck_orders() == 1
    assert flag_stuck_orders() == 0  # flagged once

    assert Order.objects.get(pk=stuck.pk).stuck_since is not None
    assert Order.objects.get(pk=fresh.pk).stuck_since is None
    assert Order.objects.get(pk=done.pk).stuck_since is None


def _failure(order, error="ConnectionError: partner down"):
    env = envelope("payment.succeeded", order.id)
    return FailedDelivery.objects.create(
        event_id=env["id"],
        subscriber="shipping.on_payment_succeeded",
        event_type="payment.succeeded",
        aggregate_id=str(order.id),
        envelope=env,
        attempts=9,
        last_error=error,
    )


@pytest.fixture
def stuck_order():
    product = ProductFactory(stock=10)
    order = order_with_line(
        product=product,
        status="paid",
        last_progress_at=timezone.now() - timedelta(hours=1),
        stuck_since=timezone.now(),
    )
    return order


def test_admin_shows_the_failure_cause_on_the_order(admin_client, stuck_order):
    _failure(stuck_order, error="ConnectionError: partner <down>")
    page = admin_client.get(
        reverse("admin:orders_order_change", args=[stuck_order.pk]), follow=True
    ).content.decode()
    assert "shipping.on_payment_succeeded" in page
    assert "ConnectionError: partner &lt;down&gt;" in page  # escaped
    listing = admin_client.get(reverse("admin:orders_order_changelist"), {"stuck": "yes"})
    assert stuck_order.number in listing.content.decode()


def test_retry_the_stuck_step_redelivers_failures_and_rearms_events(
    admin_client, stuck_order, django_capture_on_commit_callbacks, sqs
):
    sqs.purge()
    failure = _failure(stuck_order)
    # Another order's failure, already resolved: not sent.
    resolved = _failure(order_with_line(product=ProductFactory(), status="paid"))
    resolved.resolved_at = timezone.now()
    resolved.save()
    pending = OutboxEvent.objects.create(
        type="order.completed",
        aggregate_id=str(stuck_order.id),
        status=OutboxEvent.Status.FAILING,
        next_attempt_at=timezone.now() + timedelta(hours=1),
        last_error="broker down",
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:orders_order_changelist"),
            {"action": "retry_stuck_step", "_selected_action": [str(stuck_order.pk)]},
            follow=True,
        )

    assert response.status_code == 200
    assert "1 failed delivery(ies) sent again, 1 outbox event(s) due now." in (
        response.content.decode()
    )
    # Sent again through the outbox, to the subscriber's queue (the SQS emulator).
    [sent] = sqs.take_tasks("shipping")
    assert sent == {"subscriber": failure.subscriber, "event": failure.envelope}
    pending.refresh_from_db()
    assert pending.next_attempt_at <= timezone.now()
    stuck_order.refresh_from_db()
    assert stuck_order.stuck_since is None
    assert stuck_order.timeline.filter(type="note").last().detail["redelivered"] == [
        "shipping.on_payment_succeeded <- payment.succeeded"
    ]


def test_retry_with_nothing_to_retry_says_where_to_look(admin_client, stuck_order):
    response = admin_client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "retry_stuck_step", "_selected_action": [str(stuck_order.pk)]},
        follow=True,
    )
    assert "had nothing to retry" in response.content.decode()
    assert not order_retry_stuck(order_id=stuck_order.pk).anything


def test_retry_publishes_the_orders_events_again_when_a_message_was_lost(stuck_order):
    """Nothing failed and nothing is waiting: the message was lost after publishing (a purged
    queue, a restarted emulator). Every event of the order goes out again; the inbox skips what
    was handled."""
    from outbox.models import OutboxEvent

    lost = OutboxEvent.objects.create(
        type="payment.succeeded",
        aggregate_id=str(stuck_order.pk),
        status=OutboxEvent.Status.PUBLISHED,
        published_at=timezone.now() - timedelta(hours=1),
    )
    other = OutboxEvent.objects.create(
        type="payment.succeeded",
        aggregate_id="another-order",
        status="published",
        published_at=timezone.now(),
    )
    result = order_retry_stuck(order_id=stuck_order.pk)
    assert (result.redelivered, result.rearmed, result.republished) == (0, 0, 1)
    lost.refresh_from_db()
    other.refresh_from_db()
    assert lost.status == OutboxEvent.Status.PENDING and lost.published_at is None
    assert other.status == OutboxEvent.Status.PUBLISHED
