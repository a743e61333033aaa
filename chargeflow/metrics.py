"""Prometheus metrics counted by the processes themselves (docs/operations.md "Metrics").

These are the things only a process sees as they happen: how long each subscriber's handler
took, which failed, how many events the relay published, how many emails were sent. Everything
that is a fact in the database (orders per status, outbox backlog and age, failed deliveries,
email statuses) or in SQS (dead-letter queue depths) is computed when /metrics is scraped
instead (desk.metrics), which is exact however many processes run.

Several processes (gunicorn and Celery workers, the relay): set PROMETHEUS_MULTIPROC_DIR to a
directory they all share (emptied when they start); prometheus-client then writes each process's
values there and /metrics adds them up (MultiProcessCollector)."""

from __future__ import annotations

import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

logger = logging.getLogger(__name__)

HANDLER_SECONDS = Histogram(
    "chargeflow_handler_duration_seconds",
    "Time a subscriber's handler took on one event delivery (failures included).",
    ["subscriber"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HANDLER_FAILURES = Counter(
    "chargeflow_handler_failures_total",
    "Event deliveries whose handler raised (retried, and recorded as a failed delivery).",
    ["subscriber"],
)
HANDLER_DELIVERIES = Counter(
    "chargeflow_handler_deliveries_total",
    "Event deliveries handled, by outcome (handled, duplicate, not_ready, failed).",
    ["subscriber", "outcome"],
)
RELAY_PUBLISHED = Counter(
    "chargeflow_relay_published_total",
    "Outbox events the relay handed to the broker (one per event, whatever its subscribers).",
)
RELAY_PUBLISH_FAILURES = Counter(
    "chargeflow_relay_publish_failures_total",
    "Outbox events the relay could not hand to the broker (retried later with backoff).",
)
EMAIL_SENDS = Counter(
    "chargeflow_email_sends_total",
    "Email send attempts by kind and result (sent, failed).",
    ["kind", "result"],
)


def process_registry() -> CollectorRegistry:
    """The counters above: this host's processes added up (PROMETHEUS_MULTIPROC_DIR set), or this
    process's own."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def serve(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 (a scrape port, by choice)
    """Expose the process metrics on `port` (METRICS_PORT): for the Celery worker and the relay,
    which have no web server of their own (docs/operations.md "Metrics")."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr, registry=process_registry())
    logger.info("process metrics on %s:%s/metrics", addr, port)
