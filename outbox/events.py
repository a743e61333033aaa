"""The event envelope every message carries (DESIGN.md §2)."""

from __future__ import annotations

import contextlib
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Event:
    """One event as a subscriber receives it: the envelope, plus where its delivery stands.

    `attempt` is which delivery of this event to this subscriber this is (1 the first time; it
    counts Celery retries and broker redeliveries, e.g. after a worker died: SQS's
    ApproximateReceiveCount, so it may run ahead by one in a race, never behind).
    `first_delivered_at` is when the subscriber first received it (None outside a worker).
    A handler decides when to give up from these, never by reading the outbox's tables. They are
    delivery facts, not part of the envelope: `to_envelope()` leaves them out.
    """

    id: uuid.UUID
    type: str
    version: int
    occurred_at: datetime
    aggregate_id: str
    correlation_id: uuid.UUID
    data: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    first_delivered_at: datetime | None = None

    def to_envelope(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "version": self.version,
            "occurred_at": self.occurred_at.isoformat(),
            "aggregate_id": self.aggregate_id,
            "correlation_id": str(self.correlation_id),
            "data": self.data,
        }

    @classmethod
    def from_envelope(
        cls,
        envelope: dict[str, Any],
        *,
        attempt: int = 1,
        first_delivered_at: datetime | None = None,
    ) -> Event:
        return cls(
            id=uuid.UUID(str(envelope["id"])),
            type=envelope["type"],
            version=int(envelope["version"]),
            occurred_at=datetime.fromisoformat(envelope["occurred_at"]),
            aggregate_id=str(envelope["aggregate_id"]),
            correlation_id=uuid.UUID(str(envelope["correlation_id"])),
            data=envelope.get("data") or {},
            attempt=attempt,
            first_delivered_at=first_delivered_at,
        )


class RetryLater(Exception):
    """Raised by a handler whose event arrived before what it depends on (e.g. invoice.issued
    before this app handled order.placed: SQS does not keep order). Retried soon; logged quietly
    for the first few attempts instead of as a failure."""


# The event being handled right now, so that events published by a handler carry its
# correlation id (one id follows an order through the whole pipeline).
current_event: ContextVar[Event | None] = ContextVar("current_event", default=None)


@contextlib.contextmanager
def handling(event: Event):
    token = current_event.set(event)
    try:
        yield event
    finally:
        current_event.reset(token)
