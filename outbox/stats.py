"""Counts of the outbox's tables for dashboards and /metrics, as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min
from django.utils import timezone

from outbox.models import FailedDelivery, OutboxEvent


@dataclass(frozen=True)
class Backlog:
    pending: int  # not yet published, waiting for the relay
    failing: int  # the broker refused them; retried with backoff
    oldest_at: datetime | None  # when the oldest unpublished event occurred

    @property
    def total(self) -> int:
        return self.pending + self.failing

    @property
    def oldest_age_seconds(self) -> float:
        if self.oldest_at is None:
            return 0.0
        return max(0.0, (timezone.now() - self.oldest_at).total_seconds())


def backlog() -> Backlog:
    unpublished = OutboxEvent.objects.exclude(status=OutboxEvent.Status.PUBLISHED)
    counts = dict(unpublished.values_list("status").annotate(n=Count("pk")).order_by())
    oldest = unpublished.aggregate(oldest=Min("occurred_at"))["oldest"]
    return Backlog(
        pending=counts.get(OutboxEvent.Status.PENDING, 0),
        failing=counts.get(OutboxEvent.Status.FAILING, 0),
        oldest_at=oldest,
    )


def open_failures_by_subscriber() -> dict[str, int]:
    """{subscriber: failed deliveries not resolved yet}."""
    rows = (
        FailedDelivery.objects.filter(resolved_at__isnull=True)
        .values("subscriber")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {row["subscriber"]: row["n"] for row in rows}


def open_failure_aggregates() -> dict[str, list[str]]:
    """{aggregate id: ["subscriber <- event type: last error", …]} of unresolved failures."""
    found: dict[str, list[str]] = {}
    for f in FailedDelivery.objects.filter(resolved_at__isnull=True).order_by("first_failed_at")[
        :500
    ]:
        lines = (f.last_error or "").strip().splitlines()
        found.setdefault(f.aggregate_id, []).append(
            f"{f.subscriber} ← {f.event_type}: {lines[-1][:200] if lines else ''}"
        )
    return found


@dataclass(frozen=True)
class OpenFailure:
    subscriber: str
    event_type: str
    attempts: int
    last_error: str
    first_failed_at: datetime
    last_failed_at: datetime


@dataclass(frozen=True)
class UnsentEvent:
    event_type: str
    status: str
    attempts: int
    last_error: str
    occurred_at: datetime


def undelivered_of(aggregate_id) -> tuple[list[OpenFailure], list[UnsentEvent]]:
    key = str(aggregate_id)
    failures = [
        OpenFailure(
            subscriber=f.subscriber,
            event_type=f.event_type,
            attempts=f.attempts,
            last_error=f.last_error,
            first_failed_at=f.first_failed_at,
            last_failed_at=f.last_failed_at,
        )
        for f in FailedDelivery.objects.filter(aggregate_id=key, resolved_at__isnull=True).order_by(
            "first_failed_at", "id"
        )
    ]
    events = [
        UnsentEvent(
            event_type=e.type,
            status=e.status,
            attempts=e.attempts,
            last_error=e.last_error,
            occurred_at=e.occurred_at,
        )
        for e in OutboxEvent.objects.filter(aggregate_id=key)
        .exclude(status=OutboxEvent.Status.PUBLISHED)
        .order_by("id")
    ]
    return failures, events
