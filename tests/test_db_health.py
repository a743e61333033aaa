"""The health check of a reused PostgreSQL connection (chargeflow/postgresql/base.py): an idle
connection with nothing on its socket is usable without a query; one the server dropped is not
(the control: tests/test_resilience.py kills the web's connection behind a live gunicorn)."""

from __future__ import annotations

import time
from unittest import mock

import psycopg
import pytest
from django.db import connection, connections
from django.db.backends.postgresql import base as django_base

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _admin():
    params = connection.get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    return psycopg.connect(**params, autocommit=True)


def test_the_backend_is_djangos_with_the_socket_check():
    assert connection.vendor == "postgresql"
    assert type(connections["default"]).__module__ == "chargeflow.postgresql.base"


def test_an_idle_healthy_connection_is_usable_without_a_query():
    connection.ensure_connection()
    with mock.patch.object(django_base.DatabaseWrapper, "is_usable", return_value=True) as ask:
        assert connection.is_usable()
    assert ask.call_count == 0


def test_a_connection_the_server_dropped_is_not_usable_and_is_replaced():
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with _admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)
    assert not connection.is_usable()
    # What Django does at the start of a request or task with CONN_HEALTH_CHECKS.
    connection.health_check_enabled, connection.health_check_done = True, False
    connection.close_if_health_check_failed()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_something_unread_on_the_socket_makes_the_server_decide():
    connection.ensure_connection()
    with (
        mock.patch("chargeflow.postgresql.base._readable", return_value=True),
        mock.patch.object(django_base.DatabaseWrapper, "is_usable", return_value=True) as ask,
    ):
        assert connection.is_usable()
    assert ask.call_count == 1
