"""Transactional outbox, relay, inbox and subscriber registry. Knows nothing about orders.

This module is the outbox's whole public API; other apps import nothing else from it (the
import-linter contract "Only the outbox's public API" in pyproject.toml).

from outbox import publish, subscriber

@subscriber("order.placed")
def on_order_placed(event: Event) -> None:
    ...  # event.attempt: which delivery this is (1, 2 …), to decide when to give up

with transaction.atomic():
    ...business writes...
    publish("order.placed", order.id, {...})

sql, params = outbox.publish_statement("order.placed", order_id, {...})  # one-statement writers
outbox.redeliver(order.id)    # retry what an order is stuck on (the admin, stuck orders)
outbox.undelivered(order.id)  # its failing subscribers and unsent events, for display
"""

from outbox.events import Event, RetryLater
from outbox.registry import subscriber
from outbox.values import Failure, Redelivery, Undelivered, Unpublished


def publish(event_type, aggregate_id, data, *, version=1):
    """Insert an event into the outbox, in the caller's transaction (refuses to run outside one)."""
    from outbox.services import event_publish

    return event_publish(
        event_type=event_type, aggregate_id=aggregate_id, data=data, version=version
    )


def publish_statement(event_type, aggregate_id, data, *, version=1) -> tuple[str, list]:
    """`publish()` for a caller that writes its business change and the event in one SQL
    statement on PostgreSQL (a CTE sent in autocommit: one round trip, commit included).
    Returns (sql, params) of the INSERT of the same outbox row `publish()` writes; the caller
    embeds it (`WITH …, event AS (<sql>) …`) and runs it: that statement is the transaction, so
    the event commits or rolls back with the business rows, and the relays are woken at commit
    (the NOTIFY trigger) as for `publish()`."""
    from outbox.services import event_insert_statement

    return event_insert_statement(
        event_type=event_type, aggregate_id=aggregate_id, data=data, version=version
    )


def redeliver(aggregate_id) -> Redelivery:
    """Send an aggregate's failed deliveries again, make its unpublished events due now, or, with
    neither, publish all of its events again; returns a `Redelivery` (`.redelivered`,
    `.rearmed`, `.republished`, `.anything`). Safe to repeat: subscribers skip
    what they already handled. Joins the caller's transaction; messages leave after commit."""
    from outbox.services import aggregate_redeliver

    return aggregate_redeliver(aggregate_id=aggregate_id)


def undelivered(aggregate_id) -> Undelivered:
    """An aggregate's unresolved failed deliveries and unpublished events, as plain values
    (`.failures`: `Failure`s; `.unpublished`: `Unpublished`s)."""
    from outbox.selectors import undelivered as select

    return select(aggregate_id)


def current_event():
    """The Event the running subscriber is handling (None outside a delivery): lets a handler's
    service date what it records by when the fact happened (`.occurred_at`), not by when a
    retried delivery finally got to it."""
    from outbox.events import current_event as var

    return var.get()


# --- Operations (the desk, /metrics, manage.py dlq_replay) -------------------------------------


def backlog():
    """Unpublished events: `.pending`, `.failing`, `.total`, `.oldest_at`, `.oldest_age_seconds`."""
    from outbox.stats import backlog as select

    return select()


def open_failures_by_subscriber() -> dict[str, int]:
    """{subscriber: failed deliveries not resolved yet}."""
    from outbox.stats import open_failures_by_subscriber as select

    return select()


def open_failure_aggregates() -> dict[str, list[str]]:
    """{aggregate id: ["subscriber <- event type: last error", …]} of unresolved failures."""
    from outbox.stats import open_failure_aggregates as select

    return select()


def undelivered_of(aggregate_id):
    """(unresolved failed deliveries, unpublished events) of an aggregate, as plain values."""
    from outbox.stats import undelivered_of as select

    return select(aggregate_id)


def dead_letter_depths() -> dict[str, int]:
    """{queue: messages in its dead-letter queue} (asks SQS)."""
    from outbox.dlq import depths

    return depths()


def dead_letters(queue=None, *, limit=100):
    """The messages in the dead-letter queue(s), left in place (`outbox.dlq.DeadLetter`s)."""
    from outbox.dlq import peek

    return peek(queue, limit=limit)


def dead_letters_redrive(queue=None, *, message_ids=None, dry_run=False):
    """Send dead letters back to their queue; safe to repeat (the inbox skips what was handled).
    Returns `outbox.dlq.Redrive` (`.moved` per queue, `.total`, `.messages`)."""
    from outbox.dlq import redrive

    return redrive(queue, message_ids=message_ids, dry_run=dry_run)


__all__ = (
    "Event",
    "Failure",
    "Redelivery",
    "RetryLater",
    "Undelivered",
    "Unpublished",
    "backlog",
    "current_event",
    "dead_letter_depths",
    "dead_letters",
    "dead_letters_redrive",
    "open_failure_aggregates",
    "open_failures_by_subscriber",
    "publish",
    "publish_statement",
    "redeliver",
    "subscriber",
    "undelivered",
    "undelivered_of",
)
