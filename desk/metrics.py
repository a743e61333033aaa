"""GET /metrics: Prometheus text format (docs/operations.md "Metrics").

Two sources, documented per metric in docs/operations.md:
- computed from the database (and SQS) when scraped, exact whatever the number of processes:
  orders by status, stuck orders, orders placed, outbox backlog and its age, open failed
  deliveries per subscriber, emails by status, dead-letter queue depths (SQS, cached a few
  seconds so a scrape every 15 s costs a handful of API calls);
- counted by the processes as things happen (chargeflow.metrics): handler durations and failures
  per subscriber, relay publishes, email sends. With PROMETHEUS_MULTIPROC_DIR set these are added
  up across every process on the host (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

import outbox
from chargeflow.health import may_see_details
from chargeflow.metrics import process_registry
from desk.dashboard import dead_letter_depths
from notifications import selectors as notifications
from orders import selectors as orders

logger = logging.getLogger(__name__)


class ShopCollector:
    """The facts in the database, read at scrape time."""

    def collect(self):
        by_status = orders.order_counts_by_status()
        gauge = GaugeMetricFamily("chargeflow_orders", "Orders in each status.", labels=["status"])
        for status, _label in orders.order_statuses():
            gauge.add_metric([status], by_status.get(status, 0))
        yield gauge
        yield GaugeMetricFamily(
            "chargeflow_orders_stuck",
            "Orders flagged stuck (no progress for STUCK_ORDER_MINUTES).",
            value=orders.orders_stuck().count(),
        )
        placed = CounterMetricFamily(
            "chargeflow_orders_placed", "Orders placed (checkouts that became an order)."
        )
        placed.add_metric([], sum(by_status.values()))
        yield placed
        gauge = GaugeMetricFamily(
            "chargeflow_checkouts",
            "Checkouts in each status (holding: stock held while the card is authorized; placed; "
            "expired, releasing, released: abandoned).",
            labels=["status"],
        )
        for status, count in orders.checkout_counts_by_status().items():
            gauge.add_metric([status], count)
        yield gauge
        backlog = outbox.backlog()
        gauge = GaugeMetricFamily(
            "chargeflow_outbox_backlog", "Outbox events not published yet.", labels=["status"]
        )
        gauge.add_metric(["pending"], backlog.pending)
        gauge.add_metric(["failing"], backlog.failing)
        yield gauge
        yield GaugeMetricFamily(
            "chargeflow_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest outbox event not published yet (0 when none).",
            value=backlog.oldest_age_seconds,
        )
        gauge = GaugeMetricFamily(
            "chargeflow_failed_deliveries_open",
            "Failed event deliveries not resolved yet, per subscriber.",
            labels=["subscriber"],
        )
        for subscriber, count in sorted(outbox.open_failures_by_subscriber().items()):
            gauge.add_metric([subscriber], count)
        yield gauge
        gauge = GaugeMetricFamily(
            "chargeflow_emails", "Customer emails in each status.", labels=["status"]
        )
        for status, count in sorted(notifications.email_counts_by_status().items()):
            gauge.add_metric([status], count)
        yield gauge
        depths, _error = dead_letter_depths()
        gauge = GaugeMetricFamily(
            "chargeflow_dlq_messages",
            "Messages in each dead-letter queue (SQS).",
            labels=["queue"],
        )
        for queue, depth in sorted((depths or {}).items()):
            gauge.add_metric([queue], depth)
        yield gauge
        yield GaugeMetricFamily(
            "chargeflow_dlq_up",
            "1 when SQS answered the dead-letter depth query, 0 when it did not.",
            value=0 if depths is None else 1,
        )


def registry() -> CollectorRegistry:
    found = CollectorRegistry()
    found.register(_ProcessMetrics())
    found.register(ShopCollector())
    return found


class _ProcessMetrics:
    """The processes' own counters: this host's, added up, with PROMETHEUS_MULTIPROC_DIR;
    this process's otherwise (tests, `runserver`)."""

    def collect(self):
        yield from process_registry().collect()


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        if hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return True
    return may_see_details(request)


def metrics(request):
    if not _allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
