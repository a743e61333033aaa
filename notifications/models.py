from django.db import models
from django.utils import timezone


class OrderContact(models.Model):
    """What notifications keeps of an order (from order.placed): whom to write, and the link."""

    order_id = models.UUIDField(primary_key=True)
    order_number = models.CharField(max_length=16)
    email = models.EmailField()
    name = models.CharField(max_length=200, blank=True)
    order_url = models.URLField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.order_number} <{self.email}>"


class EmailLog(models.Model):
    """Every email sent to a customer: at most one per order and kind."""

    class Status(models.TextChoices):
        SENDING = "sending"
        SENT = "sent"
        DELIVERED = "delivered"
        BOUNCED = "bounced"
        FAILED = "failed"

    order_id = models.UUIDField(db_index=True)
    kind = models.CharField(max_length=40)
    recipient = models.EmailField()
    subject = models.CharField(max_length=255)
    provider = models.CharField(max_length=100, blank=True)
    message_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SENDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=["order_id", "kind"], name="email_once_per_order_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient} ({self.status})"
