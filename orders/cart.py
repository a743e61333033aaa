"""The cart lives in the session (Redis when configured): {sku: quantity}.

Prices and stock are read fresh on every request; the session holds only what the customer chose.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from chargeflow.money import quantize
from orders.models import Product

SESSION_KEY = "cart"
MAX_QUANTITY = 1000


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

    @property
    def problem(self) -> str:
        """What stops this line from being ordered, in words for the customer ("" if nothing)."""
        if not self.product.is_active or self.product.stock == 0:
            return f"{self.product.name} is out of stock: remove it to check out."
        if self.product.stock < self.quantity:
            return (
                f"Only {self.product.stock} of {self.product.name} left: "
                "lower the quantity to check out."
            )
        return ""


@dataclass(frozen=True)
class CartTotals:
    subtotal: Decimal
    shipping: Decimal
    total: Decimal
    free_shipping_from: Decimal
    currency: str


def cart_get(session) -> dict[str, int]:
    return {str(k): int(v) for k, v in session.get(SESSION_KEY, {}).items()}


def cart_set(session, sku: str, quantity: int) -> None:
    cart = cart_get(session)
    if quantity <= 0:
        cart.pop(sku, None)
    else:
        cart[sku] = min(quantity, MAX_QUANTITY)
    session[SESSION_KEY] = cart


def cart_add(session, sku: str, quantity: int) -> int:
    """Add to the line; returns the line's new quantity."""
    new = cart_get(session).get(sku, 0) + quantity
    cart_set(session, sku, new)
    return cart_get(session).get(sku, 0)


def cart_clear(session) -> None:
    session.pop(SESSION_KEY, None)


def cart_count(session) -> int:
    return sum(cart_get(session).values())


def cart_lines(session) -> tuple[list[CartLine], list[str]]:
    """The cart's lines, and the names of products that no longer exist (dropped from the cart)."""
    cart = cart_get(session)
    products = {p.sku: p for p in Product.objects.filter(sku__in=cart)}
    gone = [sku for sku in cart if sku not in products]
    for sku in gone:
        cart_set(session, sku, 0)
    return [CartLine(products[sku], qty) for sku, qty in cart.items() if sku in products], gone


def cart_totals(lines: list[CartLine]) -> CartTotals:
    """A preview: the invoice computes the real shipping fee (by destination) and the tax."""
    subtotal = quantize(sum((line.line_total for line in lines), Decimal("0")))
    threshold = settings.FREE_SHIPPING_THRESHOLD
    shipping = Decimal("0.00") if subtotal >= threshold else quantize(settings.SHIPPING_FEE)
    currency = lines[0].product.currency if lines else settings.SHOP_CURRENCY
    return CartTotals(
        subtotal=subtotal,
        shipping=shipping,
        total=quantize(subtotal + shipping),
        free_shipping_from=threshold,
        currency=currency,
    )
