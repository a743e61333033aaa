"""The dashboard's numbers (each links to the filtered list) and its chart."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

import outbox
from notifications import selectors as notifications
from orders import selectors as orders

logger = logging.getLogger(__name__)

CHART_HOURS = 24


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    count: int
    label: str  # the hour, local time
    tick: bool  # print the hour under it


def hourly_bars(*, hours: int = CHART_HOURS, width: int = 720, height: int = 180) -> dict:
    """Orders placed per hour over the last `hours`, as SVG rectangles (server-rendered: no
    JavaScript, nothing fetched from elsewhere)."""
    now = timezone.localtime()
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    counts = {
        timezone.localtime(hour).replace(minute=0, second=0, microsecond=0): n
        for hour, n in orders.orders_per_hour(since=start)
    }
    slots = [start + timedelta(hours=i) for i in range(hours)]
    peak = max([counts.get(slot, 0) for slot in slots] + [1])
    slot_width = width // hours
    bars = []
    for i, slot in enumerate(slots):
        n = counts.get(slot, 0)
        h = round((height - 36) * n / peak)  # room for the count above the tallest bar
        bars.append(
            Bar(
                x=i * slot_width + 2,
                y=height - 20 - h,
                width=slot_width - 4,
                height=h,
                count=n,
                label=f"{slot:%H}:00",
                tick=i % 3 == 0,
            )
        )
    return {
        "bars": bars,
        "width": width,
        "height": height,
        "peak": peak,
        "total": sum(b.count for b in bars),
        "baseline": height - 20,
    }


def dead_letter_depths(*, fresh: bool = False) -> tuple[dict[str, int] | None, str]:
    """{queue: depth} from SQS, or (None, why) when SQS does not answer. Pages ask `fresh`;
    /metrics takes a value up to METRICS_DLQ_CACHE_SECONDS old (scrapes come often)."""
    cached = None if fresh else cache.get("desk:dlq-depths")
    if cached is not None:
        return cached, ""
    try:
        depths = outbox.dead_letter_depths()
    except Exception as exc:
        logger.warning("dead-letter depths unavailable: %s", exc)
        return None, f"{type(exc).__name__}: {exc}"[:200]
    cache.set("desk:dlq-depths", depths, settings.METRICS_DLQ_CACHE_SECONDS)
    return depths, ""


def summary(*, fresh: bool = False) -> dict:
    by_status = orders.order_counts_by_status()
    stuck = list(orders.orders_stuck()[:50])
    causes = outbox.open_failure_aggregates()
    dlq, dlq_error = dead_letter_depths(fresh=fresh)
    emails = notifications.email_counts_by_status()
    return {
        "statuses": [
            (value, label, by_status.get(value, 0)) for value, label in orders.order_statuses()
        ],
        "orders_total": sum(by_status.values()),
        "stuck": [(order, causes.get(str(order.id), [])) for order in stuck],
        "stuck_count": orders.orders_stuck().count(),
        "backlog": outbox.backlog(),
        "failures": outbox.open_failures_by_subscriber(),
        "dlq": dlq,
        "dlq_total": sum((dlq or {}).values()),
        "dlq_error": dlq_error,
        "email_failed": sum(emails.get(s, 0) for s in notifications.FAILED_STATUSES),
        "email_statuses": emails,
        "chart": hourly_bars(),
    }
