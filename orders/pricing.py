"""The order's price calculation: pure functions over small dataclasses, exact to the cent.

The orders app owns an order's totals: the cart and the checkout show a `Quote`, the placement
computes the same `Quote` (one code path, `orders.selectors.price_quote`) and stores it on the
order, and `order.placed` carries it; invoicing documents it and billing charges it
(docs/architecture.md, "Where the price is calculated").

Amounts are `Decimal`; every rounding is half-up to the cent and computed exactly (fractions),
never through float. Two ways of entering catalog prices (settings.PRICES_INCLUDE_TAX):

- gross (True, the EU consumer-shop default): catalog prices and the shipping fee include VAT; the
  shopper pays them whatever the destination. VAT is extracted per destination rate r, once on the
  goods and once on the shipping fee: tax = round(gross x r / (1 + r)). Net = gross - tax.
- net (False, B2B): catalog prices and the fee are net; VAT is added on the whole base
  (goods + shipping when the rate applies to shipping), rounded once.

In both modes `subtotal` and `shipping` are NET and `subtotal + shipping + tax == total` exactly
(API clients rely on it); `goods_shown` and `shipping_shown` are what the shopper sees on the
pages (gross in gross mode), and `goods_shown + shipping_shown == total` in gross mode.
The free-shipping threshold is compared with the goods subtotal as shown (gross in gross mode).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from chargeflow.money import CENT

ZERO = Decimal("0.00")


class PricingError(ValueError):
    """Prices that cannot be quoted (no lines, a negative price, sub-cent amounts)."""


@dataclass(frozen=True)
class PriceLine:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal  # as entered in the catalog (gross or net, see module doc)

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity  # whole cents x integer: exact


@dataclass(frozen=True)
class TaxRule:
    name: str
    rate: Decimal  # 0.1900 for 19 %
    applies_to_shipping: bool = True


@dataclass(frozen=True)
class ShippingRule:
    zone: str
    fee: Decimal  # in the catalog's terms (gross when prices include tax)
    free_from: Decimal | None  # goods subtotal (as shown) from which shipping is free; None: never


@dataclass(frozen=True)
class Quote:
    country: str
    currency: str
    prices_include_tax: bool
    lines: tuple[PriceLine, ...]
    goods_shown: Decimal  # the sum of the line totals as shown (catalog terms)
    shipping_shown: Decimal  # the shipping fee as shown (catalog terms)
    subtotal: Decimal  # net goods
    shipping: Decimal  # net shipping
    tax: Decimal
    total: Decimal
    tax_base: Decimal  # the net amount taxed
    tax_name: str
    tax_rate: Decimal
    tax_applies_to_shipping: bool
    shipping_zone: str
    free_shipping_from: Decimal | None

    @property
    def tax_percent(self) -> str:
        return rate_percent(self.tax_rate)

    @property
    def free_shipping_missing(self) -> Decimal | None:
        """How much more (as shown) would make shipping free, or None."""
        if self.free_shipping_from is None or self.shipping_shown == 0:
            return None
        return self.free_shipping_from - self.goods_shown

    def totals(self) -> dict[str, str]:
        """The API's and the events' `totals`: net subtotal and shipping, tax, total."""
        return {
            "subtotal": str(self.subtotal),
            "shipping": str(self.shipping),
            "tax": str(self.tax),
            "total": str(self.total),
            "currency": self.currency,
        }

    def pricing(self) -> dict[str, str | bool]:
        """What a document needs besides the totals (order.placed `pricing`)."""
        return {
            "prices_include_tax": self.prices_include_tax,
            "tax_name": self.tax_name,
            "tax_rate": str(self.tax_rate),
            "tax_applies_to_shipping": self.tax_applies_to_shipping,
            "tax_base": str(self.tax_base),
            "shipping_zone": self.shipping_zone,
            "goods_shown": str(self.goods_shown),
            "shipping_shown": str(self.shipping_shown),
        }


def round_half_up(value: Fraction | Decimal) -> Decimal:
    """Exact half-up rounding to the cent of a non-negative amount (0.005 -> 0.01)."""
    cents = Fraction(value) * 100
    if cents < 0:
        raise PricingError(f"negative amount {value}")
    whole = (cents.numerator * 2 + cents.denominator) // (cents.denominator * 2)
    return (Decimal(whole) / 100).quantize(CENT)


def tax_included(gross: Decimal, rate: Decimal) -> Decimal:
    """The VAT contained in a gross amount: round(gross x r / (1 + r)), exact."""
    r = Fraction(rate)
    return round_half_up(Fraction(gross) * r / (1 + r))


def tax_on(net: Decimal, rate: Decimal) -> Decimal:
    return round_half_up(Fraction(net) * Fraction(rate))


def _checked(lines: Iterable[PriceLine]) -> tuple[PriceLine, ...]:
    lines = tuple(lines)
    if not lines:
        raise PricingError("nothing to price")
    for line in lines:
        if (
            line.quantity < 1
            or line.unit_price < 0
            or line.unit_price != line.unit_price.quantize(CENT)
        ):
            raise PricingError(f"{line.sku}: invalid quantity or price")
    return lines


def calculate_quote(
    *,
    lines: Iterable[PriceLine],
    country: str,
    currency: str,
    tax: TaxRule,
    shipping: ShippingRule,
    prices_include_tax: bool,
) -> Quote:
    lines = _checked(lines)
    goods = sum((line.line_total for line in lines), ZERO).quantize(CENT)
    free = shipping.free_from is not None and goods >= shipping.free_from
    fee = ZERO if free else shipping.fee.quantize(CENT)
    shipping_taxed = tax.applies_to_shipping
    if prices_include_tax:
        tax_goods = tax_included(goods, tax.rate)
        tax_shipping = tax_included(fee, tax.rate) if shipping_taxed else ZERO
        subtotal, net_shipping = goods - tax_goods, fee - tax_shipping
        tax_amount = tax_goods + tax_shipping
    else:
        subtotal, net_shipping = goods, fee
        tax_amount = tax_on(subtotal + (fee if shipping_taxed else ZERO), tax.rate)
    total = subtotal + net_shipping + tax_amount  # gross prices: == goods + fee, what was shown
    return Quote(
        country=country,
        currency=currency,
        prices_include_tax=prices_include_tax,
        lines=lines,
        goods_shown=goods,
        shipping_shown=fee,
        subtotal=subtotal,
        shipping=net_shipping,
        tax=tax_amount,
        total=total,
        tax_base=subtotal + (net_shipping if shipping_taxed else ZERO),
        tax_name=tax.name,
        tax_rate=tax.rate,
        tax_applies_to_shipping=shipping_taxed,
        shipping_zone=shipping.zone,
        free_shipping_from=shipping.free_from,
    )


def rate_percent(rate: Decimal) -> str:
    """0.1900 -> '19', 0.0750 -> '7.5', 0.2550 -> '25.5'."""
    return f"{(rate * 100).normalize():f}"
