"""The relay: publishes committed outbox rows to the broker, one message per subscriber.

Several relays may run at once: each claims a batch with `SELECT … FOR UPDATE SKIP LOCKED`
(PostgreSQL), sends, and marks the rows published in the same transaction. A relay killed
mid-batch rolls back, so its rows are claimed again: subscribers may see a message twice, which
the inbox absorbs. Rows are claimed by status, never by "id above the last one seen" (ids and
commit order disagree under concurrency). On SQLite (local default) there is no row locking, and
the IMMEDIATE transaction mode serialises relays instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import timedelta

from celery import Celery
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from chargeflow import metrics
from chargeflow.backoff import backoff_seconds
from outbox.models import OutboxEvent
from outbox.registry import subscribers_for
from outbox.services import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

RETRY_CAP_SECONDS = 300
# Between attempts to reconnect after the database or the broker went away.
RECONNECT_CAP_SECONDS = 30


def retry_delay(attempts: int) -> timedelta:
    """2, 4, 8 … seconds after the first, second, third failed publish; at most 5 minutes."""
    return timedelta(seconds=backoff_seconds(attempts, base=2, cap=RETRY_CAP_SECONDS, jitter=False))


class Relay:
    def __init__(self, app: Celery, *, batch_size: int | None = None):
        self.app = app
        self.batch_size = batch_size or settings.OUTBOX_RELAY_BATCH_SIZE

    def send(self, row: OutboxEvent, producer) -> None:
        envelope = row.as_event().to_envelope()
        for sub in subscribers_for(row.type):
            self.app.send_task(
                "outbox.deliver",
                kwargs={"subscriber": sub.name, "event": envelope},
                queue=sub.queue,
                producer=producer,
            )

    def run_once(self) -> int:
        """Claim one batch, publish it, mark it. Returns how many rows were claimed."""
        now = timezone.now()
        with transaction.atomic():
            rows = list(
                OutboxEvent.objects.select_for_update(skip_locked=True)
                .exclude(status=OutboxEvent.Status.PUBLISHED)
                .filter(next_attempt_at__lte=now)
                .order_by("next_attempt_at", "id")[: self.batch_size]
            )
            if not rows:
                return 0
            published, failed = [], []
            with self.app.producer_or_acquire() as producer:
                for row in rows:
                    try:
                        self.send(row, producer)
                    except Exception as exc:  # the broker refused or is down: retry this row later
                        row.attempts += 1
                        metrics.RELAY_PUBLISH_FAILURES.inc()
                        row.status = OutboxEvent.Status.FAILING
                        row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                        row.next_attempt_at = timezone.now() + retry_delay(row.attempts)
                        failed.append(row)
                        logger.warning(
                            "relay: publishing %s %s (order %s) failed, attempt %s: %s",
                            row.type,
                            row.event_id,
                            row.aggregate_id,
                            row.attempts,
                            row.last_error,
                        )
                    else:
                        metrics.RELAY_PUBLISHED.inc()
                        published.append(row.pk)
            # One UPDATE marks the batch (bulk_update's CASE per row and field cost more CPU
            # than sending the messages: issue 11); failures, rare, one by one.
            if published:
                OutboxEvent.objects.filter(pk__in=published).update(
                    status=OutboxEvent.Status.PUBLISHED, published_at=timezone.now()
                )
            for row in failed:
                row.save(update_fields=["status", "attempts", "last_error", "next_attempt_at"])
        return len(rows)

    def run_forever(self, *, poll_seconds: float, stop: threading.Event) -> None:
        """Publish until `stop` is set, riding out database restarts and broker pauses.

        Any error (a PostgreSQL restart breaks both the LISTEN connection and Django's; a broker
        that refuses connections) is logged and retried after a backoff (0.5 s doubling to
        RECONNECT_CAP_SECONDS, chargeflow.backoff) on fresh connections; the process never
        exits for it. A failed publish of a single row is handled inside `run_once` instead
        (the row records it and is retried later)."""
        use_listen = connection.vendor == "postgresql"
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
        # Drain the rest of a burst without waiting.
        if time.monotonic() - started < timeout:
            for _ in self.conn.notifies(timeout=0.001):
                pass

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            logger.debug("relay: closing the LISTEN connection failed", exc_info=True)
