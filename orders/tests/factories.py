"""Factories and helpers for the orders app's tests."""

from __future__ import annotations

import uuid
from decimal import Decimal

import factory
from django.utils import timezone

from conftest import GUEST_ADDRESS
from orders.models import Order, OrderLine, Product, TimelineEntry

ADDRESS = GUEST_ADDRESS  # the shared test address (conftest)


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    price = Decimal("10.00")
    currency = "EUR"
    stock = 10


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    email = "ada@example.com"
    ship_name = ADDRESS["name"]
    ship_line1 = ADDRESS["line1"]
    ship_city = ADDRESS["city"]
    ship_postal_code = ADDRESS["postal_code"]
    ship_country = ADDRESS["country"]
    payment_method = "pm_card_visa"
    currency = "EUR"
    payment_status = "pending"


def order_with_line(*, product: Product, quantity: int = 1, **fields) -> Order:
    """An order as checkout leaves it: its line's units already taken from the product's stock."""
    order = OrderFactory(**fields)
    OrderLine.objects.create(
        order=order,
        product=product,
        sku=product.sku,
        name=product.name,
        unit_price=product.price,
        quantity=quantity,
        line_total=product.price * quantity,
    )
    Product.objects.filter(pk=product.pk).update(stock=product.stock - quantity)
    TimelineEntry.objects.create(
        order=order, type="status_changed", detail={"from": None, "to": order.status}
    )
    return order


def envelope(event_type: str, order_id, data: dict | None = None) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "occurred_at": timezone.now().isoformat(),
        "aggregate_id": str(order_id),
        "correlation_id": str(uuid.uuid4()),
        "data": {"order_id": str(order_id), **(data or {})},
    }


# The payload each event the orders app consumes carries (as the emitting apps publish it).
EVENT_DATA = {
    "invoice.issued": {
        "number": "INV-1",
        "pdf_path": "invoices/INV-1.pdf",
        "totals": {"subtotal": "10.00", "shipping": "4.90", "tax": "2.98", "total": "17.88"},
    },
    "payment.action_required": {"payment_intent": "pi_1", "client_secret": "pi_1_secret_x"},
    "payment.succeeded": {"amount": "17.88", "currency": "EUR", "payment_intent": "pi_1"},
    "payment.failed": {"message": "Your card was declined.", "code": "card_declined"},
    "shipment.created": {"carrier": "SimPost", "tracking_number": "SP123"},
    "shipment.failed": {"reason": "undeliverable"},
    "shipment.delivered": {},
    "refund.succeeded": {"amount": "17.88", "full": True, "reason": "shipping failed"},
    "credit_note.issued": {"number": "CN-1", "amount": "17.88", "pdf_path": "cn/CN-1.pdf"},
    "email.sent": {"kind": "order_confirmation"},
}
