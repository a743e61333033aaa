"""Price calculation, in exact Decimal, rounded half-up to the cent.

- subtotal: the sum of the order's line totals (price snapshot taken at checkout);
- shipping: SHIPPING_FEE, free when the subtotal reaches FREE_SHIPPING_THRESHOLD;
- tax: the destination country's rate (TaxRate, else DEFAULT_TAX_RATE) applied once to
  subtotal + shipping (prices are net), rounded half-up;
- total: subtotal + shipping + tax.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from chargeflow.money import quantize
from invoicing.models import TaxRate


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    shipping: Decimal
    tax_rate: Decimal
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


def tax_rate_for(country: str) -> Decimal:
    rate = TaxRate.objects.filter(country=country.upper()).values_list("rate", flat=True).first()
    return settings.DEFAULT_TAX_RATE if rate is None else rate


def calculate_totals(*, line_totals: list[Decimal], country: str) -> Totals:
    subtotal = quantize(sum((Decimal(t) for t in line_totals), Decimal("0")))
    shipping = (
        Decimal("0.00")
        if subtotal >= settings.FREE_SHIPPING_THRESHOLD
        else quantize(settings.SHIPPING_FEE)
    )
    rate = tax_rate_for(country)
    tax = quantize((subtotal + shipping) * rate)
    return Totals(subtotal, shipping, rate, tax, quantize(subtotal + shipping + tax))
