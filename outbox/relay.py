"""The relay: publishes committed outbox rows to the broker, one message per subscriber.

Several relays may run at once: each claims a batch with `SELECT … FOR UPDATE SKIP LOCKED`
(PostgreSQL), sends, and marks the rows published in the same transaction. A relay killed
mid-batch rolls back, so its rows are claimed again: subscribers may see a message twice, which
the inbox absorbs. Rows are claimed by status, never by "id above the last one seen" (ids and
commit order disagree under concurrency). On SQLite (local default) there is no row locking, and
the IMMEDIATE transaction mode serialises relays instead.

Cost per message (issue 11): the messages are Celery's own (`as_task_v2` headers, kombu's
message and body encoding), each built once, and a batch is written to the broker in as few round
trips as its transport allows: one pipelined round trip on Redis (`LPUSH` each), `SendMessageBatch`
of up to 10 on SQS. A row is marked published only when the broker accepted every one of its
messages; the others are retried later with backoff, one by one. Other transports, or when a
`before/after_task_publish` receiver is connected, take `send_task` message by message.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from celery import Celery, signals
from celery.utils.nodenames import anon_nodename
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from kombu.entity import DELIVERY_MODES
from kombu.utils.json import dumps

from chargeflow import metrics
from chargeflow.backoff import backoff_seconds
from chargeflow.db import prepared_cursor
from outbox.models import OutboxEvent
from outbox.registry import subscribers_for
from outbox.services import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

TASK_NAME = "outbox.deliver"
RETRY_CAP_SECONDS = 300
# Between attempts to reconnect after the database or the broker went away.
RECONNECT_CAP_SECONDS = 30
# SendMessageBatch takes at most 10 messages and 256 KiB in all.
SQS_BATCH_MESSAGES = 10
SQS_BATCH_BYTES = 256 * 1024
# Celery's task protocol 2 body is `[args, kwargs, embed]`; the relay's tasks have no args and
# nothing embedded (no callbacks, chain or chord).
_BODY_HEAD = '[[], {"subscriber": '
_BODY_TAIL = '}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'


def retry_delay(attempts: int) -> timedelta:
    """2, 4, 8 … seconds after the first, second, third failed publish; at most 5 minutes."""
    return timedelta(seconds=backoff_seconds(attempts, base=2, cap=RETRY_CAP_SECONDS, jitter=False))


@dataclass(slots=True)
class Claimed:
    """A claimed outbox row, as much as publishing it needs."""

    pk: int
    event_id: uuid.UUID
    type: str
    aggregate_id: str
    attempts: int
    envelope: str  # Event.to_envelope() as JSON, built once for all the row's subscribers

    @property
    def summary(self) -> str:
        """The event in a task's kwargsrepr (what Celery's tools show instead of the whole body)."""
        return (
            f"{{'id': '{self.event_id}', 'type': {self.type!r}, "
            f"'aggregate_id': {self.aggregate_id!r}, ...}}"
        )


def envelope_json(event_id, type_, version, occurred_at, aggregate_id, correlation_id, data) -> str:
    """Event.to_envelope() as JSON text; `data` is JSON text already (PostgreSQL's jsonb as text:
    the relay never decodes and re-encodes an event's data)."""
    head = json.dumps(
        {
            "id": str(event_id),
            "type": type_,
            "version": version,
            "occurred_at": occurred_at.isoformat(),
            "aggregate_id": aggregate_id,
            "correlation_id": str(correlation_id),
        }
    )
    return f'{head[:-1]}, "data": {data}}}'


class Relay:
    def __init__(self, app: Celery, *, batch_size: int | None = None):
        self.app = app
        self.batch_size = batch_size or settings.OUTBOX_RELAY_BATCH_SIZE
        self._origin = anon_nodename()  # the `origin` header Celery would compute per message
        mode = app.conf.task_default_delivery_mode
        self._delivery_mode = DELIVERY_MODES.get(mode, mode)

    # --- one batch ------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch, publish it, mark it. Returns how many rows were claimed."""
        with transaction.atomic():
            rows = self.claim(timezone.now())
            if not rows:
                return 0
            with self.app.producer_or_acquire() as producer:
                failed = self.publish(rows, producer)
            published = [row.pk for row in rows if row.pk not in failed]
            if published:
                self.mark_published(published)
                metrics.RELAY_PUBLISHED.inc(len(published))
            for row in rows:
                if row.pk in failed:
                    self.record_failure(row, failed[row.pk])
        return len(rows)

    def claim(self, now) -> list[Claimed]:
        """The next due unpublished rows, locked (skipping rows another relay holds)."""
        if connection.vendor == "postgresql":
            # Raw SQL: the ORM's query building and model instances cost more CPU than the
            # query itself on a relay woken for every commit (issue 11). `data` comes back as
            # JSON text (Django loads jsonb as text).
            with prepared_cursor() as cursor:  # parsed and planned once per connection
                cursor.execute(CLAIM_SQL, [now, self.batch_size])
                found = cursor.fetchall()
        else:
            found = [
                (*values[:-1], json.dumps(values[-1]))
                for values in OutboxEvent.objects.select_for_update(skip_locked=True)
                .exclude(status=OutboxEvent.Status.PUBLISHED)
                .filter(next_attempt_at__lte=now)
                .order_by("next_attempt_at", "id")
                .values_list(*CLAIM_FIELDS)[: self.batch_size]
            ]
        rows = []
        for pk, event_id, type_, version, occurred_at, aggregate_id, corr, attempts, data in found:
            rows.append(
                Claimed(
                    pk=pk,
                    event_id=event_id,
                    type=type_,
                    aggregate_id=aggregate_id,
                    attempts=attempts,
                    envelope=envelope_json(
                        event_id, type_, version, occurred_at, aggregate_id, corr, data
                    ),
                )
            )
        return rows

    def mark_published(self, pks: list[int]) -> None:
        # One UPDATE for the batch (bulk_update's CASE per row and field cost more CPU than
        # sending the messages: issue 11).
        if connection.vendor == "postgresql":
            with prepared_cursor() as cursor:
                cursor.execute(MARK_SQL, [timezone.now(), pks])
        else:
            OutboxEvent.objects.filter(pk__in=pks).update(
                status=OutboxEvent.Status.PUBLISHED, published_at=timezone.now()
            )

    def record_failure(self, row: Claimed, exc: BaseException) -> None:
        """The broker refused or is down: retry this row later (rare: one UPDATE per row)."""
        attempts = row.attempts + 1
        error = f"{type(exc).__name__}: {exc}"[:2000]
        OutboxEvent.objects.filter(pk=row.pk).update(
            status=OutboxEvent.Status.FAILING,
            attempts=attempts,
            last_error=error,
            next_attempt_at=timezone.now() + retry_delay(attempts),
        )
        metrics.RELAY_PUBLISH_FAILURES.inc()
        logger.warning(
            "relay: publishing %s %s (order %s) failed, attempt %s: %s",
            row.type,
            row.event_id,
            row.aggregate_id,
            attempts,
            error,
        )

    # --- messages ---------------------------------------------------------------------------------

    def publish(self, rows: list[Claimed], producer) -> dict[int, BaseException]:
        """Send every row's messages; returns the rows (pk) not accepted, with why."""
        try:
            channel = producer.channel  # connects to the broker on first use
        except Exception as exc:
            return dict.fromkeys((row.pk for row in rows), exc)
        write = _WRITERS.get(getattr(channel.connection, "driver_type", None))
        if write is None or _publish_signals_connected():
            return self._send_each(rows, producer)
        failed: dict[int, BaseException] = {}
        messages: list[tuple[str, int, dict]] = []
        for row in rows:
            try:
                messages += [
                    (sub.queue, row.pk, self.message(channel, row, sub.name, sub.queue))
                    for sub in subscribers_for(row.type)
                ]
            except Exception as exc:
                failed[row.pk] = exc
        if messages:
            write(channel, messages, failed)
        return failed

    def message(self, channel, row: Claimed, subscriber: str, queue: str) -> dict:
        """The kombu message `send_task("outbox.deliver", kwargs=…, queue=queue)` would publish
        (the same headers, properties and body; tested), with a short kwargsrepr instead of
        Celery's saferepr of the whole envelope."""
        task_id = str(uuid.uuid4())
        headers, properties, _, _ = self.app.amqp.as_task_v2(
            task_id,
            TASK_NAME,
            argsrepr="()",
            kwargsrepr=f"{{'subscriber': {subscriber!r}, 'event': {row.summary}}}",
            reply_to=self.app.thread_oid,
            origin=self._origin,
        )
        properties["delivery_mode"] = self._delivery_mode
        body = f'{_BODY_HEAD}{json.dumps(subscriber)}, "event": {row.envelope}{_BODY_TAIL}'
        message = channel.prepare_message(
            body.encode(), None, "application/json", "utf-8", headers, properties
        )
        # What the virtual transports' basic_publish does before `_put`: body encoding,
        # delivery tag, exchange ("": the queue is the routing key, as Celery sends it).
        channel._inplace_augment_message(message, "", queue)
        return message

    def _send_each(self, rows: list[Claimed], producer) -> dict[int, BaseException]:
        """Message by message through Celery's `send_task` (any transport, publish signals)."""
        failed: dict[int, BaseException] = {}
        for row in rows:
            try:
                envelope = json.loads(row.envelope)
                for sub in subscribers_for(row.type):
                    self.app.send_task(
                        TASK_NAME,
                        kwargs={"subscriber": sub.name, "event": envelope},
                        queue=sub.queue,
                        producer=producer,
                        argsrepr="()",
                        kwargsrepr=f"{{'subscriber': {sub.name!r}, 'event': {row.summary}}}",
                    )
            except Exception as exc:
                failed[row.pk] = exc
        return failed

    # --- the loop -------------------------------------------------------------------------------

    def run_forever(self, *, poll_seconds: float, stop: threading.Event) -> None:
        """Publish until `stop` is set, riding out database restarts and broker pauses.

        Any error (a PostgreSQL restart breaks both the LISTEN connection and Django's; a broker
        that refuses connections) is logged and retried after a backoff (0.5 s doubling to
        RECONNECT_CAP_SECONDS, chargeflow.backoff) on fresh connections; the process never
        exits for it. A failed publish of a single row is handled inside `run_once` instead
        (the row records it and is retried later)."""
        use_listen = connection.vendor == "postgresql"
        gather = settings.OUTBOX_RELAY_GATHER_SECONDS
        logger.info(
            "relay started (batch %s, %s)",
            self.batch_size,
            "LISTEN/NOTIFY + polling" if use_listen else f"polling every {poll_seconds}s",
        )
        listener: Listener | None = None
        failures = 0
        try:
            while not stop.is_set():
                try:
                    if use_listen and listener is None:
                        listener = Listener()
                    claimed = self.run_once()
                    if failures:
                        logger.warning("relay: recovered after %s failed attempt(s)", failures)
                        failures = 0
                    if claimed >= self.batch_size:
                        continue  # more may be waiting
                    if claimed and gather:
                        # Busy: let the next commits gather into one batch. A batch costs
                        # ~1.5 ms of the relay's CPU and ~1 ms of PostgreSQL's whatever its
                        # size (a transaction, claim, broker write, mark), each event ~0.3 ms
                        # more: one event per batch under load cost 2-3x the CPU per event
                        # (issue 11). An event committed while idle is claimed at once.
                        stop.wait(gather)
                    if listener:
                        listener.wait(poll_seconds)
                    else:
                        stop.wait(poll_seconds)
                except Exception as exc:
                    failures += 1
                    delay = backoff_seconds(failures, base=0.5, cap=RECONNECT_CAP_SECONDS)
                    logger.error(
                        "relay: %s: %s; reconnecting in %.1fs (attempt %s)",
                        type(exc).__name__,
                        str(exc).strip(),
                        delay,
                        failures,
                        exc_info=failures == 1,
                    )
                    if listener:
                        listener.close()
                        listener = None
                    with contextlib.suppress(Exception):
                        connection.close()  # the next query opens a new connection
                    stop.wait(delay)
        finally:
            if listener:
                listener.close()


class Listener:
    """A dedicated autocommit connection LISTENing for the outbox channel (PostgreSQL only)."""

    def __init__(self):
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        self.conn = psycopg.connect(**params, autocommit=True)
        self.conn.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def wait(self, timeout: float) -> None:
        started = time.monotonic()
        for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            break
        # Drain what else arrived, without waiting (timeout=0 polls once): a wait here, even
        # of a millisecond, is added to every event's commit -> handler time.
        if time.monotonic() - started < timeout:
            for _ in self.conn.notifies(timeout=0):
                pass

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            logger.debug("relay: closing the LISTEN connection failed", exc_info=True)


def _publish_signals_connected() -> bool:
    return bool(signals.before_task_publish.receivers or signals.after_task_publish.receivers)


def _write_redis(channel, messages: list[tuple[str, int, dict]], failed: dict) -> None:
    """One pipelined round trip: one LPUSH per Redis list with all of the batch's messages for
    it, in the order given, which is what kombu's Redis `_put` (an LPUSH each) leaves in the
    list, consumed from the right (oldest first). A list that refuses (e.g. WRONGTYPE) fails
    the rows with a message for it; the other lists' messages are in."""
    lists: dict[str, tuple[list[bytes], list[int]]] = {}
    for queue, pk, message in messages:
        key = channel._q_for_pri(queue, channel._get_message_priority(message))
        values, pks = lists.setdefault(key, ([], []))
        values.append(dumps(message))
        pks.append(pk)
    pipe = channel.client.pipeline(transaction=False)
    for key, (values, _pks) in lists.items():
        pipe.lpush(key, *values)
    try:
        results = pipe.execute(raise_on_error=False)
    except Exception as exc:  # the broker is down: the whole batch is retried later
        for _queue, pk, _message in messages:
            failed.setdefault(pk, exc)
        return
    for (_values, pks), result in zip(lists.values(), results, strict=True):
        if isinstance(result, Exception):
            for pk in pks:
                failed.setdefault(pk, result)


def _write_sqs(channel, messages: list[tuple[str, int, dict]], failed: dict) -> None:
    """SendMessageBatch per queue, 10 messages (and 256 KiB) at a time; each refused message
    fails its row only. The message body is what kombu's SQS `_put` sends."""
    by_queue: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for queue, pk, message in messages:
        by_queue[queue].append((pk, message))
    for queue, items in by_queue.items():
        try:
            url = channel._new_queue(queue)  # cached; creates a missing queue, as kombu does
            client = channel.sqs(queue=channel.canonical_queue_name(queue))
            if queue.endswith(".fifo"):  # group and deduplication ids: kombu's own path
                for pk, message in items:
                    try:
                        channel._put(queue, message)
                    except Exception as exc:
                        failed.setdefault(pk, exc)
                continue
        except Exception as exc:
            for pk, _message in items:
                failed.setdefault(pk, exc)
            continue
        for chunk in _sqs_chunks(channel, items):
            try:
                response = client.send_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "MessageBody": body} for i, (_pk, body) in enumerate(chunk)
                    ],
                )
            except Exception as exc:
                for pk, _body in chunk:
                    failed.setdefault(pk, exc)
                continue
            for refused in response.get("Failed") or ():
                pk = chunk[int(refused["Id"])][0]
                failed.setdefault(
                    pk,
                    RuntimeError(
                        f"SQS refused a message: {refused.get('Code')}: "
                        f"{refused.get('Message', '')}"
                    ),
                )


