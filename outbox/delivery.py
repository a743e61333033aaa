"""Running a subscriber on an event: exactly once in effect, under at-least-once delivery."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from outbox.events import Event, RetryLater, handling
from outbox.registry import get_subscriber
from outbox.services import delivery_failure_record, delivery_failure_resolve, inbox_claim

logger = logging.getLogger(__name__)


def deliver(*, subscriber_name: str, envelope: dict[str, Any]) -> bool:
    """Run the subscriber in one transaction with its inbox claim. Returns False for a duplicate.

    The handler's business writes and the events it publishes commit together with the claim; if
    it raises, all of it rolls back and the message is retried. Failures are recorded (in their
    own transaction) for the admin, with the order id, and cleared on success.
    """
    sub = get_subscriber(subscriber_name)
    event = Event.from_envelope(envelope)
    try:
        with transaction.atomic(), handling(event):
            if not inbox_claim(event=event, subscriber=sub.name):
                logger.info(
                    "duplicate %s for %s on order %s ignored",
                    event.type,
                    sub.name,
                    event.aggregate_id,
                )
                return False
            sub.handler(event)
    except RetryLater as exc:
        logger.info(
            "%s not ready for %s on order %s, will retry: %s",
            sub.name,
            event.type,
            event.aggregate_id,
            exc,
        )
        raise
    except Exception as exc:
        logger.exception(
            "subscriber %s failed on %s %s (order %s)",
            sub.name,
            event.type,
            event.id,
            event.aggregate_id,
        )
        delivery_failure_record(
            event=event, subscriber=sub.name, error=f"{type(exc).__name__}: {exc}"
        )
        raise
    delivery_failure_resolve(event=event, subscriber=sub.name)
    return True
