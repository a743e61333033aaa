"""/metrics, /health/ and /ready/, structured logs with the order and event bound to each line,
and the monitoring examples in docs/ naming only metrics that exist."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
from django.test import Client

from chargeflow.logcontext import ContextFilter, JsonFormatter, KeyValueFormatter
from conftest import place_order
from orders.models import Order

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def scrape(client=None, **extra) -> str:
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def sample_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
        elif line.startswith("# TYPE "):
            names.add(line.split()[2])
    return names


def test_metrics_count_orders_handlers_and_emails(catalog, pipeline, sqs):
    created = place_order("metrics-1")
    place_order("metrics-2", payment_method="pm_card_chargeCustomerFail")
    pipeline.drain()
    text = scrape()
    shipped = Order.objects.get(pk=created["id"])
    assert shipped.status == "shipped"
    assert 'chargeflow_orders{status="shipped"} 1.0' in text
    assert 'chargeflow_orders{status="cancelled"} 1.0' in text
    assert "chargeflow_orders_placed_total 2.0" in text
    assert re.search(r'chargeflow_checkouts\{status="holding"\} \d', text)
    assert 'chargeflow_outbox_backlog{status="pending"} 0.0' in text
    assert "chargeflow_outbox_oldest_unpublished_age_seconds 0.0" in text
    assert re.search(
        r'chargeflow_handler_duration_seconds_count\{subscriber="billing\.[a-z_]+"\} [1-9]', text
    )
    assert re.search(
        r'chargeflow_handler_deliveries_total\{outcome="handled",subscriber="orders\.[a-z_]+"\}',
        text,
    )
    assert re.search(
        r'chargeflow_email_sends_total\{kind="order_confirmation",result="sent"\} [1-9]', text
    )
    assert re.search(r'chargeflow_dlq_messages\{queue="orders"\} \d', text)
    assert "chargeflow_dlq_up 1.0" in text


def test_the_backlog_age_shows_an_event_the_relay_has_not_published(catalog):
    place_order("metrics-backlog")
    text = scrape()
    assert re.search(r'chargeflow_outbox_backlog\{status="pending"\} [1-9]', text)
    age = float(
        re.search(r"^chargeflow_outbox_oldest_unpublished_age_seconds (\S+)$", text, re.M)[1]
    )
    assert age >= 0


def test_metrics_are_refused_to_strangers(settings):
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 403
    settings.METRICS_TOKEN = "s3cret-token"
    assert (
        Client(REMOTE_ADDR="203.0.113.9")
        .get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
        .status_code
        == 200
    )
    assert (
        Client(REMOTE_ADDR="203.0.113.9")
        .get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
        .status_code
        == 403
    )


def test_every_metric_in_the_monitoring_examples_exists(catalog, pipeline, sqs):
    place_order("metrics-docs")
    pipeline.drain()
    exposed = sample_names(scrape())
    families = {name for name in exposed} | {
        name[: -len(suffix)] for name in exposed for suffix in SUFFIXES if name.endswith(suffix)
    }
    for path in (DOCS / "alerts.yml", DOCS / "grafana-dashboard.json"):
        text = path.read_text()
        named = set(re.findall(r"\bchargeflow_[a-z_]+", text))
        assert named, path
        missing = {name for name in named if name not in exposed and name not in families}
        assert not missing, f"{path.name} names metrics /metrics does not have: {missing}"
    json.loads((DOCS / "grafana-dashboard.json").read_text())


# --- Health and readiness -------------------------------------------------------------------


def test_health_keeps_its_contract_without_details(sqs):
    response = Client(REMOTE_ADDR="203.0.113.9").get("/health/")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "broker": "ok"},
    }


def test_ready_tells_details_only_to_staff_and_trusted_addresses(sqs, admin_client, settings):
    stranger = Client(REMOTE_ADDR="203.0.113.9").get("/ready/")
    assert stranger.status_code == 200 and stranger.json() == {"status": "ready"}
    local = Client().get("/ready/").json()  # the test client comes from 127.0.0.1
    assert set(local["checks"]) == {"database", "cache", "broker"}
    assert all(c["status"] == "ok" and c["ms"] >= 0 for c in local["checks"].values())

    settings.CELERY_BROKER_URL = "sqs://test:test@127.0.0.1:9"
    down = Client(REMOTE_ADDR="203.0.113.9").get("/ready/")
    assert down.status_code == 503 and down.json() == {"status": "unavailable"}
    assert Client(REMOTE_ADDR="203.0.113.9").get("/health/").status_code == 503
    admin_client.defaults["REMOTE_ADDR"] = "203.0.113.9"
    detailed = admin_client.get("/ready/").json()
    assert detailed["checks"]["broker"]["status"] == "error"
    assert detailed["checks"]["broker"]["error"]


# --- Logs -------------------------------------------------------------------------------------


@pytest.fixture
def json_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line]
    root.removeHandler(handler)


def test_every_line_written_while_handling_an_event_names_order_event_and_subscriber(
    catalog, pipeline, json_lines
):
    created = place_order("logs-1")
    pipeline.drain()
    lines = json_lines()
    handled = [line for line in lines if line.get("subscriber")]
    assert handled, lines
    subscribers = {line["subscriber"] for line in handled}
    assert {"billing.on_invoice_issued", "shipping.on_payment_succeeded"} & subscribers
    for line in handled:
        assert line["order_id"] == created["id"], line
        assert line["event_id"] and line["correlation_id"] and line["event_type"], line
        assert line["level"] and line["logger"] and line["message"] and line["time"], line
    # billing, shipping and notifications log with the order bound, even where the message
    # itself does not name it.
    loggers = {line["logger"] for line in handled}
    assert {"billing.services", "shipping.services", "notifications.services"} <= loggers
    # One correlation id follows the order through the pipeline.
    assert len({line["correlation_id"] for line in handled}) == 1


def test_a_request_binds_a_correlation_id_and_the_order(catalog, admin_client, json_lines):
    created = place_order("logs-2")
    response = admin_client.get(
        f"/admin/desk/orders/{created['id']}/", HTTP_X_CORRELATION_ID="req-abc-123"
    )
    assert response["X-Correlation-ID"] == "req-abc-123"
    logging.getLogger("probe").info("probe")  # outside the request: nothing bound
    lines = json_lines()
    assert lines[-1]["message"] == "probe" and lines[-1]["correlation_id"] is None
    evil = admin_client.get("/health/", HTTP_X_CORRELATION_ID="x" * 500 + "\n")
    assert len(evil["X-Correlation-ID"]) == 36  # replaced, not echoed


def test_the_plain_format_is_readable_and_keeps_the_fields():
    record = logging.LogRecord("billing.services", logging.INFO, __file__, 1, "charged", (), None)
    record.order_id, record.subscriber = "o-1", "billing.on_invoice_issued"
    for field in ("event_id", "event_type", "correlation_id", "request_id"):
        setattr(record, field, None)
    line = KeyValueFormatter().format(record)
    assert line.endswith("charged [order_id=o-1 subscriber=billing.on_invoice_issued]")


def test_a_task_names_itself_on_every_line(json_lines):
    from chargeflow.celery import app

    @app.task(name="tests.log_probe")
    def probe():
        logging.getLogger("probe").info("inside the task")

    probe.apply()
    logging.getLogger("probe").info("after the task")
    lines = {line["message"]: line for line in json_lines()}
    assert lines["inside the task"]["task"] == "tests.log_probe"
    assert lines["after the task"]["task"] is None


# --- Several processes ------------------------------------------------------------------------

COUNT = """
import django
django.setup()
from chargeflow import metrics
metrics.HANDLER_FAILURES.labels("tests.sub").inc()
metrics.HANDLER_SECONDS.labels("tests.sub").observe(0.2)
metrics.RELAY_PUBLISHED.inc(3)
"""

SERVE = """
import sys, time
import django
django.setup()
from chargeflow.metrics import serve
serve(int(sys.argv[1]), addr="127.0.0.1")
print("serving", flush=True)
time.sleep(60)
"""


def test_counters_of_several_processes_add_up(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR: two processes count, a third (the worker's or relay's
    METRICS_PORT server, or /metrics in gunicorn) shows the sum."""
    import subprocess
    import sys

    import requests

    from conftest import _child_env, free_port, wait_until

    env = _child_env({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    for _ in range(2):
        subprocess.run([sys.executable, "-c", COUNT], env=env, check=True, timeout=60)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout.readline().strip() == "serving"
        text = wait_until(
            lambda: requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text,
            timeout=10,
        )
    finally:
        server.kill()
        server.wait(10)
    assert 'chargeflow_handler_failures_total{subscriber="tests.sub"} 2.0' in text
    assert 'chargeflow_handler_duration_seconds_count{subscriber="tests.sub"} 2.0' in text
    assert "chargeflow_relay_published_total 6.0" in text
