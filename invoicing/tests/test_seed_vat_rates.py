"""Migration 0003 seeds standard VAT rates; a German invoice uses 19 %, not DEFAULT_TAX_RATE."""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest
from django.apps import apps

from invoicing import services
from invoicing.models import TaxRate
from invoicing.tests.factories import order_placed
from invoicing.tests.test_services import pdf_text

pytestmark = pytest.mark.django_db

seed = importlib.import_module("invoicing.migrations.0002_seed_vat_rates")


@pytest.fixture
def seeded():
    # The migration ran when the test database was created, but a transactional test elsewhere
    # may have flushed the table since; the seed is idempotent, so run it again.
    seed.seed_vat_rates(apps, None)


def test_an_invoice_for_a_german_address_uses_19_percent(seeded, settings):
    settings.DEFAULT_TAX_RATE = Decimal("0.20")
    invoice = services.invoice_issue(**order_placed(country="DE"))
    assert invoice.tax_rate == Decimal("0.1900")
    assert invoice.tax == Decimal("201.39")  # 0.19 x 1059.97 = 201.3943 (shipping free)
    invoice = services.invoice_render(invoice_id=invoice.pk)
    assert "VAT 19 % of 1059.97 EUR" in pdf_text(invoice.pdf.name)


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
