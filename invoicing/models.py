from django.db import models
from django.utils import timezone


class TaxRate(models.Model):
    """VAT/sales tax by destination country, edited by operators in the admin."""

    country = models.CharField(max_length=2, unique=True)
    rate = models.DecimalField(max_digits=5, decimal_places=4, help_text="0.1900 for 19 %")
    name = models.CharField(max_length=50, default="VAT")

    class Meta:
        ordering = ("country",)

    def __str__(self) -> str:
        return f"{self.country} {self.name} {self.rate:%}"


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


class Invoice(models.Model):
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
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4)
    tax = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    pdf = models.FileField(upload_to="invoices/", blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ("-issued_at",)

    def __str__(self) -> str:
        return self.number


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=32)
    description = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    line_total = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"


class CreditNote(models.Model):
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

    class Meta:
        ordering = ("-issued_at",)
        constraints = [
            models.UniqueConstraint(fields=["invoice", "source"], name="credit_note_invoice_source")
        ]

    def __str__(self) -> str:
        return self.number
