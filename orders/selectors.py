"""Reads of the orders app."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from orders.models import (
    Checkout,
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


def checkout_totals(*, checkout: Checkout) -> dict[str, str]:
    """The checkout's totals as the API gives an order's (subtotal + shipping + tax == total)."""
    lines = [
        PriceLine(line["sku"], line["name"], int(line["quantity"]), Decimal(line["unit_price"]))
        for line in checkout.lines
    ]
    quote = price_quote(
        lines=lines, country=checkout.shipping_address["country"], currency=checkout.currency
    )
    return quote.totals()


def order_for_checkout(*, checkout: Checkout) -> Order:
    """The order a placed checkout became (same id)."""
    return Order.objects.get(pk=checkout.pk)


def checkout_for_token(*, token: str) -> Checkout | None:
    """The checkout a storefront form (its hidden token) started, if any."""
    if not token or len(token) > 64:
        return None
    return Checkout.objects.filter(token=token).first()


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


def price_quote(
    *, lines: Iterable[PriceLine], country: str, currency: str = "", cached: bool = False
) -> Quote:
    """The exact totals of these lines shipped to `country`: what the cart and the checkout show
    and what the placed order stores, charges and invoices (one code path, orders/pricing.py).
    `cached`: the country's tax rule and shipping rule from this process's cache (the API's
    checkout; `price_rules_cached`)."""
    country = country.upper()
    currency = currency or settings.SHOP_CURRENCY
    if not cached:
        return calculate_quote(
            lines=lines,
            country=country,
            currency=currency,
            tax=tax_rule_for(country=country),
            shipping=shipping_rule_for(country=country),
            prices_include_tax=settings.PRICES_INCLUDE_TAX,
        )
    tax, shipping = price_rules_cached(country=country)
    # A Quote is a pure function of these (frozen values): the same cart priced again is a
    # lookup (the popular product's checkout, issue 11).
    key = (tuple(lines), country, currency, tax, shipping, settings.PRICES_INCLUDE_TAX)
    quote = _quotes.get(key)
    if quote is None:
        quote = calculate_quote(
            lines=key[0],
            country=country,
            currency=currency,
            tax=tax,
            shipping=shipping,
            prices_include_tax=key[5],
        )
        if len(_quotes) >= QUOTES_CACHED_MAX:
            _quotes.clear()
        _quotes[key] = quote
    return quote


# --- Per-process caches of the API checkout (issue 11) ----------------------------------------
# Plain dicts read and replaced whole under the GIL (a gunicorn worker's threads share them).
# Cleared in this process whenever a Product, TaxRate or ShippingZone is saved or deleted here
# (orders.apps); other processes see a change when their entry expires (see each function).

_products: dict[str, tuple[float, Product]] = {}
PRODUCT_TTL_FACTOR = 12  # products: 60 s with the default 5 s
PRODUCTS_CACHED_MAX = 5000
_whole_catalog_due = [0.0]  # when a miss may read the whole catalog again (time.monotonic())
_price_rules: dict[str, tuple[float, TaxRule, ShippingRule]] = {}


_quotes: dict[tuple, Quote] = {}
QUOTES_CACHED_MAX = 2000


def checkout_caches_clear() -> None:
    _whole_catalog_due[0] = 0.0
    _products.clear()
    _price_rules.clear()
    _quotes.clear()


def price_rules_cached(*, country: str) -> tuple[TaxRule, ShippingRule]:
    """The country's (TaxRule, ShippingRule), reused for CHECKOUT_CATALOG_CACHE_SECONDS: an
    operator's edit of a tax rate or a shipping zone reaches the API's new orders within that
    time (each order stores and charges the totals it was quoted, exact either way)."""
    now = time.monotonic()
    hit = _price_rules.get(country)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]
    tax, shipping = tax_rule_for(country=country), shipping_rule_for(country=country)
    ttl = settings.CHECKOUT_CATALOG_CACHE_SECONDS
    if ttl > 0:
        _price_rules[country] = (now + ttl, tax, shipping)
    return tax, shipping


def checkout_products(*, skus: Iterable[str], fresh: bool = False) -> dict[str, Product]:
    """The active products of these SKUs ({sku: Product}; unknown or withdrawn ones are left
    out), reused for PRODUCT_TTL_FACTOR x CHECKOUT_CATALOG_CACHE_SECONDS unless `fresh`. Safe
    to be stale: the checkout's reservation (`orders_stock_take`) takes the stock only of a
    product still active with the same SKU, name, price and currency, and the checkout is
    redone with `fresh=True` otherwise. Never use the cached `stock`: it is not maintained.

    A miss reads the whole active catalog when it has at most PRODUCTS_CACHED_MAX products (one
    query per process and TTL instead of one per SKU), else only the SKUs asked for."""
    now = time.monotonic()
    found: dict[str, Product] = {}
    missing = []
    for sku in skus:
        hit = None if fresh else _products.get(sku)
        if hit is not None and hit[0] > now:
            found[sku] = hit[1]
        else:
            missing.append(sku)
    if not missing:
        return found
    # Longer than the price rules: a stale product costs one redo, never a wrong order.
    ttl = settings.CHECKOUT_CATALOG_CACHE_SECONDS * PRODUCT_TTL_FACTOR
    if ttl <= 0:
        found.update((p.sku, p) for p in Product.objects.filter(sku__in=missing, is_active=True))
        return found
    rows = None
    if not fresh and _whole_catalog_due[0] <= now:
        _whole_catalog_due[0] = now + ttl  # tried at most once per TTL
        rows = list(Product.objects.filter(is_active=True).order_by()[: PRODUCTS_CACHED_MAX + 1])
        if len(rows) > PRODUCTS_CACHED_MAX:
            rows = None  # a large catalog: SKU by SKU
        else:
            _products.clear()
    if rows is None:
        if len(_products) + len(missing) > PRODUCTS_CACHED_MAX:
            _products.clear()
        rows = Product.objects.filter(sku__in=missing, is_active=True)
    loaded = {product.sku: product for product in rows}
    for sku, product in loaded.items():
        _products[sku] = (now + ttl, product)
    for sku in missing:
        if sku in loaded:
            found[sku] = loaded[sku]
        else:
            _products.pop(sku, None)  # unknown or withdrawn: asked again next time
    return found


# --- The operator's desk (desk/) -------------------------------------------------------------


def order_for_desk(*, order_id) -> Order | None:
    return order_detail_queryset().filter(pk=order_id).first()


def order_ids_matching(*, term: str) -> list:
    """Orders a customer or the bank may quote: number, email, invoice, credit-note or tracking
    number, or the order id itself."""
    from django.db.models import Q

    term = term.strip()
    if not term:
        return []
    query = (
        Q(number__iexact=term)
        | Q(email__iexact=term)
        | Q(invoice_number__iexact=term)
        | Q(tracking_number__iexact=term)
        | Q(credit_notes__number__iexact=term)
    )
    try:
        query |= Q(pk=uuid.UUID(term))
    except ValueError:
        pass
    return list(Order.objects.filter(query).values_list("pk", flat=True).distinct()[:200])


def order_numbers(*, order_ids) -> dict[str, str]:
    """{str(order id): order number} for the ids that are orders."""
    ids = []
    for value in order_ids:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return {
        str(pk): number
        for pk, number in Order.objects.filter(pk__in=ids).values_list("pk", "number")
    }


def order_counts_by_status() -> dict[str, int]:
    from django.db.models import Count

    rows = Order.objects.values("status").annotate(n=Count("pk")).order_by()
    return {row["status"]: row["n"] for row in rows}


def orders_per_hour(*, since) -> list[tuple]:
    """[(hour (aware datetime, truncated), count)] of orders placed since `since`."""
    from django.db.models import Count
    from django.db.models.functions import TruncHour

    rows = (
        Order.objects.filter(created_at__gte=since)
        .annotate(hour=TruncHour("created_at"))
        .values("hour")
        .annotate(n=Count("pk"))
        .order_by("hour")
    )
    return [(row["hour"], row["n"]) for row in rows]


def orders_stuck() -> QuerySet[Order]:
    return Order.objects.filter(stuck_since__isnull=False).order_by("stuck_since")


def orders_placed_count() -> int:
    return Order.objects.count()


def lines_amount(*, order: Order, quantities: dict[int, int]):
    """What `quantities` ({line id: units}) of the order's lines cost the customer, tax
    included, to the cent (half up, orders.pricing): what a refund of those units gives back.
    Catalog prices with tax included (the order says how it was priced) are that already; net
    prices get the order's tax rate on top."""
    from decimal import Decimal

    from orders.pricing import round_half_up, tax_on

    lines = {line.pk: line for line in order.lines.all()}
    amount = Decimal("0")
    for line_id, units in quantities.items():
        line = lines.get(int(line_id))
        if line is None:
            raise ValueError(f"line {line_id} is not a line of order {order.number}")
        if not 0 <= int(units) <= line.quantity:
            raise ValueError(f"{line.sku}: at most {line.quantity} unit(s)")
        amount += line.unit_price * int(units)
    if not order.prices_include_tax and order.tax_rate:
        amount += tax_on(amount, order.tax_rate)
    return round_half_up(amount)


def order_statuses() -> list[tuple[str, str]]:
    """[(status, label)] in the order of the lifecycle."""
    return list(Order.Status.choices)


def orders_by_ids(*, order_ids) -> QuerySet[Order]:
    return Order.objects.filter(pk__in=list(order_ids)).order_by("-created_at")


def order_for_lookup(*, email: str, number: str) -> Order | None:
    """The order with this number placed with this email address (case-insensitive), or None."""
    return Order.objects.filter(number=number.upper(), email__iexact=email.strip()).first()


def checkout_counts_by_status() -> dict[str, int]:
    """Checkouts (stock held while a card is authorized) in each status."""
    from django.db.models import Count

    rows = Checkout.objects.values("status").annotate(n=Count("pk")).order_by()
    found = {value: 0 for value, _label in Checkout.Status.choices}
    found.update({row["status"]: row["n"] for row in rows})
    return found
