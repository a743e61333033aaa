"""Writes of the outbox app: publish an event, claim an inbox slot, record delivery failures,
send an aggregate's events again."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from outbox.events import Event, current_event
from outbox.models import FailedDelivery, InboxMessage, OutboxEvent
from outbox.values import Redelivery

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "chargeflow_outbox"


class OutboxError(RuntimeError):
    pass


def event_publish(
    *, event_type: str, aggregate_id: Any, data: dict[str, Any], version: int = 1
) -> OutboxEvent:
    """Insert an event in the caller's transaction. Outside `transaction.atomic()` it refuses:
    an event published apart from its business change could be lost or sent for a rollback."""
    if not transaction.get_connection().in_atomic_block:
        raise OutboxError("publish() must be called inside transaction.atomic()")
    # A JSON round trip turns Decimals into strings and fails here, not in the relay.
    text = json.dumps(data, cls=DjangoJSONEncoder)
    cause = current_event.get()
    now = timezone.now()
    row = OutboxEvent(
        event_id=uuid.uuid4(),
        type=event_type,
        version=version,
        aggregate_id=str(aggregate_id),
        correlation_id=cause.correlation_id if cause else uuid.uuid4(),
        occurred_at=now,
        data=json.loads(text),
        next_attempt_at=now,
    )
    if connection.vendor != "postgresql":
        row.save(force_insert=True)
        return row
    # The same row, without compiling an ORM INSERT for every event a handler publishes.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {OutboxEvent._meta.db_table} "  # noqa: S608 (the model's table)
            "(event_id, type, version, aggregate_id, correlation_id, occurred_at, data, status, "
            "attempts, next_attempt_at, last_error, published_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, NULL) RETURNING id",
            [
                row.event_id,
                row.type,
                row.version,
                row.aggregate_id,
                row.correlation_id,
                row.occurred_at,
                text,
                row.status,
                row.attempts,
                row.next_attempt_at,
                row.last_error,
            ],
        )
        row.pk = cursor.fetchone()[0]
    row._state.adding, row._state.db = False, connection.alias
    # On PostgreSQL the insert NOTIFYs NOTIFY_CHANNEL by itself (a trigger, migration 0002):
    # delivered at commit only, collapsed per transaction, it wakes the relays.
    return row


def event_insert_statement(
    *, event_type: str, aggregate_id: Any, data: dict[str, Any], version: int = 1
) -> tuple[str, list[Any]]:
    """The INSERT of the row `event_publish` writes, as SQL and parameters (PostgreSQL), for a
    caller that writes its business rows and the event in ONE statement (a CTE sent in
    autocommit: one round trip, commit included; orders' checkout, issue 11). Nothing is
    written here: the caller runs it, and its statement is the transaction that publishes it
    together with the business change, so the event is never sent for a rollback nor lost. It
    ends with `RETURNING id` (a CTE can count it). The row is the same (values, defaults,
    correlation id of the event being handled), and the NOTIFY trigger of migration 0002 wakes
    the relays when it commits."""
    # Serialised here: a payload that is not JSON fails in the caller, not in the relay.
    payload = json.dumps(data, cls=DjangoJSONEncoder)
    cause = current_event.get()
    now = timezone.now()
    sql = (
        f"INSERT INTO {OutboxEvent._meta.db_table} "  # noqa: S608 (the model's table; values are parameters)
        "(event_id, type, version, aggregate_id, correlation_id, occurred_at, data, status, "
        "attempts, next_attempt_at, last_error, published_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, 0, %s, '', NULL) RETURNING id"
    )
    params = [
        uuid.uuid4(),
        event_type,
        version,
        str(aggregate_id),
        cause.correlation_id if cause else uuid.uuid4(),
        now,
        payload,
        OutboxEvent.Status.PENDING.value,
        now,
    ]
    return sql, params


def _claim(*, event: Event, subscriber: str, resolve: bool) -> bool:
    """INSERT the inbox row (ON CONFLICT DO NOTHING); with `resolve`, the subscriber's failure
    record of the event (if any) is marked resolved in the same statement on PostgreSQL (a
    data-modifying CTE: one round trip, no separate transaction), in a second one elsewhere.
    Table names come from the models; every value is a parameter."""
    event_id = InboxMessage._meta.get_field("event_id").get_db_prep_value(event.id, connection)
    now = timezone.now()
    insert = (
        f"INSERT INTO {InboxMessage._meta.db_table} "  # noqa: S608
        "(event_id, subscriber, event_type, aggregate_id, handled_at) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id, subscriber) DO NOTHING"
    )
    params = [event_id, subscriber, event.type, event.aggregate_id, now]
    resolve_sql = (
        f"UPDATE {FailedDelivery._meta.db_table} SET resolved_at = %s "  # noqa: S608
        "WHERE event_id = %s AND subscriber = %s AND resolved_at IS NULL"
    )
    with connection.cursor() as cursor:
        if resolve and connection.vendor == "postgresql":
            cursor.execute(
                f"WITH resolved AS ({resolve_sql}) {insert}", [now, event_id, subscriber, *params]
            )
            return cursor.rowcount == 1
        cursor.execute(insert, params)
        claimed = cursor.rowcount == 1
        if resolve:
            cursor.execute(resolve_sql, [now, event_id, subscriber])
        return claimed


def inbox_claim(*, event: Event, subscriber: str) -> bool:
    """Record that `subscriber` handles `event`; False when it already did (a redelivery).

    Runs in the subscriber's transaction: if the handler fails, the claim rolls back with it. A
    concurrent duplicate blocks on the unique index until the first commits, then finds it.
    The subscriber's failure record of the event, if any, is resolved with it: it commits only
    with the handler's work (or with a duplicate, which proves the event was handled)."""
    if not transaction.get_connection().in_atomic_block:
        raise OutboxError("inbox_claim() must run inside the subscriber's transaction")
    return _claim(event=event, subscriber=subscriber, resolve=True)


def inbox_claim_handled(*, event: Event, subscriber: str) -> bool:
    """For a subscriber that runs outside a transaction, once its handler has returned: record
    it in the inbox and resolve its failure record of the event, in one statement (atomic on
    its own: no transaction needed). False if the inbox had it already."""
    return _claim(event=event, subscriber=subscriber, resolve=True)


def inbox_has(*, event: Event, subscriber: str) -> bool:
    """Whether `subscriber` already handled `event` (for subscribers that run outside a
    transaction and claim the inbox when they are done)."""
    event_id = InboxMessage._meta.get_field("event_id").get_db_prep_value(event.id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {InboxMessage._meta.db_table} "  # noqa: S608
            "WHERE event_id = %s AND subscriber = %s LIMIT 1",
            [event_id, subscriber],
        )
        return cursor.fetchone() is not None


def delivery_failure_record(*, event: Event, subscriber: str, error: str) -> FailedDelivery:
    now = timezone.now()
    failure, created = FailedDelivery.objects.get_or_create(
        event_id=event.id,
        subscriber=subscriber,
        defaults={
            "event_type": event.type,
            "aggregate_id": event.aggregate_id,
            "envelope": event.to_envelope(),
            "attempts": 1,
            "last_error": error,
            "first_failed_at": now,
            "last_failed_at": now,
        },
    )
    if not created:
        failure.attempts += 1
        failure.last_error = error
        failure.last_failed_at = now
        failure.resolved_at = None
        failure.save(update_fields=["attempts", "last_error", "last_failed_at", "resolved_at"])
    return failure


def delivery_failure_resolve(*, event: Event, subscriber: str) -> None:
    """Mark the subscriber's failure record of the event resolved. Deliveries do this with their
    inbox claim (`inbox_claim`, `inbox_claim_handled`)."""
    FailedDelivery.objects.filter(
        event_id=event.id, subscriber=subscriber, resolved_at__isnull=True
    ).update(resolved_at=timezone.now())


def outbox_cleanup(*, older_than: timedelta | None = None) -> tuple[int, int]:
    """Delete published events and inbox rows past the retention period (longer than any
    redelivery window: a message redelivered after this would be handled again)."""
    cutoff = timezone.now() - (older_than or timedelta(days=settings.OUTBOX_RETENTION_DAYS))
    events, _ = OutboxEvent.objects.filter(
        status=OutboxEvent.Status.PUBLISHED, published_at__lt=cutoff
    ).delete()
    inbox, _ = InboxMessage.objects.filter(handled_at__lt=cutoff).delete()
    return events, inbox


def failures_redeliver(*, failures: Iterable[FailedDelivery]) -> tuple[str, ...]:
    """Send each unresolved failed delivery to its subscriber again, once the caller's
    transaction commits. The inbox makes this safe (a subscriber that handled it skips it).
    The attempt count starts again at 1: an operator redelivers after fixing the cause."""
    from celery import current_app

    from outbox.registry import get_subscriber

    sent = []
    for failure in failures:
        if failure.resolved_at is not None:
            continue
        queue = get_subscriber(failure.subscriber).queue
        transaction.on_commit(
            lambda f=failure, q=queue: current_app.send_task(
                "outbox.deliver",
                kwargs={"subscriber": f.subscriber, "event": f.envelope},
                queue=q,
            )
        )
        sent.append(f"{failure.subscriber} <- {failure.event_type}")
    return tuple(sent)


def events_republish(*, events: QuerySet[OutboxEvent]) -> int:
    """Publish events again (messages lost after publishing: a purged queue, an emulator
    restarted with messages in it); subscribers that already handled them skip them."""
    return events.update(
        status=OutboxEvent.Status.PENDING, published_at=None, next_attempt_at=timezone.now()
    )


def events_rearm(*, events: QuerySet[OutboxEvent]) -> int:
    """Make unpublished events due now (clears the relay's backoff)."""
    return events.exclude(status=OutboxEvent.Status.PUBLISHED).update(
        next_attempt_at=timezone.now()
    )


@transaction.atomic
def aggregate_redeliver(*, aggregate_id: Any) -> Redelivery:
    """Retry whatever an aggregate (an order) is stuck on: send its unresolved failed
    deliveries again (after commit) and make its unpublished events due now. With neither (a
    message lost after it was published), publish all of its events again. Nothing runs twice:
    the inbox skips what a subscriber already handled."""
    key = str(aggregate_id)
    redelivered = failures_redeliver(
        failures=FailedDelivery.objects.filter(aggregate_id=key, resolved_at__isnull=True)
        .select_for_update()
        .order_by("id")
    )
    rearmed = events_rearm(events=OutboxEvent.objects.filter(aggregate_id=key))
    republished = 0
    if not redelivered and not rearmed:
        republished = events_republish(
            events=OutboxEvent.objects.filter(aggregate_id=key, status=OutboxEvent.Status.PUBLISHED)
        )
    result = Redelivery(redelivered=redelivered, rearmed=rearmed, republished=republished)
    logger.info(
        "aggregate %s: redelivered %s, %s event(s) re-armed, %s published again",
        key,
        ", ".join(redelivered) or "nothing",
        rearmed,
        republished,
    )
    return result