def _sqs_chunks(channel, items: list[tuple[int, dict]]):
    """(pk, SQS message body) lists of at most 10 messages and SQS_BATCH_BYTES."""
    chunk: list[tuple[int, str]] = []
    size = 0
    for pk, message in items:
        body = dumps(message)
        if channel.sqs_base64_encoding:
            body = base64.b64encode(body.encode()).decode()
        if chunk and (len(chunk) >= SQS_BATCH_MESSAGES or size + len(body) > SQS_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append((pk, body))
        size += len(body)
    if chunk:
        yield chunk


_WRITERS = {"redis": _write_redis, "sqs": _write_sqs}

CLAIM_FIELDS = (
    "id",
    "event_id",
    "type",
    "version",
    "occurred_at",
    "aggregate_id",
    "correlation_id",
    "attempts",
    "data",
)
# The partial index outbox_unpublished_idx (next_attempt_at, id) WHERE NOT status = 'published'
# serves it: the literal (not a parameter) lets PostgreSQL match the index's predicate.
CLAIM_SQL = (
    "SELECT id, event_id, type, version, occurred_at, aggregate_id, correlation_id, attempts, data"
    " FROM outbox_outboxevent WHERE NOT (status = 'published') AND next_attempt_at <= %s"
    " ORDER BY next_attempt_at, id LIMIT %s::integer FOR UPDATE SKIP LOCKED"
)
MARK_SQL = (
    "UPDATE outbox_outboxevent SET status = 'published', published_at = %s"
    " WHERE id = ANY(%s::bigint[])"
)
