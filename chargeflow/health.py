"""GET /health/: 200 when the database, the cache and the broker answer; 503 otherwise."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import urlsplit

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

from chargeflow.celery import app

logger = logging.getLogger(__name__)


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_cache() -> None:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "ok", timeout=10)
    if cache.get(key) != "ok":
        raise RuntimeError("cache did not return the value just written")
    cache.delete(key)


def check_broker() -> None:
    broker = app.conf.broker_url
    if urlsplit(broker).scheme == "sqs":
        from django.conf import settings

        from outbox.sqs import queue_url, sqs_client

        if queue_url(sqs_client(), settings.QUEUE_NAMES["orders"]) is None:
            raise RuntimeError("the orders queue does not exist (run manage.py sqs_create_queues)")
        return
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


def health(request):
    results, healthy = {}, True
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure makes the service unhealthy, with the cause
            healthy = False
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
            logger.warning("health check %s failed: %s", name, exc)
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": results},
        status=200 if healthy else 503,
    )
