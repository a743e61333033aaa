"""The cart lives in the session (Redis when configured): {sku: quantity}."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from chargeflow.money import quantize
from orders.models import Product

SESSION_KEY = "cart"


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def line_total(self) -> Decimal:
        return quantize(self.product.price * self.quantity)

    @property
    def available(self) -> bool:
        return self.product.is_active and self.product.stock >= self.quantity


def cart_get(session) -> dict[str, int]:
    return dict(session.get(SESSION_KEY, {}))


def cart_set(session, sku: str, quantity: int) -> None:
    cart = cart_get(session)
    if quantity <= 0:
        cart.pop(sku, None)
    else:
        cart[sku] = quantity
    session[SESSION_KEY] = cart


def cart_add(session, sku: str, quantity: int) -> None:
    cart_set(session, sku, cart_get(session).get(sku, 0) + quantity)


def cart_clear(session) -> None:
    session.pop(SESSION_KEY, None)


def cart_lines(session) -> list[CartLine]:
    cart = cart_get(session)
    products = {p.sku: p for p in Product.objects.filter(sku__in=cart)}
    return [CartLine(products[sku], qty) for sku, qty in cart.items() if sku in products]


def cart_subtotal(lines: list[CartLine]) -> Decimal:
    return quantize(sum((line.line_total for line in lines), Decimal("0")))
