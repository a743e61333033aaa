"""GET /health/ and GET /ready/ (docs/operations.md "Health and readiness").

/health/ keeps DESIGN.md §6's public contract: 200 when the database, the cache and the broker
answer, 503 otherwise; its body names each dependency as "ok" or "error" and nothing more (no
error text, hosts or versions for whoever asks). /ready/ answers the same question for a load
balancer or an orchestrator, and tells staff and trusted addresses (OPS_TRUSTED_IPS, localhost by
default) why: each check's error and how long it took."""

from __future__ import annotations

import logging
import time
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

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
        from outbox.sqs import queue_url, sqs_client

        if queue_url(sqs_client(), settings.QUEUE_NAMES["orders"]) is None:
            raise RuntimeError("the orders queue does not exist (run manage.py sqs_create_queues)")
        return
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


def run_checks() -> tuple[bool, dict[str, dict]]:
    results, healthy = {}, True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            results[name] = {"status": "ok"}
        except Exception as exc:  # any failure makes the service unhealthy, with the cause
            healthy = False
            results[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
            logger.warning("health check %s failed: %s", name, exc)
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return healthy, results


def may_see_details(request) -> bool:
    """Staff, or a client address in OPS_TRUSTED_IPS (REMOTE_ADDR: behind a proxy, that is the
    proxy's, so list the addresses of the hosts that may ask, not the proxy's)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    return request.META.get("REMOTE_ADDR") in settings.OPS_TRUSTED_IPS


@never_cache
def health(request):
    healthy, results = run_checks()
    return JsonResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "checks": {name: result["status"] for name, result in results.items()},
        },
        status=200 if healthy else 503,
    )


@never_cache
def ready(request):
    healthy, results = run_checks()
    body = {"status": "ready" if healthy else "unavailable"}
    if may_see_details(request):
        body["checks"] = results
    return JsonResponse(body, status=200 if healthy else 503)
