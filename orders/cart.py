"""The cart lives in the session (Redis when configured): {sku: quantity}.

Prices and stock are read fresh on every request; the session holds only what the customer chose
(and the destination country the totals are quoted for).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils.translation.trans_real import parse_accept_lang_header

from chargeflow.money import quantize
from orders.countries import COUNTRY_CODES
from orders.models import Product
from orders.pricing import PriceLine, Quote
from orders.selectors import price_quote

SESSION_KEY = "cart"
COUNTRY_KEY = "quote_country"  # the shopper's last choice of destination (cart, checkout)
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


def quote_country(session, choice: str | None = None) -> str:
    """The country the cart is priced for: a valid `choice` (remembered in the session), else the
    shopper's last choice, else settings.SHOP_COUNTRY."""
    choice = (choice or "").strip().upper()
    if choice in COUNTRY_CODES:
        session[COUNTRY_KEY] = choice
        return choice
    remembered = session.get(COUNTRY_KEY, "")
    return remembered if remembered in COUNTRY_CODES else settings.SHOP_COUNTRY


def preferred_country(request) -> str:
    """The country to preselect at checkout, or "" (the shopper chooses): the one the shopper
    chose for the cart, else the destination of their account's last order, else the region
    of their browser's language (Accept-Language "de-AT" is Austria; a bare "de" says nothing).
    Never a shop-wide default: a wrong country silently changes shipping and VAT."""
    remembered = request.session.get(COUNTRY_KEY, "")
    if remembered in COUNTRY_CODES:
        return remembered
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        last = user.orders.order_by("-created_at").values_list("ship_country", flat=True).first()
        if last in COUNTRY_CODES:
            return last
    header = request.META.get("HTTP_ACCEPT_LANGUAGE", "")[:200]
    for language, _q in parse_accept_lang_header(header):
        region = language.replace("_", "-").split("-")[1:2]
        if region and region[0].upper() in COUNTRY_CODES:
            return region[0].upper()
    return ""


def cart_quote(lines: list[CartLine], country: str) -> Quote | None:
    """The exact totals for these lines shipped to `country` (None for an empty cart): the same
    calculation the placement stores and the card is charged (selectors.price_quote)."""
    if not lines:
        return None
    return price_quote(
        lines=[
            PriceLine(line.product.sku, line.product.name, line.quantity, line.product.price)
            for line in lines
        ],
        country=country,
        currency=lines[0].product.currency,
    )
