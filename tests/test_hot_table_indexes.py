"""The hot tables of the checkout carry no index that nothing reads (orders migration 0008,
outbox migration 0003; issue 11): no `_like` (varchar_pattern_ops) index beside the unique
order number and Idempotency-Key or the outbox's type and aggregate id, and the uniqueness
and plain indexes are still there."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from orders.models import Order
from orders.tests.factories import OrderFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


def test_no_pattern_index_on_the_order_and_outbox_tables():
    for table in ("orders_order", "outbox_outboxevent"):
        found = indexes(table)
        assert not [d for d in found.values() if "pattern_ops" in d], found
    order = indexes("orders_order")
    for column in ("number", "idempotency_key"):
        assert any("UNIQUE INDEX" in d and f"({column})" in d for d in order.values()), order
    outbox = indexes("outbox_outboxevent")
    for column in ("type", "aggregate_id"):
        assert any(d.endswith(f"USING btree ({column})") for d in outbox.values()), outbox


def test_order_numbers_and_keys_are_still_unique():
    first = OrderFactory(idempotency_key="same-key")
    for clash in ({"number": first.number}, {"idempotency_key": "same-key"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            OrderFactory(**clash)
    assert Order.objects.count() == 1
