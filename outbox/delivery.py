"""Running a subscriber on an event: exactly once in effect, under at-least-once delivery.

Two kinds of subscriber (outbox.registry.subscriber):

- transactional (the default): the handler runs in ONE transaction with its inbox claim. Its
  business writes and the events it publishes commit together with the claim; if it raises, all of
  it rolls back and the message is retried. A duplicate finds the claim and does nothing.
- `transactional=False`, for handlers that call out (Stripe, the shipping partner, an email
  provider, object storage): the handler runs with NO transaction open, in atomic phases of its
  own (a committed record of what it is about to do, the remote call with an idempotency key
  derived from the order and the step, the answer recorded in a new transaction). Its own rows
  make it idempotent: a redelivery before it finished resumes from the last committed phase; the
  inbox claim is written after it returns, so a redelivery after that does nothing.

Failures are recorded (in their own transaction) for the admin, with the order id, and resolved on
success by the inbox claim itself (same statement: no extra round trip or transaction).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction

from outbox.events import Event, RetryLater, handling
from outbox.observe import observed
from outbox.registry import Subscriber, get_subscriber
from outbox.services import (
    delivery_failure_record,
    inbox_claim,
    inbox_claim_handled,
    inbox_has,
)

logger = logging.getLogger(__name__)


@observed
def deliver(
    *,
    subscriber_name: str,
    envelope: dict[str, Any],
    attempt: int = 1,
    first_delivered_at: datetime | None = None,
) -> bool:
    """Run the subscriber on the event. Returns False for a duplicate. `attempt` and
    `first_delivered_at` reach the handler on the Event (see `Event.attempt`)."""
    sub = get_subscriber(subscriber_name)
    event = Event.from_envelope(envelope, attempt=attempt, first_delivered_at=first_delivered_at)
    if attempt > 1:
        logger.info(
            "%s: %s %s (order %s) delivery attempt %s, first delivered %s",
            sub.name,
            event.type,
            event.id,
            event.aggregate_id,
            attempt,
            first_delivered_at.isoformat() if first_delivered_at else "?",
        )
    try:
        with handling(event):
            run = _run_transactional if sub.transactional else _run_phased
            handled = run(sub, event)
        if not handled:
            logger.info(
                "duplicate %s for %s on order %s ignored", event.type, sub.name, event.aggregate_id
            )
            return False
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
    return True


def _run_transactional(sub: Subscriber, event: Event) -> bool:
    with transaction.atomic(durable=True):
        if not inbox_claim(event=event, subscriber=sub.name):
            return False
        sub.handler(event)
    return True


def _run_phased(sub: Subscriber, event: Event) -> bool:
    if inbox_has(event=event, subscriber=sub.name):
        return False
    sub.handler(event)  # no transaction open: its phases commit on their own
    inbox_claim_handled(event=event, subscriber=sub.name)  # one statement, atomic by itself
    return True
