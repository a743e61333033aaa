"""Payloads shaped like the events invoicing consumes (invoicing never imports orders)."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal

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


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def placed_totals(
    items: list[dict], *, rate: str = "0.2000", shipping: str = "0.00", gross: bool = True
) -> dict:
    """`totals` and `pricing` as orders computes them at placement (orders/pricing.py; worked
    out here independently, invoicing never imports orders): gross prices have the VAT
    extracted once on the goods and once on shipping, net prices get it added on the base."""
    goods = sum((Decimal(i["line_total"]) for i in items), Decimal("0.00"))
    fee, r = Decimal(shipping), Decimal(rate)
    if gross:
        tax_goods, tax_shipping = _cents(goods * r / (1 + r)), _cents(fee * r / (1 + r))
        subtotal, net_shipping, tax = (
            goods - tax_goods,
            fee - tax_shipping,
            tax_goods + tax_shipping,
        )
    else:
        subtotal, net_shipping, tax = goods, fee, _cents((goods + fee) * r)
    return {
        "totals": {
            "subtotal": str(subtotal),
            "shipping": str(net_shipping),
            "tax": str(tax),
            "total": str(subtotal + net_shipping + tax),
            "currency": "EUR",
        },
        "pricing": {
            "prices_include_tax": gross,
            "tax_name": "VAT",
            "tax_rate": rate,
            "tax_applies_to_shipping": True,
            "tax_base": str(subtotal + net_shipping),
            "shipping_zone": "Standard",
            "goods_shown": str(goods),
            "shipping_shown": str(fee),
        },
    }


def order_placed(
    *,
    items: list[dict] | None = None,
    country: str = "GB",
    rate: str = "0.2000",
    shipping: str = "0.00",
    gross: bool = True,
    **extra,
) -> dict:
    """The arguments of invoice_issue, as order.placed carries them."""
    order_id = str(uuid.uuid4())
    items = items or [item("LAPTOP-14", "999.99"), item("MOUSE-01", "29.99", 2)]
    return {
        "order_id": order_id,
        "order_number": f"CF-{order_id[:6].upper()}",
        "email": "ada@example.com",
        "currency": "EUR",
        "shipping_address": {**ADDRESS, "country": country},
        "items": items,
        **placed_totals(items, rate=rate, shipping=shipping, gross=gross),
        **extra,
    }
