"""An order and its outbox row commit or roll back together."""

import pytest
from django.db import transaction

from orders.models import Order
from orders.services import CartItem, order_checkout
from outbox.models import OutboxEvent


@pytest.mark.django_db(transaction=True)
def test_business_row_and_outbox_row_commit_or_roll_back_together(catalog):
    address = {"name": "A", "line1": "B", "city": "C", "postal_code": "1", "country": "DE"}
    with pytest.raises(RuntimeError, match="after the insert"), transaction.atomic():
        order_checkout(
            email="a@example.com",
            shipping_address=address,
            items=[CartItem("MOUSE-01", 1)],
            payment_method="pm_card_visa",
        )
        assert Order.objects.count() == 1
        assert OutboxEvent.objects.filter(type="order.placed").count() == 1
        raise RuntimeError("an error after the insert")
    assert Order.objects.count() == 0
    assert OutboxEvent.objects.count() == 0

    order, _ = order_checkout(
        email="a@example.com",
        shipping_address=address,
        items=[CartItem("MOUSE-01", 1)],
        payment_method="pm_card_visa",
    )
    event = OutboxEvent.objects.get(type="order.placed")
    assert event.aggregate_id == str(order.id)
    assert event.data["items"][0]["unit_price"] == "29.99"
