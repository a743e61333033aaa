from django.db import models
from django.utils import timezone


class TaxRate(models.Model):
    """VAT/sales tax by destination country, edited by operators in the admin.

    Prices are net: the rate applies to the goods and, when `applies_to_shipping`, to the shipping
    fee too (docs/invoicing.md). A country without a row uses settings.DEFAULT_TAX_RATE."""

    country = models.CharField(max_length=2, unique=True, help_text="ISO 3166-1 alpha-2")
    rate = models.DecimalField(max_digits=5, decimal_places=4, help_text="0.1900 for 19 %")
    name = models.CharField(max_length=50, default="VAT")
    applies_to_shipping = models.BooleanField(default=True)

    class Meta:
        ordering = ("country",)

    def __str__(self) -> str:
        return f"{self.country} {self.name} {self.rate:%}"


class ShippingZone(models.Model):
    """A shipping fee by destination zone, with an optional free-shipping threshold.

    A zone lists its countries; the zone with no countries is the fallback for every other one.
    Without any zone, settings.SHIPPING_FEE and FREE_SHIPPING_THRESHOLD apply."""

    name = models.CharField(max_length=50, unique=True)
    countries = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Comma-separated ISO codes (DE,AT,FR). Empty: every country of no other zone.",
    )
    fee = models.DecimalField(max_digits=10, decimal_places=2)
    free_shipping_threshold = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Goods subtotal (net) from which shipping is free. Empty: never free.",
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @property
    def country_codes(self) -> set[str]:
        return {c.strip().upper() for c in self.countries.split(",") if c.strip()}


class NumberSequence(models.Model):
    """A gap-free counter per series and year, incremented under a row lock inside the issuing
    transaction: a rollback gives the number back, concurrent issuers wait their turn."""

    series = models.CharField(max_length=16)
    year = models.PositiveIntegerField()
    last_value = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "year"], name="number_sequence_series_year")
        ]

    def __str__(self) -> str:
        return f"{self.series}{self.year}: {self.last_value}"


class IssuedDocumentError(RuntimeError):
    """An issued invoice or credit note is immutable: only its PDF may be attached, once."""


# Fields set once, when the PDF is rendered (after the number was allocated and committed).
PDF_FIELDS = frozenset({"pdf", "pdf_sha256", "pdf_rendered_at"})


class ImmutableDocument(models.Model):
    """Refuses every change of a saved row except attaching its PDF while none is attached, and
    refuses deletion. Queryset `update()` bypasses this: nothing in the code uses it on them."""

    class Meta:
        abstract = True

    def save(self, *args, update_fields=None, **kwargs):
        if self.pk is not None and not self._state.adding:
            stored = type(self).objects.filter(pk=self.pk).values_list("pdf", flat=True).first()
            if not update_fields or not set(update_fields) <= PDF_FIELDS or stored:
                raise IssuedDocumentError(f"{self} is issued and cannot be changed")
        super().save(*args, update_fields=update_fields, **kwargs)

    def delete(self, *args, **kwargs):
        raise IssuedDocumentError(f"{self} is issued and cannot be deleted")


class Invoice(ImmutableDocument):
    order_id = models.UUIDField(unique=True)
    order_number = models.CharField(max_length=16)
    number = models.CharField(max_length=32, unique=True)
    issued_at = models.DateTimeField(default=timezone.now)
    currency = models.CharField(max_length=3)
    email = models.EmailField()
    buyer_name = models.CharField(max_length=200)
    billing_address = models.JSONField(default=dict)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    shipping = models.DecimalField(max_digits=12, decimal_places=2)
    shipping_zone = models.CharField(max_length=50, blank=True)
    tax_name = models.CharField(max_length=50, default="VAT")
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4)
    tax_base = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    tax = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    pdf = models.FileField(upload_to="invoices/", blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    pdf_rendered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-issued_at",)

    def __str__(self) -> str:
        return self.number


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    sku = models.CharField(max_length=32)
    description = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    line_total = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise IssuedDocumentError(f"line {self.pk} of an issued invoice cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise IssuedDocumentError(f"line {self.pk} of an issued invoice cannot be deleted")


class CreditNote(ImmutableDocument):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(max_length=32, unique=True)
    source = models.CharField(
        max_length=100, help_text="What caused it (payment failure, refund id): one note each."
    )
    reason = models.CharField(max_length=255)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    issued_at = models.DateTimeField(default=timezone.now)
    pdf = models.FileField(upload_to="credit-notes/", blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    pdf_rendered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-issued_at",)
        constraints = [
            models.UniqueConstraint(fields=["invoice", "source"], name="credit_note_invoice_source")
        ]

    def __str__(self) -> str:
        return self.number
