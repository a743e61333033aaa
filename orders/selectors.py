"""Reads of the orders app."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from orders.models import (
    Order,
    OrderCreditNote,
    OrderLine,
    Product,
    ShippingZone,
    TaxRate,
    TimelineEntry,
)
from orders.pricing import PriceLine, Quote, ShippingRule, TaxRule, calculate_quote
from orders.tokens import order_token_valid


def product_list(*, search: str = "") -> QuerySet[Product]:
    qs = Product.objects.filter(is_active=True).order_by("name", "id")
    if search:
        qs = qs.filter(name__icontains=search)
    return qs


def order_detail_queryset() -> QuerySet[Order]:
    return Order.objects.prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("id")),
        Prefetch("credit_notes", queryset=OrderCreditNote.objects.order_by("issued_at", "id")),
        Prefetch("timeline", queryset=TimelineEntry.objects.order_by("at", "id")),
    )


def order_for_viewer(*, order_id, user, token: str | None) -> Order | None:
    """The order if this viewer may see it (token holder, owner or staff), else None (-> 404)."""
    order = order_detail_queryset().filter(pk=order_id).first()
    if order is None:
        return None
    if order_token_valid(order.id, token):
        return order
    if (
        user is not None
        and user.is_authenticated
        and (user.is_staff or order.customer_id == user.pk)
    ):
        return order
    return None


def orders_of_customer(*, user) -> QuerySet[Order]:
    return Order.objects.filter(customer=user).prefetch_related("lines").order_by("-created_at")


def order_for_checkout_token(*, token: str) -> Order | None:
    """The order a storefront checkout form (its one-time token) already placed, if any."""
    return Order.objects.filter(idempotency_key=checkout_idempotency_key(token)).first()


def checkout_idempotency_key(token: str) -> str:
    return f"storefront-checkout:{token}"


# --- Prices ----------------------------------------------------------------------------------


def tax_rule_for(*, country: str) -> TaxRule:
    """The destination country's TaxRate row, else settings.DEFAULT_TAX_RATE (named VAT)."""
    row = TaxRate.objects.filter(country=country.upper()).first()
    if row is None:
        return TaxRule(name="VAT", rate=settings.DEFAULT_TAX_RATE, applies_to_shipping=True)
    return TaxRule(name=row.name, rate=row.rate, applies_to_shipping=row.applies_to_shipping)


def shipping_rule_for(*, country: str) -> ShippingRule:
    """The zone listing the country, else the zone without countries, else the settings."""
    country = country.upper()
    zones = list(ShippingZone.objects.all())
    zone = next((z for z in zones if country in z.country_codes), None) or next(
        (z for z in zones if not z.country_codes), None
    )
    if zone is None:
        return ShippingRule(
            zone="Standard", fee=settings.SHIPPING_FEE, free_from=settings.FREE_SHIPPING_THRESHOLD
        )
    return ShippingRule(zone=zone.name, fee=zone.fee, free_from=zone.free_shipping_threshold)


def price_quote(*, lines: Iterable[PriceLine], country: str, currency: str = "") -> Quote:
    """The exact totals of these lines shipped to `country`: what the cart and the checkout show
    and what the placed order stores, charges and invoices (one code path, orders/pricing.py)."""
    country = country.upper()
    return calculate_quote(
        lines=lines,
        country=country,
        currency=currency or settings.SHOP_CURRENCY,
        tax=tax_rule_for(country=country),
        shipping=shipping_rule_for(country=country),
        prices_include_tax=settings.PRICES_INCLUDE_TAX,
    )
