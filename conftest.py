"""Shared fixtures: the real local components, started on free ports for the test session.

- `sqs` (moto's server), `stripe_server` (localstripe), `partner` (the shipping simulator),
  `mailbox` (the SMTP sink): session-scoped processes/threads, settings pointed at them;
- `pipeline`: runs the outbox in-process (same handlers, same inbox) to drive an order through
  every step inside one test, against the real components;
- `live_stack`: real relay and Celery worker processes on the SQS emulator, for end-to-end tests;
- `browser_page`: Debian's Chromium driven by Playwright, with screenshots under test-artifacts/.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

ROOT = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "test-artifacts"
IS_POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]


def pytest_collection_modifyitems(config, items):
    if IS_POSTGRES:
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL (row locks and real concurrency); set DATABASE_URL to run it"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()  # noqa: S310 (loopback test URL)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_until(predicate, *, timeout: float, interval: float = 0.2, message: str = ""):
    """Poll `predicate` until it returns something truthy; fail with `message` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


GUEST_ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 Analytical Row",
    "line2": "",
    "city": "London",
    "postal_code": "N1 9GU",
    "country": "GB",
}
GUEST_ITEMS = [{"sku": "LAPTOP-14", "quantity": 1}, {"sku": "MOUSE-01", "quantity": 2}]


