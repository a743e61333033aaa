"""Payloads shaped like the events invoicing consumes (invoicing never imports orders)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from conftest import GUEST_ADDRESS

ADDRESS = GUEST_ADDRESS  # the shared test address (conftest)


def item(sku: str = "MOUSE-01", price: str = "29.99", quantity: int = 1, name: str = "") -> dict:
    return {
        "sku": sku,
        "name": name or f"Product {sku}",
        "quantity": quantity,
        "unit_price": price,
        "line_total": str(Decimal(price) * quantity),
    }


def order_placed(*, items: list[dict] | None = None, country: str = "GB", **extra) -> dict:
    order_id = str(uuid.uuid4())
    return {
        "order_id": order_id,
        "order_number": f"CF-{order_id[:6].upper()}",
        "email": "ada@example.com",
        "currency": "EUR",
        "shipping_address": {**ADDRESS, "country": country},
        "items": items or [item("LAPTOP-14", "999.99"), item("MOUSE-01", "29.99", 2)],
        **extra,
    }
