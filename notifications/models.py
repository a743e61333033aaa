from django.db import models
from django.utils import timezone


class OrderContact(models.Model):
    """What notifications keeps of an order (from order.placed): whom to write, and the link."""

    order_id = models.UUIDField(primary_key=True)
    order_number = models.CharField(max_length=16)
    email = models.EmailField()
    name = models.CharField(max_length=200, blank=True)
    order_url = models.URLField(max_length=500)
    # What every email may show of the order (from order.placed): items, address, currency,
    # totals; and the invoice once issued (number and totals, from invoice.issued).
    summary = models.JSONField(default=dict, blank=True)
    invoice = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.order_number} <{self.email}>"


class CreditNoteCopy(models.Model):
    """A credit note of an order (from credit_note.issued): attached to the email about what it
    credits (the cancellation, or the refund named by its `source`)."""

    order_id = models.UUIDField(db_index=True)
    number = models.CharField(max_length=32, unique=True)
    source = models.CharField(max_length=100, blank=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    data = models.JSONField(default=dict, blank=True)
    pdf_path = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return self.number


class Notice(models.Model):
    """Something that happened to an order that the customer is told about in one email once its
    credit note exists (a cancellation, a refund): the email is queued when both facts are here,
    whichever event comes first (both handlers lock the order's contact)."""

    order_id = models.UUIDField(db_index=True)
    kind = models.CharField(max_length=40, help_text="The email kind (its log's kind).")
    context = models.JSONField(default=dict, blank=True)
    awaits = models.CharField(
        max_length=100,
        blank=True,
        help_text="The credit note it waits for: refund:<id>, cancellation, or nothing.",
    )
    queued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [
            models.UniqueConstraint(fields=["order_id", "kind"], name="notice_once_per_order_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} ({'queued' if self.queued_at else 'waiting'})"


class EmailLog(models.Model):
    """Every email to a customer: at most one per order and kind, whatever the redeliveries.

    Its attempts (first send, retries, admin resends) are `EmailAttempt` rows."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued (first attempt not started yet)"
        SENDING = "sending", "Sending (an attempt is in flight, or was cut off)"
        PENDING = "pending", "Pending (retry or resend due)"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Marked as spam"
        FAILED = "failed", "Failed (gave up)"

    order_id = models.UUIDField(db_index=True)
    kind = models.CharField(max_length=40)
    recipient = models.EmailField()
    subject = models.CharField(max_length=255)
    # What the email is rendered from, so that a retry or a resend can render it again.
    context = models.JSONField(default=dict, blank=True)
    attachments = models.JSONField(default=list, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    message_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    resend_requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=["order_id", "kind"], name="email_once_per_order_kind")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="email_pending_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient} ({self.status})"


class EmailAttempt(models.Model):
    """One try at sending an email: the first, a retry after a failure, or a forced resend.

    Written as `sending` (with its Message-ID) and committed before the send starts; the answer
    is recorded on it afterwards. An attempt cut off by a crash is resumed as the same row, with
    the same Message-ID."""

    class Status(models.TextChoices):
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    log = models.ForeignKey(EmailLog, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices)
    forced = models.BooleanField(default=False, help_text="An admin resend.")
    requested_by = models.CharField(max_length=150, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    # The Message-ID header we set: deterministic per order, kind and resend, so every retry of
    # the same email carries the same one (mail stores collapse copies).
    header_message_id = models.CharField(max_length=255, blank=True)
    # The provider's id for the sent message (tracking webhooks refer to it): the Message-ID
    # header over SMTP, the provider's own id through an API (e.g. SES's MessageId).
    message_id = models.CharField(max_length=255, blank=True, db_index=True)
    error = models.TextField(blank=True)
    # The provider's last word on it, from its tracking webhook (delivered, bounced, ...).
    tracking_event = models.CharField(max_length=32, blank=True)
    tracking_detail = models.TextField(blank=True)
    tracking_at = models.DateTimeField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("log", "number")
        constraints = [
            models.UniqueConstraint(fields=["log", "number"], name="email_attempt_number")
        ]

    def __str__(self) -> str:
        return f"{self.log.kind} attempt {self.number} ({self.status})"