def place_order(
    key: str, *, payment_method: str = "pm_card_visa", postal_code: str | None = None, client=None
) -> dict:
    """Place the standard guest order (a laptop and two mice to London) through the public API;
    returns the created order with its access token. Needs the `catalog` fixture."""
    from rest_framework.test import APIClient

    address = {**GUEST_ADDRESS, **({"postal_code": postal_code} if postal_code else {})}
    response = (client or APIClient()).post(
        "/api/v1/orders/",
        {
            "email": "ada@example.com",
            "shipping_address": address,
            "items": GUEST_ITEMS,
            "payment_method": payment_method,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert response.status_code == 201, response.content
    return response.json()


def authorize_intent(intent_id: str, card: str = "pm_card_visa"):
    """What Stripe.js does on the checkout page: confirm the PaymentIntent with a card (on the
    Stripe emulator; needs the `stripe_server` fixture). Returns the intent."""
    from billing.stripe_client import stripe_client

    return stripe_client().v1.payment_intents.confirm(intent_id, params={"payment_method": card})


def intent_status(intent_id: str) -> str:
    from billing.stripe_client import stripe_client

    return stripe_client().v1.payment_intents.retrieve(intent_id).status


# --- Session-wide settings -----------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _remote_guard_installed():
    """Every HTTP request and SMTP send in this process checks that no transaction is open
    (chargeflow/remote_guard.py): the whole suite proves the atomic-phases rule."""
    from chargeflow import remote_guard

    remote_guard.install()
    yield
    remote_guard.uninstall()


def pytest_terminal_summary(terminalreporter):
    from chargeflow import remote_guard

    for module, count in sorted(remote_guard.exempted().items()):
        terminalreporter.write_line(
            f"remote_guard: {count} call(s) inside a transaction let through for {module} "
            f"({remote_guard.EXEMPT_CALLERS[module]})"
        )


@pytest.fixture(autouse=True)
def _no_remote_call_in_transaction(_remote_guard_installed):
    """Fail the test if a remote call started inside a transaction, even if the code under test
    swallowed the guard's exception."""
    from chargeflow import remote_guard

    remote_guard.take_violations()
    yield
    if violations := remote_guard.take_violations():
        pytest.fail("remote call inside a transaction:\n" + "\n".join(violations))


@pytest.fixture(scope="session", autouse=True)
def _isolated_files(tmp_path_factory):
    """Media (PDFs) in a temporary directory, never in the developer's var/."""
    media = tmp_path_factory.mktemp("media")
    settings.MEDIA_ROOT = str(media)
    from django.core.files.storage import default_storage

    default_storage.__dict__.pop("_wrapped", None)
    default_storage._setup()
    yield media


@pytest.fixture
def catalog(db):
    """The demo catalog (Laptop 999.99, Mouse 29.99, ...), as `make run` seeds it."""
    from django.core.management import call_command

    from orders.models import Product

    call_command("seed_catalog", stdout=open(os.devnull, "w"))  # noqa: SIM115
    return {p.sku: p for p in Product.objects.all()}


# --- SQS (moto) ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqs():
    """moto's server on a free port, with the project's queues and dead-letter queues."""
    from outbox.sqs import ensure_queues, sqs_client

    with moto_server() as port:
        url = f"sqs://test:test@127.0.0.1:{port}"
        settings.CELERY_BROKER_URL = url  # Celery reads it from Django settings
        client = sqs_client()
        ensure_queues(client)
        yield SqsEndpoint(url=url, port=port, client=client)


@contextlib.contextmanager
def moto_server():
    """A moto server process on a free port (yields the port)."""
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/moto-api/")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class SqsEndpoint:
    url: str
    port: int
    client: object

    def purge(self) -> None:
        for name in settings.QUEUE_NAMES.values():
            for queue in (name, f"{name}-dlq"):
                url = self.client.get_queue_url(QueueName=queue)["QueueUrl"]
                self.client.purge_queue(QueueUrl=url)

    def receive(self, app: str, *, max_messages: int = 10) -> list[dict]:
        url = self.client.get_queue_url(QueueName=settings.QUEUE_NAMES[app])["QueueUrl"]
        return self.client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=1
        ).get("Messages", [])

    def take_tasks(self, app: str) -> list[dict]:
        """Receive and delete every message on the app's queue; returns each task's kwargs."""
        url = self.client.get_queue_url(QueueName=settings.QUEUE_NAMES[app])["QueueUrl"]
        out = []
        while batch := self.receive(app):
            for message in batch:
                envelope = json.loads(base64.b64decode(message["Body"]))
                _args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
                out.append(kwargs)
                self.client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return out


# --- Stripe (localstripe) --------------------------------------------------------------------


@pytest.fixture(scope="session")
def stripe_server():
    from billing.stripe_client import stripe_client
    from chargeflow.localdev.stripe_server import start_stripe_server

    server = start_stripe_server(port=0, stderr=subprocess.DEVNULL)
    settings.STRIPE_API_BASE = server.url
    stripe_client.cache_clear()
    yield server
    server.stop()


# --- Shipping partner simulator --------------------------------------------------------------


@pytest.fixture(scope="session")
def _partner_server():
    from shipping.client import partner_session
    from shipping.simulator import start_simulator

    server = start_simulator(
        port=0, api_key=settings.SHIPPING_PARTNER_API_KEY, transit_seconds=1, delivery_seconds=2
    )
    settings.SHIPPING_PARTNER_URL = server.url
    partner_session.cache_clear()
    yield server
    server.stop()


@pytest.fixture
def partner(_partner_server):
    """The simulator, reset (shipments, counters and faults) before each test."""
    _partner_server.reset()
    return _partner_server


# --- SMTP sink -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _smtp_sink(tmp_path_factory):
    from chargeflow.localdev.smtp_sink import start_smtp_sink

    directory = tmp_path_factory.mktemp("mailbox")
    sink = start_smtp_sink(directory, port=0)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = sink.port
    settings.MAILBOX_DIR = directory
    yield sink
    sink.stop()


@pytest.fixture
def mailbox(_smtp_sink):
    """The SMTP sink, emptied before each test; `.messages()` lists what it received."""
    for path in Path(_smtp_sink.directory).glob("*.eml"):
        path.unlink()
    return _smtp_sink


@pytest.fixture
def components(sqs, stripe_server, partner, mailbox):
    """Every local component at once."""
    return {"sqs": sqs, "stripe": stripe_server, "partner": partner, "mailbox": mailbox}


# --- In-process pipeline ---------------------------------------------------------------------


class Pipeline:
    """Runs what the relay and the workers do, in this process: every unpublished outbox event is
    delivered to each of its subscribers through the real inbox, until nothing is left. A drain
    that raises is what a failed delivery is: the next drain delivers again, with the attempt
    number a worker would give (Event.attempt)."""

    def __init__(self):
        self.deliveries: dict[tuple, int] = {}

    def drain(self, *, duplicate: bool = False, max_rounds: int = 50) -> int:
        from outbox.delivery import deliver
        from outbox.models import OutboxEvent
        from outbox.registry import subscribers_for

        handled = 0
        for _ in range(max_rounds):
            rows = list(
                OutboxEvent.objects.exclude(status=OutboxEvent.Status.PUBLISHED).order_by("id")
            )
            if not rows:
                return handled
            for row in rows:
                envelope = row.as_event().to_envelope()
                for sub in subscribers_for(row.type):
                    for _copy in range(2 if duplicate else 1):
                        key = (row.event_id, sub.name)
                        self.deliveries[key] = attempt = self.deliveries.get(key, 0) + 1
                        deliver(subscriber_name=sub.name, envelope=envelope, attempt=attempt)
                    handled += 1
                row.status = OutboxEvent.Status.PUBLISHED
                row.published_at = timezone.now()
                row.save(update_fields=["status", "published_at"])
        raise AssertionError("the pipeline did not settle")


@pytest.fixture
def pipeline(stripe_server, partner, mailbox):
    return Pipeline()


# --- Real relay and worker processes ---------------------------------------------------------


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chargeflow.settings",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "STRIPE_API_BASE": settings.STRIPE_API_BASE,
        "SHIPPING_PARTNER_URL": settings.SHIPPING_PARTNER_URL,
        "EMAIL_BACKEND": settings.EMAIL_BACKEND,
        "EMAIL_HOST": settings.EMAIL_HOST,
        "EMAIL_PORT": str(settings.EMAIL_PORT),
        "MAILBOX_DIR": str(settings.MAILBOX_DIR),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "OUTBOX_RELAY_POLL_SECONDS": "0.2",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    if IS_POSTGRES:
        user = db.get("USER") or "postgres"
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        env["DATABASE_URL"] = f"postgres://{user}@{host}:{port}/{db['NAME']}"
    else:
        env.pop("DATABASE_URL", None)
        env["SQLITE_PATH"] = str(db["NAME"])
    env.update(extra or {})
    return env


class Stack:
    """Relay, worker and web (gunicorn) processes; their output goes to test-artifacts/logs/."""

    def __init__(self, name: str):
        self.name = name
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = ARTIFACTS / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.web_port = free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"

    def start(self, role: str, *, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        commands = {
            "relay": [sys.executable, "manage.py", "outbox_relay"],
            "worker": [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "chargeflow",
                "worker",
                "--concurrency",
                "2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            # One process, one thread: one persistent database connection (CONN_MAX_AGE).
            "web": [
                str(Path(sys.executable).with_name("gunicorn")),
                "chargeflow.wsgi",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--workers",
                "1",
                "--threads",
                "1",
            ],
        }
        log = open(self.logs / f"{self.name}-{role}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            commands[role],
            cwd=ROOT,
            env=_child_env(extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[role] = proc
        return proc

    def kill(self, role: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(role)
        os.killpg(proc.pid, sig)
        proc.wait(20)

    def stop(self) -> None:
        for role in list(self.procs):
            proc = self.procs[role]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for role in list(self.procs):
            try:
                self.procs[role].wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.procs[role].pid, signal.SIGKILL)
            self.procs.pop(role)


@pytest.fixture
def live_stack(request, transactional_db, sqs, stripe_server, partner, mailbox):
    """Real relay and worker processes against the test database and the local components."""
    sqs.purge()
    stack = Stack(request.node.name)
    yield stack
    stack.stop()
    sqs.purge()


# --- Browser ---------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def _browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test / .ci/run install it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(_browser, request):
    """A fresh browser context and page; `shot(name)` saves a screenshot as a test artifact."""
    context = _browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    shots = ARTIFACTS / "screenshots" / request.node.name
    shots.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1000))

    def shot(name: str) -> Path:
        path = shots / f"{next(counter):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    page.shot = shot
    yield page
    context.close()


# --- Rate limits -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_checkout_caches():
    """The API checkout's per-process caches (products, tax rules, shipping zones: orders.
    selectors) never carry one test's catalog into another (a flushed or rolled-back database
    sends no signal)."""
    from orders.selectors import checkout_caches_clear

    checkout_caches_clear()
    yield
    checkout_caches_clear()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Throttle and login-lockout counts (in the cache) never leak from one test into another."""
    from django.core.cache import cache

    if hasattr(cache, "delete_pattern"):  # Redis; the database cache is per test database
        cache.delete_pattern("throttle_*")
        cache.delete_pattern("login-lockout:*")
    yield
