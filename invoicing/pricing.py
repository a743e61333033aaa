"""Price calculation, in exact Decimal, rounded half-up to the cent (docs/invoicing.md).

Prices in the catalog are net. From the order's price snapshot (unit price and line total per
line, taken at checkout):

- line total: must equal unit price x quantity (already cents, so exact); a mismatch is refused;
- subtotal: the sum of the line totals (exact, no rounding needed);
- shipping: the destination's ShippingZone fee (the zone listing the country, else the zone
  without countries, else settings.SHIPPING_FEE), free when the subtotal reaches the zone's
  free-shipping threshold (settings.FREE_SHIPPING_THRESHOLD without zones);
- tax: the destination country's TaxRate (else settings.DEFAULT_TAX_RATE) on the tax base, which
  is subtotal + shipping (or the subtotal alone when the rate does not apply to shipping);
  rounded once, half-up to the cent, on the whole base (never per line);
- total: subtotal + shipping + tax. This is the amount billing charges, in minor units.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from chargeflow.money import CENT, quantize
from invoicing.models import ShippingZone, TaxRate

ZERO = Decimal("0.00")


class PricingError(ValueError):
    """The order's snapshot does not add up: never invoice it."""


@dataclass(frozen=True)
class Line:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal


@dataclass(frozen=True)
class Shipping:
    zone: str
    fee: Decimal


@dataclass(frozen=True)
class Tax:
    name: str
    rate: Decimal
    applies_to_shipping: bool


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    shipping: Decimal
    shipping_zone: str
    tax_name: str
    tax_rate: Decimal
    tax_base: Decimal
    tax: Decimal
    total: Decimal

    def as_dict(self) -> dict[str, str]:
        return {
            "subtotal": str(self.subtotal),
            "shipping": str(self.shipping),
            "tax_rate": str(self.tax_rate),
            "tax": str(self.tax),
            "total": str(self.total),
        }


def lines_from_snapshot(items: Iterable[dict]) -> list[Line]:
    """Order lines from the event's snapshot, checked: quantity >= 1, prices in whole cents,
    line total == unit price x quantity."""
    lines = []
    for item in items:
        quantity = int(item["quantity"])
        unit_price = Decimal(str(item["unit_price"]))
        line_total = Decimal(str(item["line_total"]))
        if quantity < 1 or unit_price < 0:
            raise PricingError(f"{item['sku']}: invalid quantity or price")
        if unit_price != unit_price.quantize(CENT) or line_total != line_total.quantize(CENT):
            raise PricingError(f"{item['sku']}: prices must be whole cents")
        if unit_price * quantity != line_total:
            raise PricingError(
                f"{item['sku']}: line total {line_total} != {quantity} x {unit_price}"
            )
        lines.append(Line(item["sku"], item["name"], quantity, unit_price, line_total))
    if not lines:
        raise PricingError("an invoice needs at least one line")
    return lines


def shipping_for(*, country: str, subtotal: Decimal) -> Shipping:
    country = country.upper()
    zones = list(ShippingZone.objects.all())
    zone = next((z for z in zones if country in z.country_codes), None) or next(
        (z for z in zones if not z.country_codes), None
    )
    if zone is None:
        fee, threshold, name = settings.SHIPPING_FEE, settings.FREE_SHIPPING_THRESHOLD, "Standard"
    else:
        fee, threshold, name = zone.fee, zone.free_shipping_threshold, zone.name
    free = threshold is not None and subtotal >= threshold
    return Shipping(zone=name, fee=ZERO if free else quantize(fee))


def tax_for(*, country: str) -> Tax:
    row = TaxRate.objects.filter(country=country.upper()).first()
    if row is None:
        return Tax(name="VAT", rate=settings.DEFAULT_TAX_RATE, applies_to_shipping=True)
    return Tax(name=row.name, rate=row.rate, applies_to_shipping=row.applies_to_shipping)


def calculate_totals(*, lines: list[Line], country: str) -> Totals:
    subtotal = quantize(sum((line.line_total for line in lines), ZERO))
    shipping = shipping_for(country=country, subtotal=subtotal)
    tax = tax_for(country=country)
    base = subtotal + (shipping.fee if tax.applies_to_shipping else ZERO)
    tax_amount = quantize(base * tax.rate)
    return Totals(
        subtotal=subtotal,
        shipping=shipping.fee,
        shipping_zone=shipping.zone,
        tax_name=tax.name,
        tax_rate=tax.rate,
        tax_base=base,
        tax=tax_amount,
        total=subtotal + shipping.fee + tax_amount,
    )


def rate_percent(rate: Decimal) -> str:
    """0.1900 -> '19', 0.0750 -> '7.5' (for documents)."""
    text = f"{(rate * 100).normalize():f}"
    return text
