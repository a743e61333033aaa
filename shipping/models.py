from django.db import models
from django.utils import timezone


class Shipment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for payment
        CREATING = "creating"  # paid: being created at the partner (committed before the call)
        CREATED = "created"
        IN_TRANSIT = "in_transit"
        DELIVERED = "delivered"
        FAILED = "failed"
        CANCELLED = "cancelled", "Cancelled (the order was cancelled before it shipped)"

    order_id = models.UUIDField(unique=True)
    order_number = models.CharField(max_length=16)
    address = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    partner_shipment_id = models.CharField(max_length=64, blank=True)
    carrier = models.CharField(max_length=64, blank=True)
    tracking_number = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.order_number} {self.status}"


# Created at the partner and not yet delivered: what the tracking poll asks about.
OPEN_STATUSES = (Shipment.Status.CREATED, Shipment.Status.IN_TRANSIT)
