"""Migration orders/0003 seeds standard VAT rates (and takes over invoicing's rows): a German
order is taxed at 19 %, not DEFAULT_TAX_RATE."""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest
from django.apps import apps

from orders.models import TaxRate
from orders.pricing import PriceLine
from orders.selectors import price_quote

pytestmark = pytest.mark.django_db

seed = importlib.import_module("orders.migrations.0003_seed_tax_rates_and_copy_pricing_tables")


@pytest.fixture
def seeded():
    # The migration ran when the test database was created, but a transactional test elsewhere
    # may have flushed the table since; the seed is idempotent, so run it again.
    seed.seed_vat_rates(apps, None)


def test_a_german_order_uses_19_percent(seeded, settings):
    settings.DEFAULT_TAX_RATE = Decimal("0.20")
    settings.PRICES_INCLUDE_TAX = False
    quote = price_quote(lines=[PriceLine("A", "A", 1, Decimal("1059.97"))], country="de")
    assert (quote.tax_name, quote.tax_rate) == ("VAT", Decimal("0.1900"))
    assert quote.tax == Decimal("201.39")  # 0.19 x 1059.97 = 201.3943 (shipping free)


def test_seeds_the_eu_gb_ch_and_no():
    assert len(seed.STANDARD_VAT_RATES_2026) == 27 + 3
    for country, rate in {"DE": "0.19", "AT": "0.20", "FI": "0.255", "CH": "0.081"}.items():
        assert Decimal(seed.STANDARD_VAT_RATES_2026[country]) == Decimal(rate)


def test_seeding_keeps_rows_an_operator_edited_and_unseeding_removes_only_its_own(seeded):
    TaxRate.objects.filter(country="DE").update(rate=Decimal("0.1600"), name="MwSt")
    TaxRate.objects.filter(country="AT").delete()
    seed.seed_vat_rates(apps, None)
    assert TaxRate.objects.get(country="DE").rate == Decimal("0.1600")  # not overwritten
    assert TaxRate.objects.get(country="AT").rate == Decimal("0.2000")  # re-created

    TaxRate.objects.create(country="US", rate=Decimal("0.0725"), name="Sales tax")
    seed.unseed_vat_rates(apps, None)
    assert set(TaxRate.objects.values_list("country", flat=True)) == {"DE", "US"}
