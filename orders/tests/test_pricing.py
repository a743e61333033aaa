"""orders/pricing.py: exact totals in both display modes, half-up to the cent, every seeded rate."""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest

from orders.models import ShippingZone, TaxRate
from orders.pricing import (
    PriceLine,
    ShippingRule,
    TaxRule,
    calculate_quote,
    rate_percent,
    round_half_up,
    tax_included,
)
from orders.selectors import price_quote

seed = importlib.import_module("orders.migrations.0003_seed_tax_rates_and_copy_pricing_tables")
RATES = {country: Decimal(rate) for country, rate in seed.STANDARD_VAT_RATES_2026.items()}
D = Decimal
STANDARD = ShippingRule(zone="Standard", fee=D("4.90"), free_from=D("100.00"))


def line(price: str, quantity: int = 1, sku: str = "A") -> PriceLine:
    return PriceLine(sku=sku, name=sku, quantity=quantity, unit_price=D(price))


def quote(lines, *, rate="0.20", gross=True, shipping=STANDARD, taxed_shipping=True):
    return calculate_quote(
        lines=lines,
        country="XX",
        currency="EUR",
        tax=TaxRule(name="VAT", rate=D(rate), applies_to_shipping=taxed_shipping),
        shipping=shipping,
        prices_include_tax=gross,
    )


def test_the_issue_329_97_is_what_is_paid_in_both_modes():
    # Issue 8: the checkout said 329.97, the card was charged 392.66 (net prices + 19 % VAT
    # added on the invoice). Now the checkout shows what is charged, whichever the setting.
    gross = quote([line("329.97")], rate="0.19", gross=True)
    assert (gross.goods_shown, gross.shipping_shown, gross.total) == (
        D("329.97"),
        D("0.00"),
        D("329.97"),
    )
    assert (gross.subtotal, gross.tax) == (D("277.29"), D("52.68"))  # 329.97 x 19/119 = 52.684
    net = quote([line("329.97")], rate="0.19", gross=False)
    assert (net.subtotal, net.tax, net.total) == (D("329.97"), D("62.69"), D("392.66"))


def test_gross_extracts_the_vat_once_on_goods_and_once_on_shipping():
    q = quote([line("29.99", 2)], rate="0.19")  # 59.98 < 100: shipping 4.90 (gross)
    assert (q.goods_shown, q.shipping_shown, q.total) == (D("59.98"), D("4.90"), D("64.88"))
    # 59.98 x 19/119 = 9.5766 -> 9.58; 4.90 x 19/119 = 0.7823 -> 0.78
    assert (q.subtotal, q.shipping, q.tax) == (D("50.40"), D("4.12"), D("10.36"))
    assert q.tax_base == D("54.52") and q.subtotal + q.shipping + q.tax == q.total


def test_net_adds_the_vat_on_the_whole_base_rounded_once():
    q = quote([line("29.99", 2)], rate="0.20", gross=False)
    assert (q.subtotal, q.shipping, q.tax_base) == (D("59.98"), D("4.90"), D("64.88"))
    assert (q.tax, q.total) == (D("12.98"), D("77.86"))  # 12.976 -> 12.98
    # Per line it would be 3 x 0.01; on the base 0.15 x 0.19 = 0.0285 -> 0.03 once.
    free = ShippingRule(zone="Z", fee=D("4.90"), free_from=D("0"))
    q = quote([line("0.05", sku=s) for s in "ABC"], rate="0.19", gross=False, shipping=free)
    assert q.tax == D("0.03")
    q = quote([line("0.02", sku=s) for s in "ABC"], rate="0.19", gross=False, shipping=free)
    assert q.tax == D("0.01")  # 0.0114, where per line would give 0.00


def test_half_cents_round_up_never_to_even():
    free = ShippingRule(zone="Z", fee=D("0"), free_from=None)
    # Gross 0.03 at 20 %: 0.03 / 6 = 0.005 exactly -> 0.01 (banker's rounding would give 0.00).
    q = quote([line("0.03")], rate="0.20", shipping=free)
    assert (q.tax, q.subtotal, q.total) == (D("0.01"), D("0.02"), D("0.03"))
    # Gross 0.15 at 20 %: 0.025 -> 0.03 (half-even: 0.02).
    assert quote([line("0.15")], rate="0.20", shipping=free).tax == D("0.03")
    # Net 1.50 at 19 %: 0.285 -> 0.29 (half-even: 0.28); 0.50 at 21 %: 0.105 -> 0.11.
    assert quote([line("1.50")], rate="0.19", gross=False, shipping=free).tax == D("0.29")
    assert quote([line("0.50")], rate="0.21", gross=False, shipping=free).tax == D("0.11")
    assert round_half_up(D("0.004999")) == D("0.00") and round_half_up(D("0.005")) == D("0.01")


