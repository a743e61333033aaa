import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from outbox.events import Event


class OutboxEvent(models.Model):
    """An event written in the same transaction as the business change that caused it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        FAILING = "failing", "Failing (will retry)"
        PUBLISHED = "published", "Published"

    event_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=100, db_index=True)
    version = models.PositiveSmallIntegerField(default=1)
    aggregate_id = models.CharField(max_length=64, db_index=True)
    correlation_id = models.UUIDField(default=uuid.uuid4)
    occurred_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(encoder=DjangoJSONEncoder, default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-id",)
        indexes = [
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=~models.Q(status="published"),
                name="outbox_unpublished_idx",
            ),
            models.Index(fields=["published_at"], name="outbox_published_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.aggregate_id} ({self.status})"

    def as_event(self) -> Event:
        return Event(
            id=self.event_id,
            type=self.type,
            version=self.version,
            occurred_at=self.occurred_at,
            aggregate_id=self.aggregate_id,
            correlation_id=self.correlation_id,
            data=self.data,
        )


class InboxMessage(models.Model):
    """One row per (event, subscriber) handled: the deduplication key of at-least-once delivery."""

    event_id = models.UUIDField()
    subscriber = models.CharField(max_length=150)
    event_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=64, db_index=True)
    handled_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-id",)
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "subscriber"], name="inbox_event_subscriber"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subscriber} <- {self.event_type} {self.event_id}"


class FailedDelivery(models.Model):
    """A subscriber that raised on an event: the cause, for operators, until it succeeds."""

    event_id = models.UUIDField()
    subscriber = models.CharField(max_length=150)
    event_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=64, db_index=True)
    envelope = models.JSONField(encoder=DjangoJSONEncoder)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    first_failed_at = models.DateTimeField(default=timezone.now)
    last_failed_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-last_failed_at",)
        verbose_name_plural = "failed deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "subscriber"], name="failed_delivery_event_subscriber"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subscriber} failed on {self.event_type} {self.aggregate_id}"
