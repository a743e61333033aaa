"""Tax rates and shipping zones now belong to orders (it fixes an order's totals at checkout).

Forwards: copy every TaxRate and ShippingZone row invoicing had (an operator's edits are kept),
then seed the standard VAT rates (as of 2026) of the EU member states plus GB, CH and NO where no
row exists. invoicing/0003 drops its tables after this. Backwards: copy the rows back (invoicing's
tables are recreated first, empty) and remove what this migration seeded unchanged.
docs/pricing.md lists the rates.
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
TAX_FIELDS = ("country", "rate", "name", "applies_to_shipping")
ZONE_FIELDS = ("name", "countries", "fee", "free_shipping_threshold")


def _copy(source, target, fields, key):
    for row in source.objects.all():
        values = {f: getattr(row, f) for f in fields}
        target.objects.get_or_create(**{key: values.pop(key)}, defaults=values)


def seed_vat_rates(apps, schema_editor):
    TaxRate = apps.get_model("orders", "TaxRate")
    for country, rate in STANDARD_VAT_RATES_2026.items():
        TaxRate.objects.get_or_create(
            country=country,
            defaults={"rate": Decimal(rate), "name": NAME, "applies_to_shipping": True},
        )


def unseed_vat_rates(apps, schema_editor):
    TaxRate = apps.get_model("orders", "TaxRate")
    for country, rate in STANDARD_VAT_RATES_2026.items():
        TaxRate.objects.filter(
            country=country, rate=Decimal(rate), name=NAME, applies_to_shipping=True
        ).delete()


def forwards(apps, schema_editor):
    _copy(apps.get_model("invoicing", "TaxRate"), apps.get_model("orders", "TaxRate"),
          TAX_FIELDS, "country")  # fmt: skip
    _copy(apps.get_model("invoicing", "ShippingZone"), apps.get_model("orders", "ShippingZone"),
          ZONE_FIELDS, "name")  # fmt: skip
    seed_vat_rates(apps, schema_editor)


def backwards(apps, schema_editor):
    _copy(apps.get_model("orders", "TaxRate"), apps.get_model("invoicing", "TaxRate"),
          TAX_FIELDS, "country")  # fmt: skip
    _copy(apps.get_model("orders", "ShippingZone"), apps.get_model("invoicing", "ShippingZone"),
          ZONE_FIELDS, "name")  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0002_pricing_tables_and_order_totals"),
        ("invoicing", "0002_seed_vat_rates"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
