from django.db import models
from django.utils import timezone


class StripeCustomer(models.Model):
    email = models.EmailField(unique=True)
    stripe_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.email} ({self.stripe_id})"


class Payment(models.Model):
    """The money of one order: created on order.placed, collected on invoice.issued.

    Two ways in (`kind`): an order placed with a card the checkout page already AUTHORIZED (a
    PaymentIntent with manual capture, `authorized`), which the pipeline captures; or an API order
    with a bare `payment_method` (`charge`), which the pipeline charges after the invoice.

    One row per order (unique), so a redelivered or concurrent invoice.issued finds the attempt
    already recorded instead of creating a second PaymentIntent. `step` records the remote call in
    flight (committed before it starts), so a crash resumes it with the same idempotency key."""

    class Kind(models.TextChoices):
        AUTHORIZED = "authorized", "Authorized at checkout, captured after the invoice"
        CHARGE = "charge", "Charged after the invoice"

    class Status(models.TextChoices):
        PENDING = "pending"
        AUTHORIZED = "authorized"
        PROCESSING = "processing"
        ACTION_REQUIRED = "action_required"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        RELEASED = "released", "Authorization released"
        REFUNDED = "refunded"
        PARTIALLY_REFUNDED = "partially_refunded"

    order_id = models.UUIDField(unique=True)
    order_number = models.CharField(max_length=16)
    order_url = models.CharField(max_length=500, blank=True)
    email = models.EmailField()
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CHARGE)
    payment_method = models.CharField(max_length=255, blank=True)
    # From order.placed: the sum of the line totals, which the invoice's subtotal must equal.
    expected_subtotal_minor = models.PositiveBigIntegerField(null=True, blank=True)
    # From order.placed: the order's total (what the shopper saw), which the invoice must equal.
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
    # The Stripe call in flight ("" when none): committed before the call, cleared with its answer.
    step = models.CharField(max_length=32, blank=True)
    step_started_at = models.DateTimeField(null=True, blank=True)
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
        """What is left to refund, refunds in flight counted as done."""
        if self.status not in (self.Status.SUCCEEDED, self.Status.PARTIALLY_REFUNDED):
            return 0
        in_flight = sum(
            r.amount_minor for r in self.refunds.all() if r.status == Refund.Status.PENDING
        )
        return (self.amount_minor or 0) - self.refunded_minor - in_flight


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
    """A webhook event received from Stripe: its id is the deduplication key. `processed_at` is
    set once it was applied (a failure in between leaves it for Stripe's redelivery)."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255, blank=True)
    order_id = models.UUIDField(null=True, blank=True, db_index=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-received_at",)

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
