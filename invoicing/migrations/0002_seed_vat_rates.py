"""Seed the standard VAT rates (as of 2026) of the EU member states plus GB, CH and NO.

Without rows every destination got settings.DEFAULT_TAX_RATE (20 %), so a German invoice said
"VAT 20 %". Rows that already exist are left as they are (an operator may have edited them);
reversing removes only rows still exactly as seeded here. docs/invoicing.md lists the rates.
"""

from decimal import Decimal

from django.db import migrations

# Standard rates only; reduced rates (food, books, ...) are not modelled. Named "VAT" because the
# documents are in English; operators can rename a row in the admin (e.g. "MwSt").
STANDARD_VAT_RATES_2026 = {
    "AT": "0.2000",
    "BE": "0.2100",
    "BG": "0.2000",
    "CY": "0.1900",
    "CZ": "0.2100",
    "DE": "0.1900",
    "DK": "0.2500",
    "EE": "0.2400",  # 22 % -> 24 % on 1 July 2025
    "ES": "0.2100",
    "FI": "0.2550",  # 24 % -> 25.5 % on 1 September 2024
    "FR": "0.2000",
    "GR": "0.2400",
    "HR": "0.2500",
    "HU": "0.2700",
    "IE": "0.2300",
    "IT": "0.2200",
    "LT": "0.2100",
    "LU": "0.1700",
    "LV": "0.2100",
    "MT": "0.1800",
    "NL": "0.2100",
    "PL": "0.2300",
    "PT": "0.2300",
    "RO": "0.2100",  # 19 % -> 21 % on 1 August 2025
    "SE": "0.2500",
    "SI": "0.2200",
    "SK": "0.2300",  # 20 % -> 23 % on 1 January 2025
    # Outside the EU.
    "GB": "0.2000",
    "CH": "0.0810",
    "NO": "0.2500",
}
NAME = "VAT"


def seed_vat_rates(apps, schema_editor):
    TaxRate = apps.get_model("invoicing", "TaxRate")
    for country, rate in STANDARD_VAT_RATES_2026.items():
        TaxRate.objects.get_or_create(
            country=country,
            defaults={"rate": Decimal(rate), "name": NAME, "applies_to_shipping": True},
        )


def unseed_vat_rates(apps, schema_editor):
    TaxRate = apps.get_model("invoicing", "TaxRate")
    for country, rate in STANDARD_VAT_RATES_2026.items():
        TaxRate.objects.filter(
            country=country, rate=Decimal(rate), name=NAME, applies_to_shipping=True
        ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("invoicing", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(seed_vat_rates, unseed_vat_rates, elidable=False),
    ]
