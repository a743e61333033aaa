from django.db import models
from django.utils import timezone


class StripeCustomer(models.Model):
    email = models.EmailField(unique=True)
    stripe_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.email} ({self.stripe_id})"


class Payment(models.Model):
    """The charge of one order: created on order.placed, charged on invoice.issued.

    One row per order (unique), so a redelivered or concurrent invoice.issued finds the attempt
    already recorded instead of creating a second PaymentIntent."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        ACTION_REQUIRED = "action_required"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REFUNDED = "refunded"
        PARTIALLY_REFUNDED = "partially_refunded"

    order_id = models.UUIDField(unique=True)
    order_number = models.CharField(max_length=16)
    order_url = models.CharField(max_length=500, blank=True)
    email = models.EmailField()
    payment_method = models.CharField(max_length=255)
    # From order.placed: the order's totals, fixed at checkout; the invoice must document exactly
    # these (an order placed before totals were fixed: the sum of the line totals, no total).
    expected_subtotal_minor = models.PositiveBigIntegerField(null=True, blank=True)
    expected_total_minor = models.PositiveBigIntegerField(null=True, blank=True)
    customer = models.ForeignKey(StripeCustomer, null=True, blank=True, on_delete=models.PROTECT)
    currency = models.CharField(max_length=3)
    invoice_number = models.CharField(max_length=32, blank=True)
    amount_minor = models.PositiveBigIntegerField(null=True, blank=True)
    refunded_minor = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.PENDING)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    action_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [
            models.Index(
                fields=["action_expires_at"],
                condition=models.Q(status="action_required"),
                name="payment_action_expiry_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.order_number} {self.status}"

    @property
    def refundable_minor(self) -> int:
        if self.status not in (self.Status.SUCCEEDED, self.Status.PARTIALLY_REFUNDED):
            return 0
        return (self.amount_minor or 0) - self.refunded_minor


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    source = models.CharField(
        max_length=100, help_text="Why (shipment_failed, admin:<id>): one each."
    )
    reason = models.CharField(max_length=255)
    amount_minor = models.PositiveBigIntegerField()
    stripe_refund_id = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=["payment", "source"], name="refund_payment_source")
        ]

    def __str__(self) -> str:
        return f"refund {self.amount_minor} of {self.payment.order_number}"


class StripeEvent(models.Model):
    """A webhook event received from Stripe: its id is the deduplication key."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255, blank=True)
    order_id = models.UUIDField(null=True, blank=True, db_index=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-received_at",)

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
