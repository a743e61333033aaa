"""The order state machine: the table, the one transition function, and every event the orders
app consumes delivered in every status — nothing ever moves an order backwards."""

from __future__ import annotations

import itertools

import pytest

from orders import services
from orders.models import ALLOWED_TRANSITIONS, FINAL_STATUSES, Order, Product, TimelineEntry
from orders.tests.factories import EVENT_DATA, ProductFactory, envelope, order_with_line
from outbox.delivery import deliver
from outbox.models import OutboxEvent
from outbox.registry import subscribers_for

S = Order.Status
# The forward order of the lifecycle (DESIGN.md §4); the two failure ends come after everything.
RANK = {
    S.PLACED: 0,
    S.INVOICED: 1,
    S.ACTION_REQUIRED: 2,
    S.PAID: 3,
    S.SHIPPED: 4,
    S.DELIVERED: 5,
    S.CANCELLED: 6,
    S.REFUNDED: 6,
}
# The status each consumed event asks for (None: a fact only, no status change).
TARGET = {
    "invoice.issued": S.INVOICED,
    "payment.action_required": S.ACTION_REQUIRED,
    "payment.succeeded": S.PAID,
    "payment.failed": S.CANCELLED,
    "shipment.created": S.SHIPPED,
    "shipment.failed": None,
    "shipment.delivered": S.DELIVERED,
    "refund.succeeded": S.REFUNDED,
    "credit_note.issued": None,
    "email.sent": None,
}


def test_table_covers_every_status_and_only_moves_forward():
    assert set(ALLOWED_TRANSITIONS) == set(S.values)
    for source, targets in ALLOWED_TRANSITIONS.items():
        assert source not in targets
        for target in targets:
            assert RANK[target] > RANK[source], f"{source} -> {target} goes backwards"
    for final in (S.CANCELLED, S.REFUNDED):
        assert ALLOWED_TRANSITIONS[final] == frozenset()
    # After payment the only failure end is a refund, never a plain cancellation.
    for paid_or_later in (S.PAID, S.SHIPPED, S.DELIVERED):
        assert S.CANCELLED not in ALLOWED_TRANSITIONS[paid_or_later]


def test_every_consumed_event_has_an_orders_subscriber():
    for event_type in TARGET:
        assert any(s.app == "orders" for s in subscribers_for(event_type)), event_type


@pytest.mark.django_db
@pytest.mark.parametrize(("source", "target"), list(itertools.product(S.values, S.values)))
def test_order_transition_obeys_the_table(source, target):
    product = ProductFactory(stock=5)
    order = order_with_line(product=product, quantity=2, status=source)
    entries = TimelineEntry.objects.filter(order=order, type="status_changed").count()

    moved = services.order_transition(order_id=order.id, to=target)

    order.refresh_from_db()
    allowed = target in ALLOWED_TRANSITIONS[source]
    assert moved is allowed
    assert order.status == (target if allowed else source)
    after = TimelineEntry.objects.filter(order=order, type="status_changed").count()
    assert after == entries + (1 if allowed else 0)
    if allowed:
        last = TimelineEntry.objects.filter(order=order, type="status_changed").last()
        assert last.detail == {"from": source, "to": target}


def _deliver_to_orders(event_type: str, order_id, data: dict | None = None) -> None:
    env = envelope(event_type, order_id, data if data is not None else EVENT_DATA[event_type])
    for sub in subscribers_for(event_type):
        if sub.app == "orders":
            deliver(subscriber_name=sub.name, envelope=env)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "event_type"), list(itertools.product(S.values, sorted(TARGET)))
)
def test_every_event_in_every_status_never_moves_backwards(status, event_type):
    product = ProductFactory(stock=5)
    order = order_with_line(product=product, quantity=2, status=status)
    before = Order.objects.get(pk=order.pk)

    _deliver_to_orders(event_type, order.id)
    # ... and again (a redelivered copy with a new id, as a retried publish would make).
    _deliver_to_orders(event_type, order.id)

    order.refresh_from_db()
    target = TARGET[event_type]
    if target is not None and target in ALLOWED_TRANSITIONS[status]:
        assert order.status == target
    else:
        assert order.status == status
    assert RANK[order.status] >= RANK[before.status]
    moves = [
        e.detail
        for e in TimelineEntry.objects.filter(order=order, type="status_changed").order_by("id")
    ][1:]
    assert len(moves) <= 1  # the copy never moves it a second time
    # Facts too: a late payment/shipment event never overwrites a later one.
    assert (
        services.PAYMENT_STATUS_RANK[order.payment_status]
        >= services.PAYMENT_STATUS_RANK[before.payment_status]
    )
    if status in FINAL_STATUSES - {S.DELIVERED}:
        assert order.status == status
    # Stock: released exactly when the order ends cancelled or refunded, and only once.
    product.refresh_from_db()
    released = order.status in (S.CANCELLED, S.REFUNDED) and status != order.status
    assert product.stock == (5 if released else 3)


@pytest.mark.django_db
def test_late_events_after_shipment_change_nothing_the_customer_sees():
    product = ProductFactory(stock=5)
    order = order_with_line(product=product, quantity=1)
    for event_type in ("invoice.issued", "payment.succeeded", "shipment.created"):
        _deliver_to_orders(event_type, order.id)
    order.refresh_from_db()
    assert (order.status, order.payment_status, order.shipment_status) == (
        S.SHIPPED,
        "succeeded",
        "created",
    )

    for late in ("payment.action_required", "payment.failed", "invoice.issued"):
        _deliver_to_orders(late, order.id)

    order.refresh_from_db()
    assert order.status == S.SHIPPED
    assert order.payment_status == "succeeded"
    assert order.payment_client_secret == ""  # no "complete payment" step on a paid order
    assert not OutboxEvent.objects.filter(type="order.cancelled").exists()


@pytest.mark.django_db
def test_cancelled_and_refunded_release_stock_once():
    product = ProductFactory(stock=10)
    cancelled = order_with_line(product=product, quantity=3, status=S.INVOICED)
    product.refresh_from_db()
    refunded = order_with_line(product=product, quantity=2, status=S.SHIPPED)
    assert Product.objects.get(pk=product.pk).stock == 5

    _deliver_to_orders("payment.failed", cancelled.id)
    _deliver_to_orders("refund.succeeded", refunded.id)
    _deliver_to_orders("refund.succeeded", refunded.id)

    assert Product.objects.get(pk=product.pk).stock == 10
    cancellations = OutboxEvent.objects.filter(
        type="order.cancelled", aggregate_id=str(cancelled.id)
    )
    assert cancellations.count() == 1


@pytest.mark.django_db
def test_partial_refund_keeps_the_order_and_a_late_partial_does_not_unrefund():
    product = ProductFactory(stock=10)
    order = order_with_line(product=product, quantity=1, status=S.PAID)
    _deliver_to_orders("refund.succeeded", order.id, {"amount": "5.00", "full": False})
    order.refresh_from_db()
    assert (order.status, order.payment_status) == (S.PAID, "partially_refunded")
    _deliver_to_orders("refund.succeeded", order.id, {"amount": "12.88", "full": True})
    _deliver_to_orders("refund.succeeded", order.id, {"amount": "1.00", "full": False})
    order.refresh_from_db()
    assert (order.status, order.payment_status) == (S.REFUNDED, "refunded")
