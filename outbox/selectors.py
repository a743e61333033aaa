"""Reads of the outbox app, in plain values for other apps' pages (they never see its models)."""

from __future__ import annotations

from typing import Any

from outbox.models import FailedDelivery, OutboxEvent
from outbox.values import Failure, Undelivered, Unpublished


def undelivered(aggregate_id: Any) -> Undelivered:
    key = str(aggregate_id)
    failures = FailedDelivery.objects.filter(aggregate_id=key, resolved_at__isnull=True).order_by(
        "first_failed_at", "id"
    )
    events = (
        OutboxEvent.objects.filter(aggregate_id=key)
        .exclude(status=OutboxEvent.Status.PUBLISHED)
        .order_by("id")
    )
    return Undelivered(
        failures=tuple(
            Failure(
                subscriber=f.subscriber,
                event_type=f.event_type,
                attempts=f.attempts,
                last_error=f.last_error,
                first_failed_at=f.first_failed_at,
                last_failed_at=f.last_failed_at,
            )
            for f in failures
        ),
        unpublished=tuple(
            Unpublished(
                event_type=e.type, status=e.status, attempts=e.attempts, last_error=e.last_error
            )
            for e in events
        ),
    )
