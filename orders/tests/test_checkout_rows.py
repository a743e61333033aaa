"""The API checkout's rows (orders.services `_unsaved`, `_insert_statement`; issue 11): an
instance built from positional values is the one keyword arguments build, and its row's JSON is
each field's pre_save() value as `_json_value` writes it."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from orders import services
from orders.models import Order, OrderLine, TimelineEntry
from orders.tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def order_values(**extra):
    now = timezone.now()
    return dict(
        id=uuid.uuid4(),
        number="CF-TESTROWS",
        email="ada@example.com",
        ship_name='Ada "Quote" \\ Back',
        ship_line1="1 Main St",
        ship_city="Berlin",
        ship_postal_code="10115",
        ship_country="DE",
        payment_method="pm_card_visa",
        currency="EUR",
        payment_status=Order.PaymentStatus.PENDING,
        idempotency_key="key-1",
        request_fingerprint="f" * 64,
        subtotal=Decimal("840.33"),
        shipping_fee=Decimal("0.00"),
        tax=Decimal("159.66"),
        total=Decimal("999.99"),
        tax_name="VAT",
        tax_rate=Decimal("0.1900"),
        shipping_zone="DE",
        prices_include_tax=True,
        goods_shown=Decimal("999.99"),
        shipping_shown=Decimal("0.00"),
        created_at=now,
        last_progress_at=now,
        **extra,
    )


def state(instance) -> dict:
    return {k: v for k, v in instance.__dict__.items() if k != "_state"}


def old_row_json(model, instances) -> str:
    """What the checkout wrote before: pre_save() of every field, through `_json_value`."""
    fields = services._insert_of(model)[1]
    rows = [{f.column: f.pre_save(i, True) for f in fields} for i in instances]
    return json.dumps(rows, default=services._json_value)


def test_an_unsaved_order_is_the_one_keyword_arguments_build(django_user_model):
    customer = django_user_model.objects.create_user("ada", "ada@example.com", "pw-12345678")
    for who in (None, customer):
        values = order_values(customer=who)
        built, reference = services._unsaved(Order, **values), Order(**values)
        assert state(built) == state(reference)
        assert built._state.adding and built._state.db is None
        assert built.customer == who
        assert built.customer_id == (who.pk if who else None)
        # Defaults as keyword arguments fill them (callables called).
        assert built.status == Order.Status.PLACED and built.invoice_number == ""
    fresh = services._unsaved(Order, email="x@example.com")
    assert isinstance(fresh.id, uuid.UUID) and fresh.number.startswith("CF-")
    with pytest.raises(TypeError):
        services._unsaved(Order, nonsense=1)


def test_lines_and_timeline_rows_carry_their_order_and_product():
    product = ProductFactory()
    order = services._unsaved(Order, **order_values())
    values = dict(
        order=order,
        product_id=product.pk,
        sku=product.sku,
        name=product.name,
        unit_price=product.price,
        quantity=2,
        line_total=product.price * 2,
    )
    line = services._unsaved(OrderLine, **values)
    reference = OrderLine(**values)
    assert line.order is order and line.order_id == order.id
    assert state(line) == state(reference)
    entry = services._unsaved(
        TimelineEntry,
        order=order,
        type=TimelineEntry.Type.STATUS_CHANGED,
        at=order.created_at,
        detail={"from": None, "to": "placed", "amount": Decimal("1.50")},
    )
    assert entry.order is order

    for model, instances in ((Order, [order]), (OrderLine, [line, line]), (TimelineEntry, [entry])):
        before = old_row_json(model, instances)
        sql, params = services._insert_statement(model, instances)
        assert sql == services._insert_of(model)[0]
        # updated_at (auto_now) is set at each call: compare without it, then its form.
        old, new = json.loads(before), json.loads(params[0])
        for a, b in zip(old, new, strict=True):
            assert a.pop("updated_at", None) is not None or model is not Order
            b.pop("updated_at", None)
            assert a == b
        assert list(json.loads(params[0])[0]) == list(json.loads(before)[0])
