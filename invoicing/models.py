from django.db import models
from django.utils import timezone


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
    refuses deletion. Queryset `update()` bypasses this: nothing in the code uses it on them
    but `attach_pdf`, which makes that one allowed change."""

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

    def attach_pdf(self, *, path: str, digest: str) -> bool:
        """Record the stored PDF if none is attached yet: one conditional UPDATE (it locks the
        row until commit). False, and nothing written, when another render recorded its PDF
        first."""
        now = timezone.now()
        attached = (
            type(self)
            .objects.filter(pk=self.pk, pdf="")
            .update(pdf=path, pdf_sha256=digest, pdf_rendered_at=now)
        )
        if attached:
            self.pdf.name, self.pdf_sha256, self.pdf_rendered_at = path, digest, now
        return bool(attached)


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
    # How the shop showed the prices (order.placed `pricing`): line prices, goods_shown and
    # shipping_shown include VAT when True; subtotal and shipping above are net either way.
    prices_include_tax = models.BooleanField(default=False)
    goods_shown = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    shipping_shown = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
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
    reason = models.CharField(max_length=255, help_text="The internal cause (for operators).")
    customer_reason = models.CharField(
        max_length=400, blank=True, help_text="The reason as the document states it."
    )
    amount = models.DecimalField(max_digits=12, decimal_places=2, help_text="Gross credited.")
    # What it credits (invoicing/credits.py): the invoice's lines and shipping, the balance left,
    # or an amount; its lines; its net/VAT split per rate; the invoice's balance after it.
    kind = models.CharField(max_length=16, blank=True)
    lines = models.JSONField(default=list, blank=True)
    parts = models.JSONField(default=list, blank=True)
    net = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    tax = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    balance_after = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
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
