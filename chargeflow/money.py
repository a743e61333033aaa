"""Money helpers: Decimal amounts, half-up rounding to the cent, integer minor units.

Amounts never pass through float. Currencies used by the shop all have two decimal places.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def quantize(amount: Decimal | int | str) -> Decimal:
    """Round to the cent, half up (0.005 -> 0.01)."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def to_minor(amount: Decimal | str) -> int:
    """Decimal major units to integer minor units (cents); refuses sub-cent amounts."""
    value = Decimal(amount)
    if value != value.quantize(CENT):
        raise ValueError(f"{value} has more than two decimal places")
    return int(value * 100)


def from_minor(minor: int) -> Decimal:
    return (Decimal(minor) / 100).quantize(CENT)


def format_amount(amount: Decimal, currency: str) -> str:
    return f"{quantize(amount):,.2f} {currency}"