def test_free_shipping_from_the_threshold_inclusive_compared_with_the_shown_subtotal():
    assert quote([line("99.99")]).shipping_shown == D("4.90")
    assert quote([line("100.00")]).shipping_shown == D("0.00")
    assert quote([line("100.00")], gross=False).shipping_shown == D("0.00")
    never = ShippingRule(zone="World", fee=D("19.00"), free_from=None)
    assert quote([line("5000.00")], shipping=never).shipping_shown == D("19.00")
    below = quote([line("60.00")])
    assert below.free_shipping_missing == D("40.00")
    assert quote([line("100.00")]).free_shipping_missing is None


def test_untaxed_shipping_keeps_its_fee_net():
    q = quote([line("10.00")], rate="0.0725", taxed_shipping=False)
    assert (q.shipping, q.shipping_shown) == (D("4.90"), D("4.90"))
    assert q.tax == tax_included(D("10.00"), D("0.0725")) == D("0.68")  # 0.6760
    assert q.tax_base == q.subtotal and q.total == D("14.90")
    assert rate_percent(D("0.0725")) == "7.25" and rate_percent(D("0.2550")) == "25.5"


AMOUNTS = ["0.01", "0.03", "0.15", "0.99", "1.50", "9.99", "33.33", "99.99", "100.00", "100.01",
           "329.97", "999.99", "1234.56"]  # fmt: skip


@pytest.mark.parametrize("gross", [True, False], ids=["gross", "net"])
@pytest.mark.parametrize("country", sorted(RATES))
def test_every_seeded_rate_adds_up_exactly(country, gross):
    rate = RATES[country]
    for amount in AMOUNTS:
        for quantity in (1, 3, 1000):
            lines = [line(amount, quantity), line("0.01", 7, sku="B")]
            q = quote(lines, rate=str(rate), gross=gross)
            goods = D(amount) * quantity + D("0.07")
            assert q.goods_shown == goods
            assert q.subtotal + q.shipping + q.tax == q.total
            assert min(q.subtotal, q.shipping, q.tax) >= 0
            fee = D("0.00") if goods >= D("100.00") else D("4.90")
            assert q.shipping_shown == fee
            if gross:
                assert q.total == goods + fee  # the price shown is the price paid
                exact = (goods * rate / (1 + rate)), (fee * rate / (1 + rate))
                assert q.tax == sum(round_half_up(x) for x in exact)
            else:
                assert (q.subtotal, q.shipping) == (goods, fee)
                assert q.tax == round_half_up((goods + fee) * rate)


@pytest.mark.django_db
def test_price_quote_reads_the_tables_zone_then_fallback_then_settings(settings):
    settings.PRICES_INCLUDE_TAX = True
    settings.SHIPPING_FEE, settings.FREE_SHIPPING_THRESHOLD = D("4.90"), D("100.00")
    settings.DEFAULT_TAX_RATE = D("0.20")
    TaxRate.objects.update_or_create(country="DE", defaults={"rate": D("0.1900"), "name": "MwSt"})
    lines = [line("60.00")]
    de = price_quote(lines=lines, country="de")
    assert (de.country, de.tax_name, de.tax_rate, de.shipping_zone) == (
        "DE",
        "MwSt",
        D("0.1900"),
        "Standard",
    )
    assert de.shipping_shown == D("4.90")
    jp = price_quote(lines=lines, country="JP")  # no row: DEFAULT_TAX_RATE
    assert (jp.tax_name, jp.tax_rate) == ("VAT", D("0.20"))
    ShippingZone.objects.create(
        name="EU", countries="DE, at,FR", fee="5.95", free_shipping_threshold="50.00"
    )
    ShippingZone.objects.create(name="World", countries="", fee="19.00")
    assert price_quote(lines=lines, country="DE").shipping_shown == D("0.00")  # >= 50
    assert price_quote(lines=[line("10.00")], country="AT").shipping_shown == D("5.95")
    world = price_quote(lines=[line("600.00")], country="US")
    assert (world.shipping_zone, world.shipping_shown) == ("World", D("19.00"))  # never free
