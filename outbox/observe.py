"""What every event delivery shows to operators: its log context and its metrics.

`observed` wraps `delivery.deliver`: every log line written while a subscriber handles an event
carries the order (aggregate) id, the event id and type, the correlation id and the subscriber
(chargeflow.logcontext), and the handler's duration and outcome are counted per subscriber
(chargeflow.metrics)."""

from __future__ import annotations

import functools
import time

from chargeflow import logcontext, metrics
from outbox.events import RetryLater


def observed(deliver):
    @functools.wraps(deliver)
    def wrapper(*, subscriber_name: str, envelope: dict, **kwargs):
        started = time.perf_counter()
        outcome = "failed"
        with logcontext.bound(
            order_id=envelope.get("aggregate_id"),
            event_id=envelope.get("id"),
            event_type=envelope.get("type"),
            correlation_id=envelope.get("correlation_id"),
            subscriber=subscriber_name,
        ):
            try:
                handled = deliver(subscriber_name=subscriber_name, envelope=envelope, **kwargs)
                outcome = "handled" if handled else "duplicate"
                return handled
            except RetryLater:
                outcome = "not_ready"
                raise
            finally:
                metrics.HANDLER_SECONDS.labels(subscriber_name).observe(
                    time.perf_counter() - started
                )
                metrics.HANDLER_DELIVERIES.labels(subscriber_name, outcome).inc()
                if outcome == "failed":
                    metrics.HANDLER_FAILURES.labels(subscriber_name).inc()

    return wrapper
