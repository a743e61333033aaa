from decimal import Decimal

import pytest

from invoicing.models import ShippingZone, TaxRate
from invoicing.pricing import PricingError, calculate_totals, lines_from_snapshot, rate_percent
from invoicing.tests.factories import item

pytestmark = pytest.mark.django_db


# A country without a seeded TaxRate row (migration 0003 seeds the EU, GB, CH and NO), so
# settings.DEFAULT_TAX_RATE applies.
NO_TAX_ROW = "JP"


def totals(items, country=NO_TAX_ROW):
    return calculate_totals(lines=lines_from_snapshot(items), country=country)


def test_default_fee_below_threshold_and_tax_on_goods_and_shipping(settings):
    settings.SHIPPING_FEE = Decimal("4.90")
    settings.FREE_SHIPPING_THRESHOLD = Decimal("100.00")
    settings.DEFAULT_TAX_RATE = Decimal("0.20")
    t = totals([item("A", "29.99", 2)])
    assert (t.subtotal, t.shipping, t.tax_base) == (
        Decimal("59.98"),
        Decimal("4.90"),
        Decimal("64.88"),
    )
    assert t.tax == Decimal("12.98")  # 12.976 rounds half-up
    assert t.total == Decimal("77.86")


def test_free_shipping_from_the_threshold_inclusive(settings):
    settings.FREE_SHIPPING_THRESHOLD = Decimal("100.00")
    assert totals([item("A", "100.00")]).shipping == Decimal("0.00")
    assert totals([item("A", "99.99")]).shipping == Decimal("4.90")


def test_zone_by_country_with_fallback_zone():
    ShippingZone.objects.create(
        name="EU", countries="DE, at,FR", fee="5.00", free_shipping_threshold="50.00"
    )
    ShippingZone.objects.create(name="World", countries="", fee="19.00")
    assert totals([item("A", "10.00")], "AT").shipping == Decimal("5.00")
    assert totals([item("A", "60.00")], "DE").shipping == Decimal("0.00")
    world = totals([item("A", "600.00")], "US")
    assert (world.shipping, world.shipping_zone) == (Decimal("19.00"), "World")  # never free


def test_tax_table_by_country_half_up_and_shipping_exempt():
    TaxRate.objects.create(country="US", rate="0.0725", name="Sales tax", applies_to_shipping=False)
    ShippingZone.objects.create(name="World", countries="", fee="10.00")
    t = totals([item("A", "0.20")], "US")  # 0.20 x 0.0725 = 0.0145 -> 0.01
    assert (t.tax_base, t.tax, t.total) == (Decimal("0.20"), Decimal("0.01"), Decimal("10.21"))
    t = totals([item("A", "2.00")], "US")  # 0.145 -> 0.15 (half-up, not banker's 0.14)
    assert t.tax == Decimal("0.15")
    assert rate_percent(Decimal("0.0725")) == "7.25"
    assert rate_percent(Decimal("0.2000")) == "20"


def test_tax_is_rounded_once_on_the_base_not_per_line(settings):
    settings.DEFAULT_TAX_RATE = Decimal("0.19")
    settings.FREE_SHIPPING_THRESHOLD = Decimal("0")
    # Per line: 0.19 x 0.05 = 0.0095 -> 0.01, three times 0.03; on the base 0.15 -> 0.0285 -> 0.03.
    t = totals([item("A", "0.05"), item("B", "0.05"), item("C", "0.05")])
    assert t.tax == Decimal("0.03")
    t = totals([item("A", "0.02"), item("B", "0.02"), item("C", "0.02")])
    assert t.tax == Decimal("0.01")  # 0.0114 -> 0.01, where per line would give 0.00


@pytest.mark.parametrize(
    "bad",
    [
        {"sku": "A", "name": "A", "quantity": 2, "unit_price": "1.00", "line_total": "2.01"},
        {"sku": "A", "name": "A", "quantity": 1, "unit_price": "1.001", "line_total": "1.001"},
        {"sku": "A", "name": "A", "quantity": 0, "unit_price": "1.00", "line_total": "0.00"},
    ],
)
def test_a_snapshot_that_does_not_add_up_is_refused(bad):
    with pytest.raises(PricingError):
        lines_from_snapshot([bad])
