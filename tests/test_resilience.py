"""Infrastructure blinking: PostgreSQL connections killed under the relay, the workers and the web
(what a database restart does to them), and a worker killed while it holds an SQS message."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import psycopg
import pytest
from django.db import connection, transaction

from conftest import place_order, wait_for_http, wait_until
from orders.models import Order
from outbox import publish
from outbox.models import OutboxEvent


def admin_connection() -> psycopg.Connection:
    """A connection of our own, to terminate the others' (what a restart does to them)."""
    params = connection.get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    return psycopg.connect(**params, autocommit=True)


def terminate_backends(*, keep: set[int] = frozenset()) -> int:
    """Terminate every other connection to the test database; returns how many."""
    with admin_connection() as admin:
        mine = admin.info.backend_pid
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> %s",
            [mine],
        ).fetchall()
        pids = [pid for (pid,) in rows if pid not in keep]
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        return len(pids)


def is_published(event_id) -> bool:
    return OutboxEvent.objects.filter(
        event_id=event_id, status=OutboxEvent.Status.PUBLISHED
    ).exists()


def publish_one(n: int):
    with transaction.atomic():
        return publish("email.sent", f"resilience-{n}", {"kind": "x", "order_id": "x"}).event_id


@pytest.mark.postgres
@pytest.mark.e2e
def test_relay_survives_its_connections_being_killed_and_keeps_publishing(live_stack, sqs):
    relay = live_stack.start("relay")
    first = publish_one(1)
    wait_until(lambda: is_published(first), timeout=60, message="the first event published")
    for round_ in range(2, 5):
        # The relay holds two connections: Django's and the LISTEN one. Kill both (and any other).
        assert terminate_backends(keep={connection.connection.info.backend_pid}) >= 2
        time.sleep(0.3)
        event = publish_one(round_)
        wait_until(
            lambda event=event: is_published(event),
            timeout=60,
            message=f"an event published after connections were killed (round {round_})",
        )
        assert relay.poll() is None, "the relay exited"
    log = (live_stack.logs / f"{live_stack.name}-relay.log").read_text()
    assert "reconnecting in" in log


@pytest.mark.postgres
@pytest.mark.e2e
def test_pipeline_survives_database_connections_being_killed(live_stack, catalog, mailbox):
    relay = live_stack.start("relay")
    worker = live_stack.start("worker")

    def status(order_id) -> str:
        return Order.objects.values_list("status", flat=True).get(pk=order_id)

    before = place_order("resilience-before")
    wait_until(lambda: status(before["id"]) == "shipped", timeout=120, message="first order")
    assert terminate_backends(keep={connection.connection.info.backend_pid}) >= 2
    after = place_order("resilience-after")
    wait_until(lambda: status(after["id"]) == "shipped", timeout=120, message="second order")
    assert relay.poll() is None and worker.poll() is None


@pytest.mark.postgres
@pytest.mark.e2e
@pytest.mark.parametrize("health_checks", ["true", "false"])
def test_api_answers_after_its_database_connection_was_killed(live_stack, catalog, health_checks):
    """gunicorn (one process, one thread, so one persistent connection: CONN_MAX_AGE) keeps its
    connection between requests. Kill it, as a database restart does: with CONN_HEALTH_CHECKS
    (the default) the next request replaces it and answers 200; without (the control case) that
    request answers 500."""
    live_stack.start("web", extra_env={"CONN_HEALTH_CHECKS": health_checks})
    url = f"{live_stack.web_url}/api/v1/products/"
    wait_for_http(url)
    assert http_status(url) == 200
    mine = connection.connection.info.backend_pid
    assert terminate_backends(keep={mine}) >= 1  # the web's connection
    time.sleep(0.2)
    assert http_status(url) == (200 if health_checks == "true" else 500)
    assert http_status(url) == 200  # after a 500 Django drops the broken connection too


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (loopback)
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
