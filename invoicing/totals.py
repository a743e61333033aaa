"""The order's totals as order.placed carries them, checked before they are documented.

Invoicing does not calculate prices: the orders app fixes an order's totals when it is placed
(the totals the shopper saw at checkout, docs/pricing.md) and sends them in `order.placed`.
Invoicing documents them, after checking that they add up, and refuses an event whose numbers do
not (`TotalsError`: the delivery fails and shows under *Failed deliveries*):

- every line: quantity >= 1, prices in whole cents, line total == unit price x quantity;
- subtotal + shipping + tax == total (subtotal and shipping are net);
- the lines add up to what the shop showed: their sum is the net subtotal when prices are net,
  the gross goods amount when prices include tax; and then goods + shipping as shown == total.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chargeflow.money import CENT

ZERO = Decimal("0.00")


class TotalsError(ValueError):
    """The order's snapshot does not add up: never invoice it."""


@dataclass(frozen=True)
class Line:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal
    tax_base: Decimal
    tax_name: str
    tax_rate: Decimal
    shipping_zone: str
    prices_include_tax: bool
    goods_shown: Decimal
    shipping_shown: Decimal


def _cents(value: Any, what: str) -> Decimal:
    amount = Decimal(str(value))
    if amount != amount.quantize(CENT) or amount < 0:
        raise TotalsError(f"{what}: {value} is not a non-negative amount in whole cents")
    return amount


def lines_from_snapshot(items: Iterable[dict]) -> list[Line]:
    """Order lines from the event's snapshot, checked: quantity >= 1, prices in whole cents,
    line total == unit price x quantity."""
    lines = []
    for item in items:
        quantity = int(item["quantity"])
        unit_price = _cents(item["unit_price"], item["sku"])
        line_total = _cents(item["line_total"], item["sku"])
        if quantity < 1:
            raise TotalsError(f"{item['sku']}: invalid quantity {quantity}")
        if unit_price * quantity != line_total:
            raise TotalsError(
                f"{item['sku']}: line total {line_total} != {quantity} x {unit_price}"
            )
        lines.append(Line(item["sku"], item["name"], quantity, unit_price, line_total))
    if not lines:
        raise TotalsError("an invoice needs at least one line")
    return lines


def totals_from_event(
    *, lines: list[Line], totals: dict[str, Any] | None, pricing: dict[str, Any] | None
) -> Totals:
    if not totals or not pricing:
        raise TotalsError("order.placed carries no totals (placed before orders fixed them)")
    subtotal, shipping, tax, total = (
        _cents(totals[k], k) for k in ("subtotal", "shipping", "tax", "total")
    )
    if subtotal + shipping + tax != total:
        raise TotalsError(f"{subtotal} + {shipping} + {tax} != total {total}")
    goods = sum((line.line_total for line in lines), ZERO)
    gross = bool(pricing["prices_include_tax"])
    goods_shown = _cents(pricing["goods_shown"], "goods_shown")
    shipping_shown = _cents(pricing["shipping_shown"], "shipping_shown")
    if goods != goods_shown:
        raise TotalsError(f"the lines add up to {goods}, the order showed {goods_shown}")
    if gross and goods_shown + shipping_shown != total:
        raise TotalsError(f"{goods_shown} + {shipping_shown} (incl. tax) != total {total}")
    if not gross and (goods_shown, shipping_shown) != (subtotal, shipping):
        raise TotalsError("net prices: the lines and shipping shown must be the net amounts")
    return Totals(
        subtotal=subtotal,
        shipping=shipping,
        tax=tax,
        total=total,
        tax_base=_cents(pricing["tax_base"], "tax_base"),
        tax_name=pricing["tax_name"],
        tax_rate=Decimal(str(pricing["tax_rate"])),
        shipping_zone=pricing.get("shipping_zone", ""),
        prices_include_tax=gross,
        goods_shown=goods_shown,
        shipping_shown=shipping_shown,
    )


def rate_percent(rate: Decimal) -> str:
    """0.1900 -> '19', 0.0750 -> '7.5' (for documents)."""
    return f"{(rate * 100).normalize():f}"
