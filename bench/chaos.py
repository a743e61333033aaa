"""Chaos run (`make chaos`): N orders through the API while processes die, the broker stalls,
PostgreSQL restarts and the shipping partner misbehaves; then, hands off, wait until every order
is final and audit from the outside (Stripe emulator, partner simulator, SMTP sink) and from the
database. Prints a table of faults and invariants; exits 0 only when every invariant holds.

Everything runs as real processes on free loopback ports, started here: a throwaway PostgreSQL
cluster (initdb in a temp dir), the broker (moto's SQS server or a redis-server of its own),
localstripe, the partner simulator, the SMTP sink, gunicorn, two relays, two Celery workers and
beat. A second part, the slow-partner check, pauses the partner while orders are placed and
measures the checkout (SQLite and PostgreSQL).

    python bench/chaos.py --orders 300              # the full run (docs/operations.md)
    python bench/chaos.py --short                   # the CI variant (< 3 minutes)
    python bench/chaos.py --only slow-partner --slow-partner-db sqlite
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import json
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import psycopg
import redis
import requests
from botocore.exceptions import BotoCoreError
from stack import (
    Ports,
    PostgresCluster,
    Processes,
    beat_cmd,
    percentile,
    relay_cmd,
    shop_env,
    start_components,
    start_moto,
    start_redis,
    wait_http,
    web_cmd,
    worker_cmd,
)

STRIPE_KEY = "sk_test_chargeflow_local"
FINAL = ("delivered", "cancelled", "refunded")
POOL_SKUS = ("MOUSE-01", "KEYB-01", "HEAD-01", "CAM-01", "HUB-01", "PAD-01", "STAND-01")
POOL_STOCK = 100_000
RACE_SKU = "CHAIR-01"
APP_QUEUES = [
    f"chargeflow-{app}" for app in ("orders", "invoicing", "billing", "shipping", "notifications")
]
ADDRESS = {
    "name": "Chaos Customer",
    "line1": "1 Fault Street",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}
# What each kind of order must end as, and the emails its customer must get (one of each).
EXPECTED_STATUS = {
    "good": "delivered",
    "race": "delivered",
    "authorized": "delivered",
    "declined": "cancelled",
    "undeliverable": "refunded",
}
EXPECTED_EMAILS = {
    "delivered": {
        "order_confirmation",
        "invoice_issued",
        "payment_received",
        "shipped",
        "delivered",
    },
    # A declined card is told once, in the cancellation email (docs/notifications.md).
    "cancelled": {"order_confirmation", "invoice_issued", "cancelled"},
    "refunded": {"order_confirmation", "invoice_issued", "payment_received", "refunded"},
}


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} chaos: {message}", flush=True)


# --- the database, read from outside (PostgreSQL or SQLite) ---------------------------------


class Database:
    def __init__(self, env: dict[str, str]):
        self.url = env.get("DATABASE_URL", "")
        self.sqlite = env.get("SQLITE_PATH", "")

    def rows(self, sql: str) -> list[tuple]:
        if self.url:
            with psycopg.connect(self.url, connect_timeout=5) as conn:
                return conn.execute(sql).fetchall()
        with sqlite3.connect(self.sqlite, timeout=30) as conn:
            return conn.execute(sql).fetchall()

    def value(self, sql: str):
        return self.rows(sql)[0][0]

    def statuses(self) -> dict[str, str]:
        """order id (hex, no dashes) -> status."""
        return {
            str(oid).replace("-", ""): status
            for oid, status in self.rows("SELECT id, status FROM orders_order")
        }


# --- the client: orders through the public API ----------------------------------------------


@dataclass
class Placed:
    key: str
    kind: str
    body: dict
    status: int = 0
    order: dict = field(default_factory=dict)
    latency: float = 0.0
    tries: int = 0
    duplicate: str = ""  # "", "again" or "concurrent"
    duplicate_ids: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def order_id(self) -> str:
        return str(self.order.get("id", "")).replace("-", "")


class Client:
    """Places orders like a careful API client: on a connection error, a 5xx or a 429 it sends
    the same request with the same Idempotency-Key again until `patience` runs out."""

    def __init__(self, base: str, stripe_base: str, patience: float = 240):
        self.base, self.stripe_base, self.patience = base, stripe_base, patience
        self.local = threading.local()
        self.retried = Counter()  # why requests were sent again

    @property
    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def post(self, path: str, body: dict, key: str) -> tuple[int, dict, float, int]:
        deadline = time.monotonic() + self.patience
        tries = 0
        while True:
            tries += 1
            started = time.monotonic()
            try:
                response = self.session.post(
                    f"{self.base}{path}", json=body, headers={"Idempotency-Key": key}, timeout=30
                )
                latency = time.monotonic() - started
                if response.status_code < 500 and response.status_code != 429:
                    try:
                        payload = response.json()
                    except ValueError:
                        payload = {"raw": response.text[:200]}
                    return response.status_code, payload, latency, tries
                self.retried[f"HTTP {response.status_code}"] += 1
            except requests.RequestException as exc:
                self.retried[type(exc).__name__] += 1
            if time.monotonic() > deadline:
                return 0, {"error": "gave up"}, time.monotonic() - started, tries
            time.sleep(0.5)

    def place(self, placed: Placed) -> Placed:
        if placed.kind == "authorized":
            return self.place_authorized(placed)
        if placed.duplicate == "concurrent":
            with ThreadPoolExecutor(2) as pool:
                results = list(
                    pool.map(
                        lambda _: self.post("/api/v1/orders/", placed.body, placed.key), [0, 1]
                    )
                )
            (placed.status, placed.order, placed.latency, placed.tries), other = results
            placed.duplicate_ids = [str(other[1].get("id", "")).replace("-", "")]
            return placed
        placed.status, placed.order, placed.latency, placed.tries = self.post(
            "/api/v1/orders/", placed.body, placed.key
        )
        if placed.duplicate == "again" and placed.status == 201:
            again = self.post("/api/v1/orders/", placed.body, placed.key)
            placed.duplicate_ids = [str(again[1].get("id", "")).replace("-", "")]
        return placed

    def place_authorized(self, placed: Placed) -> Placed:
        """The authorize-first path: quote (payment-intents), confirm at Stripe, place."""
        quote_body = {"items": placed.body["items"], "country": ADDRESS["country"]}
        status, quote, _, _ = self.post("/api/v1/payment-intents/", quote_body, f"q-{placed.key}")
        if status != 201:
            placed.status, placed.error = status, f"quote answered {status}: {quote}"
            return placed
        confirm = requests.post(
            f"{self.stripe_base}/v1/payment_intents/{quote['payment_intent']}/confirm",
            data={"payment_method": "pm_card_visa"},
            headers={"Authorization": f"Bearer {STRIPE_KEY}"},
            timeout=30,
        )
        if confirm.status_code != 200:
            placed.status, placed.error = 0, f"confirm answered {confirm.status_code}"
            return placed
        body = {k: v for k, v in placed.body.items() if k != "payment_method"}
        body["payment_intent"] = quote["payment_intent"]
        placed.body = body
        placed.status, placed.order, placed.latency, placed.tries = self.post(
            "/api/v1/orders/", body, placed.key
        )
        return placed


def order_plan(n: int, rng: random.Random, *, authorized: bool, duplicates: float) -> list[Placed]:
    plan = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.15:
            kind = "declined"
        elif roll < 0.30:
            kind = "undeliverable"
        elif authorized and roll < 0.40:
            kind = "authorized"
        else:
            kind = "good"
        skus = rng.sample(POOL_SKUS, rng.choice((1, 2)))
        body = {
            "email": f"chaos-{len(plan)}@example.com",
            "shipping_address": {
                **ADDRESS,
                "postal_code": "00000" if kind == "undeliverable" else ADDRESS["postal_code"],
            },
            "items": [{"sku": sku, "quantity": rng.choice((1, 2))} for sku in skus],
            "payment_method": "pm_card_chargeCustomerFail"
            if kind == "declined"
            else "pm_card_visa",
        }
        roll = rng.random()
        duplicate = ""
        if kind != "authorized" and roll < duplicates:
            duplicate = "concurrent" if roll < duplicates / 2 else "again"
        plan.append(Placed(key=str(uuid.uuid4()), kind=kind, body=body, duplicate=duplicate))
    return plan


def race(client: Client, buyers: int) -> list[Placed]:
    """`buyers` shoppers want one unit each of RACE_SKU at the same moment."""
    barrier = threading.Barrier(buyers)

    def buy(i: int) -> Placed:
        placed = Placed(
            key=str(uuid.uuid4()),
            kind="race",
            body={
                "email": f"racer-{i}@example.com",
                "shipping_address": ADDRESS,
                "items": [{"sku": RACE_SKU, "quantity": 1}],
                "payment_method": "pm_card_visa",
            },
        )
        barrier.wait()
        return client.place(placed)

    with ThreadPoolExecutor(buyers) as pool:
        return list(pool.map(buy, range(buyers)))


# --- the shop under test ---------------------------------------------------------------------


class Shop:
    """The processes of one run, and the supervisor's levers on them."""

    def __init__(self, workdir: Path, *, database: str, broker: str, args: argparse.Namespace):
        self.workdir, self.args = workdir, args
        self.ports = Ports()
        self.pg = PostgresCluster(workdir) if database == "postgres" else None
        self.broker_kind = broker
        self.procs = Processes({}, workdir)
        self.roles: dict[str, object] = {}  # name -> Popen, for workers and relays
        self.lock = threading.Lock()
        self.crashed = Counter()  # processes that exited by themselves (restarted)
        self.stopping = False

    def start(self, *, partner_args: tuple[str, ...], workers: int, relays: int, beat: bool):
        if self.pg:
            self.pg.start()
        if self.broker_kind == "sqs":
            self.broker, broker_url = start_moto(self.procs)
        else:
            self.broker, broker_url = start_redis(self.procs, "redis-broker")
        cache_url = self.args.redis_url or start_redis(self.procs, "redis-cache")[1]
        self.env = shop_env(
            self.workdir,
            self.ports,
            database_url=self.pg.url if self.pg else "",
            broker_url=broker_url,
            redis_url=cache_url,
        )
        self.env["SHIPPING_POLL_SECONDS"] = "3"
        if self.args.visibility_timeout:
            self.env["SQS_VISIBILITY_TIMEOUT"] = str(self.args.visibility_timeout)
        if self.args.lease_seconds:
            self.env["EMAIL_SEND_LEASE_SECONDS"] = str(self.args.lease_seconds)
            self.env["BILLING_STEP_LEASE_SECONDS"] = str(self.args.lease_seconds)
        self.procs.env = self.env
        self.db = Database(self.env)
        components = ThreadPoolExecutor(1).submit(  # they start while the database is set up
            start_components, self.procs, self.ports, self.workdir, partner_args=partner_args
        )
        self.procs.manage(  # one Django start-up instead of five
            "shell",
            "-c",
            "from django.core.management import call_command; "
            "from orders.models import Product; "
            "call_command('migrate', interactive=False, verbosity=0); "
            "call_command('seed_catalog', verbosity=0); "
            + ("call_command('sqs_create_queues', wait=30); " if self.broker_kind == "sqs" else "")
            + f"Product.objects.filter(sku__in={list(POOL_SKUS)!r}).update(stock={POOL_STOCK}); "
            f"Product.objects.filter(sku={RACE_SKU!r}).update(stock={self.args.race_units})",
        )
        self.initial_stock = dict(self.db.rows("SELECT sku, stock FROM orders_product"))
        self.components = components.result()
        self.procs.start("web", *web_cmd(self.ports.web))
        for i in range(1, relays + 1):
            self.start_role(f"relay-{i}")
        for i in range(1, workers + 1):
            self.start_role(f"worker-{i}")
        for app in self.args.own_worker:
            self.start_role(f"{app}-worker")
        if beat:
            self.procs.start("beat", *beat_cmd(self.workdir))
        wait_http(f"{self.env['SITE_URL']}/health/")

    def start_role(self, name: str) -> None:
        concurrency = self.args.worker_concurrency
        if name.startswith("relay"):
            cmd = relay_cmd()
        elif name.endswith("-worker"):  # one app's queue on a worker of its own
            cmd = worker_cmd(concurrency, name=name, queues=f"chargeflow-{name[:-7]}")
        else:
            exclude = ",".join(f"chargeflow-{app}" for app in self.args.own_worker)
            cmd = worker_cmd(concurrency, name=name, exclude=exclude)
        self.roles[name] = self.procs.start(name, *cmd)

    def kill_role(self, name: str) -> None:
        with self.lock:
            if self.stopping:
                return
            self.procs.kill(self.roles[name])
            self.start_role(name)

    def restart_crashed(self) -> None:
        with self.lock:
            if self.stopping:
                return
            for name, proc in list(self.roles.items()):
                if proc.poll() is not None:
                    self.crashed[name] += 1
                    log(f"{name} exited by itself (code {proc.returncode}): restarted")
                    self.procs.procs.remove(proc)
                    self.start_role(name)

    def pause(self, proc, seconds: float) -> None:
        Processes.signal(proc, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            Processes.signal(proc, signal.SIGCONT)

    def partner(self, path: str, payload: dict | None = None) -> dict:
        url = f"{self.env['SHIPPING_PARTNER_URL']}/_sim/{path}"
        if payload is None:
            return requests.get(url, timeout=10).json()
        return requests.post(url, json=payload, timeout=10).json()

    def stop(self) -> None:
        with self.lock:
            self.stopping = True  # nothing is restarted any more
        self.procs.stop()
        if self.pg:
            self.pg.stop()


def kill_round(roles: list[str], rng: random.Random) -> list[str]:
    """Every role once, in a random order alternating workers and relays (a worker first)."""
    workers = [r for r in roles if not r.startswith("relay")]
    relays = [r for r in roles if r.startswith("relay")]
    rng.shuffle(workers)
    rng.shuffle(relays)
    order = []
    while workers or relays:
        order += [workers.pop()] if workers else []
        order += [relays.pop()] if relays else []
    return order


class Supervisor(threading.Thread):
    """The faults: a SIGKILL to a random worker or relay every 10-15 s (restarted at once), the
    broker paused once, PostgreSQL restarted once. Also restarts processes that die by
    themselves, as a process manager would (counted apart)."""

    def __init__(self, shop: Shop, args: argparse.Namespace, rng: random.Random):
        super().__init__(daemon=True)
        self.shop, self.args, self.rng = shop, args, rng
        self.stop_faults = threading.Event()
        self.finished = threading.Event()
        self.kills = Counter()
        self.broker_paused = 0.0
        self.pg_restarts: list[float] = []
        self.started = time.monotonic()

    def at(self, seconds: float) -> float:
        return self.started + seconds

    def run(self) -> None:
        args = self.args
        next_kill = self.at(self.rng.uniform(*args.kill_every))
        broker_at = self.at(args.broker_pause_at) if args.broker_pause else None
        pg_at = self.at(args.pg_restart_at) if self.shop.pg and args.pg_restart else None
        threads, bag = [], []
        while not self.stop_faults.is_set():
            now = time.monotonic()
            if (
                args.kill_rounds
                and now >= next_kill
                and sum(self.kills.values()) < args.kill_rounds
            ):
                if not bag:  # every worker and relay once per round, a worker first
                    bag = kill_round(sorted(self.shop.roles), self.rng)
                name = bag.pop(0)
                log(f"SIGKILL {name}")
                self.shop.kill_role(name)
                self.kills[name] += 1
                next_kill = now + self.rng.uniform(*args.kill_every)
            if broker_at and now >= broker_at:
                broker_at = None
                threads.append(threading.Thread(target=self.pause_broker, daemon=True))
                threads[-1].start()
            if pg_at and now >= pg_at:
                pg_at = None
                threads.append(threading.Thread(target=self.restart_pg, daemon=True))
                threads[-1].start()
            self.shop.restart_crashed()
            self.stop_faults.wait(0.5)
        for thread in threads:
            thread.join()
        self.finished.set()

    def pause_broker(self) -> None:
        log(f"broker ({self.shop.broker_kind}) paused for {self.args.broker_pause:g} s")
        self.shop.pause(self.shop.broker, self.args.broker_pause)
        self.broker_paused = self.args.broker_pause
        log("broker resumed")

    def restart_pg(self) -> None:
        log(f"PostgreSQL restart (-m {self.args.pg_restart_mode})")
        self.pg_restarts.append(self.shop.pg.restart(self.args.pg_restart_mode))
        log(f"PostgreSQL back after {self.pg_restarts[-1]:.1f} s")

    def faults_done(self) -> bool:
        """The schedule is over: the broker pause and the restart happened, the window passed."""
        broker_done = not self.args.broker_pause or self.broker_paused
        pg_done = not (self.shop.pg and self.args.pg_restart) or self.pg_restarts
        elapsed = time.monotonic() - self.started
        return bool(broker_done and pg_done and elapsed >= self.args.chaos_seconds)


# --- waiting, then auditing ------------------------------------------------------------------


def settled(shop: Shop, ids: set[str]) -> tuple[bool, str]:
    db = shop.db
    statuses = db.statuses()
    not_final = [oid for oid in ids if statuses.get(oid) not in FINAL]
    unpublished = db.value("SELECT count(*) FROM outbox_outboxevent WHERE status <> 'published'")
    pending_mail = db.value(
        "SELECT count(*) FROM notifications_emaillog "
        "WHERE status IN ('queued', 'sending', 'pending')"
    )
    queued = app_queue_backlog(broker_depths(shop))
    state = (
        f"{len(not_final)} not final, {unpublished} unpublished, {pending_mail} emails pending, "
        f"{queued} messages queued"
    )
    return (not not_final and not unpublished and not pending_mail and not queued), state


def wait_until_settled(shop: Shop, ids: set[str], timeout: float) -> tuple[bool, float]:
    started = time.monotonic()
    last = ""
    while True:
        try:
            done, state = settled(shop, ids)
        except (psycopg.Error, sqlite3.Error, OSError, redis.RedisError, BotoCoreError) as exc:
            done, state = False, f"cannot tell: {exc}"
        if state != last:
            log(f"draining: {state}")
            last = state
        if done or time.monotonic() - started > timeout:
            return done, time.monotonic() - started
        shop.restart_crashed()
        time.sleep(2)


def stripe_list(base: str, resource: str) -> list[dict]:
    items, after = [], None
    while True:
        params = {"limit": 100, **({"starting_after": after} if after else {})}
        page = requests.get(
            f"{base}/v1/{resource}",
            params=params,
            headers={"Authorization": f"Bearer {STRIPE_KEY}"},
            timeout=60,
        ).json()
        items.extend(page["data"])
        if not page.get("has_more") or not page["data"]:
            return items
        after = page["data"][-1]["id"]


def mailbox(directory: Path) -> dict[tuple[str, str], list[str]]:
    """(order number, kind) -> the Message-IDs of every copy received."""
    parser = email.parser.BytesParser(policy=email.policy.default)
    found = defaultdict(list)
    for path in sorted(directory.glob("*.eml")):
        with open(path, "rb") as handle:
            message = parser.parse(handle, headersonly=True)
        key = (str(message["X-ChargeFlow-Order"]), str(message["X-ChargeFlow-Kind"]))
        found[key].append(str(message["Message-ID"]))
    return found


def number_gaps(numbers: list[str]) -> tuple[int, int]:
    """(gaps, duplicates) in numbers like 2026-000007 / CN-2026-000003, per series."""
    series = defaultdict(list)
    for number in numbers:
        prefix, _, value = number.rpartition("-")
        series[prefix].append(int(value))
    gaps = duplicates = 0
    for values in series.values():
        duplicates += len(values) - len(set(values))
        gaps += max(values) - len(set(values))
    return gaps, duplicates


@dataclass
class Check:
    name: str
    expected: object
    found: object
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.expected == self.found


def check_table(checks: list[Check]) -> list[str]:
    lines = ["| invariant | expected | found | |", "|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c.name} | {c.expected} | {c.found} | {'OK' if c.ok else 'FAIL'} |")
    return lines + [f"FAIL {c.name}: {c.detail}" for c in checks if not c.ok]


def audit(shop: Shop, placed: list[Placed], broker: str, depths: dict[str, int]) -> list[Check]:
    db = shop.db
    ok = [p for p in placed if p.status == 201]
    ours = {p.order_id: p for p in ok}
    rows = db.rows("SELECT id, number, status, total, idempotency_key FROM orders_order")
    orders = {str(r[0]).replace("-", ""): r for r in rows}
    number_of = {oid: r[1] for oid, r in orders.items()}
    checks = []

    lost = sorted(oid for oid in ours if oid not in orders)
    checks.append(
        Check("orders lost (201 answered, not in the database)", 0, len(lost), ",".join(lost[:5]))
    )
    extra = sorted(oid for oid in orders if oid not in ours)
    checks.append(
        Check("orders nobody placed (no 201 for them)", 0, len(extra), ",".join(extra[:5]))
    )
    unanswered = [
        p.key
        for p in placed
        if p.status not in (201, 409) or (p.status == 409 and p.kind != "race")
    ]
    checks.append(
        Check(
            "requests never answered 201 (outside the race)",
            0,
            len(unanswered),
            "; ".join(
                f"{p.kind} {p.status} {p.error or p.order}"[:120]
                for p in placed
                if p.key in unanswered[:3]
            ),
        )
    )
    dup = [p for p in ok if p.duplicate]
    mismatched = [p.order_id for p in dup if p.duplicate_ids != [p.order_id]]
    checks.append(
        Check(
            f"requests sent twice ({len(dup)}) -> another order",
            0,
            len(mismatched),
            ",".join(mismatched[:5]),
        )
    )
    race_won = sum(1 for p in placed if p.kind == "race" and p.status == 201)
    race_lost = sum(1 for p in placed if p.kind == "race" and p.status == 409)
    buyers = sum(1 for p in placed if p.kind == "race")
    checks.append(
        Check(
            f"race: {buyers} buyers for {shop.args.race_units} units (201 / 409)",
            f"{shop.args.race_units} / {buyers - shop.args.race_units}",
            f"{race_won} / {race_lost}",
        )
    )
    not_final = sorted(oid for oid in ours if orders.get(oid, (0, 0, None))[2] not in FINAL)
    checks.append(
        Check(
            "orders not final",
            0,
            len(not_final),
            ", ".join(f"{oid} {orders[oid][2]}" for oid in not_final[:5] if oid in orders),
        )
    )
    wrong = sorted(
        oid
        for oid, p in ours.items()
        if oid in orders and orders[oid][2] != EXPECTED_STATUS[p.kind]
    )
    checks.append(
        Check(
            "orders ending other than their card/address says",
            0,
            len(wrong),
            ", ".join(f"{oid} {ours[oid].kind}->{orders[oid][2]}" for oid in wrong[:5]),
        )
    )

    # Stripe, from its own API: money moved per order.
    base = shop.env["STRIPE_API_BASE"]
    captured = defaultdict(int)
    charges = Counter()
    for intent in stripe_list(base, "payment_intents"):
        oid = str((intent.get("metadata") or {}).get("order_id", "")).replace("-", "")
        received = intent.get("amount_received") or 0
        if intent.get("status") == "succeeded" and received:
            captured[oid] += received
            charges[oid] += 1
    refunded = defaultdict(int)
    for refund in stripe_list(base, "refunds"):
        if refund.get("status") in ("succeeded", "pending"):
            oid = str((refund.get("metadata") or {}).get("order_id", "")).replace("-", "")
            refunded[oid] += refund.get("amount") or 0
    bad_charges, bad_refunds = [], []
    for oid, p in ours.items():
        status = EXPECTED_STATUS[p.kind]
        want = 0 if status == "cancelled" else 1
        total_minor = int(Decimal(str(orders[oid][3] or 0)) * 100) if oid in orders else 0
        if charges[oid] != want or (want and captured[oid] != total_minor):
            bad_charges.append(f"{oid} {charges[oid]} charge(s) {captured[oid]}/{total_minor}")
        want_refund = captured[oid] if status == "refunded" else 0
        if refunded[oid] != want_refund:
            bad_refunds.append(f"{oid} refunded {refunded[oid]} of {captured[oid]}")
    stray = sorted(oid for oid in charges if oid not in ours)
    checks.append(
        Check(
            "orders charged other than once (exact total) at Stripe",
            0,
            len(bad_charges),
            "; ".join(bad_charges[:3]),
        )
    )
    checks.append(
        Check("charges at Stripe for no order of ours", 0, len(stray), ",".join(stray[:5]))
    )
    checks.append(
        Check(
            "orders whose refunds != charge (refunded) or != 0 (others)",
            0,
            len(bad_refunds),
            "; ".join(bad_refunds[:3]),
        )
    )

    # The partner, from its own admin endpoint: shipments per order.
    shipments = Counter(
        str(s["reference"]).replace("-", "") for s in shop.partner("shipments")["shipments"]
    )
    bad_ship = [
        f"{oid} {shipments[oid]}"
        for oid, p in ours.items()
        if shipments[oid] != (1 if EXPECTED_STATUS[p.kind] == "delivered" else 0)
    ]
    checks.append(
        Check(
            "orders with other than 1 shipment (delivered) / 0 (others) at the partner",
            0,
            len(bad_ship),
            "; ".join(bad_ship[:3]),
        )
    )

    # The SMTP sink: one email of each expected kind per order (distinct Message-IDs).
    box = mailbox(Path(shop.env["MAILBOX_DIR"]))
    copies = sum(len(ids) for ids in box.values())
    bad_mail = []
    for oid, p in ours.items():
        number = number_of.get(oid, "?")
        want = EXPECTED_EMAILS[EXPECTED_STATUS[p.kind]]
        got = {kind: len(set(ids)) for (num, kind), ids in box.items() if num == number}
        if got != dict.fromkeys(want, 1):
            bad_mail.append(f"{number} {sorted(got.items())}")
    distinct = sum(len(set(ids)) for ids in box.values())
    checks.append(
        Check(
            f"orders without exactly one email of each expected kind ({distinct} distinct "
            f"Message-IDs, {copies} messages received)",
            0,
            len(bad_mail),
            "; ".join(bad_mail[:3]),
        )
    )

    # The database: numbering, stock, outbox, failures.
    invoices = [r[0] for r in db.rows("SELECT number FROM invoicing_invoice")]
    notes = [r[0] for r in db.rows("SELECT number FROM invoicing_creditnote")]
    gaps, dups = number_gaps(invoices)
    checks.append(
        Check(
            f"invoice numbers: gaps, duplicates ({len(invoices)} issued)", "0, 0", f"{gaps}, {dups}"
        )
    )
    gaps, dups = number_gaps(notes)
    checks.append(
        Check(
            f"credit-note numbers: gaps, duplicates ({len(notes)} issued)",
            "0, 0",
            f"{gaps}, {dups}",
        )
    )
    failed_orders = sum(
        1 for oid in ours if orders.get(oid, (0, 0, ""))[2] in ("cancelled", "refunded")
    )
    checks.append(
        Check(
            "invoices = orders; credit notes = cancelled + refunded",
            f"{len(ours)}, {failed_orders}",
            f"{len(invoices)}, {len(notes)}",
        )
    )
    stock = dict(db.rows("SELECT sku, stock FROM orders_product"))
    sold = Counter()
    for sku, qty in db.rows(
        "SELECT l.sku, l.quantity FROM orders_orderline l JOIN orders_order o ON o.id = l.order_id "
        "WHERE o.status NOT IN ('cancelled', 'refunded')"
    ):
        sold[sku] += qty
    off = [
        f"{sku} {stock[sku]} != {shop.initial_stock[sku]}-{sold[sku]}"
        for sku in stock
        if stock[sku] != shop.initial_stock[sku] - sold[sku]
    ]
    checks.append(Check("products whose stock != initial - sold", 0, len(off), "; ".join(off[:3])))
    checks.append(
        Check(
            "outbox rows not published",
            0,
            db.value("SELECT count(*) FROM outbox_outboxevent WHERE status <> 'published'"),
        )
    )
    unresolved = db.rows(
        "SELECT subscriber, event_type, aggregate_id, last_error FROM outbox_faileddelivery "
        "WHERE resolved_at IS NULL"
    )
    checks.append(
        Check(
            "failed deliveries unresolved",
            0,
            len(unresolved),
            "; ".join(f"{r[0]} {r[1]} {r[2]}: {r[3][:80]}" for r in unresolved[:3]),
        )
    )
    out = shop.procs.manage("shell", "-c", MISSING_DELIVERIES)
    missing = json.loads(out.strip().splitlines()[-1])  # the shell may print a banner first
    checks.append(
        Check(
            f"(event, subscriber) pairs never handled ({missing['pairs']} due)",
            0,
            len(missing["missing"]),
            "; ".join(missing["missing"][:3]),
        )
    )
    if broker == "sqs":
        dlq = {name: depth for name, depth in depths.items() if name.endswith("-dlq")}
        checks.append(
            Check(
                "messages in the dead-letter queues",
                0,
                sum(dlq.values()),
                ", ".join(f"{k}={v}" for k, v in dlq.items() if v),
            )
        )
    checks.append(
        Check(
            "messages left in the apps' queues (visible or in flight)",
            0,
            app_queue_backlog(depths),
            ", ".join(f"{k}={depths[k]}" for k in APP_QUEUES if depths.get(k)),
        )
    )
    return checks


# Every published event reached every subscriber of its type (the inbox says so), read with the
# registry of the code under test.
MISSING_DELIVERIES = """
import json
from outbox.models import InboxMessage, OutboxEvent
from outbox.registry import subscribers_for
handled = set(InboxMessage.objects.values_list("event_id", "subscriber"))
pairs, missing = 0, []
for event_id, event_type, aggregate_id in OutboxEvent.objects.values_list(
    "event_id", "type", "aggregate_id"
):
    for sub in subscribers_for(event_type):
        pairs += 1
        if (event_id, sub.name) not in handled:
            missing.append(f"{sub.name} {event_type} {aggregate_id}")
print(json.dumps({"pairs": pairs, "missing": missing}))
"""


def broker_depths(shop: Shop) -> dict[str, int]:
    """Messages per queue (visible + in flight; Redis: waiting), read from the broker itself."""
    url = urlsplit(shop.env["CELERY_BROKER_URL"])
    if url.scheme == "sqs":
        client = boto3.client(
            "sqs",
            endpoint_url=f"http://{url.hostname}:{url.port}",
            region_name="eu-west-1",
            aws_access_key_id=url.username,
            aws_secret_access_key=url.password,
        )
        depths = {}
        for queue in client.list_queues().get("QueueUrls", []):
            attrs = client.get_queue_attributes(
                QueueUrl=queue,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            depths[queue.rsplit("/", 1)[1]] = sum(int(v) for v in attrs.values())
        return depths
    client = redis.Redis.from_url(shop.env["CELERY_BROKER_URL"])
    return {name: client.llen(name) for name in APP_QUEUES}


def app_queue_backlog(depths: dict[str, int]) -> int:
    """Messages for the apps' subscribers (not the dead letters, not beat's housekeeping)."""
    return sum(depths.get(name, 0) for name in APP_QUEUES)


# --- the chaos run ---------------------------------------------------------------------------


def chaos(args: argparse.Namespace, workdir: Path) -> tuple[bool, list[str]]:
    rng = random.Random(args.seed)
    shop = Shop(workdir / "chaos", database="postgres", broker=args.broker, args=args)
    shop.workdir.mkdir()
    lines = []
    try:
        log(f"starting the shop in {shop.workdir} (PostgreSQL of its own, broker {args.broker})")
        shop.start(
            partner_args=(
                "--failure-rate",
                str(args.partner_errors),
                "--lost-response-rate",
                str(args.partner_lost),
                "--transit-seconds",
                "1",
                "--delivery-seconds",
                "2",
                "--seed",
                str(args.seed),
            ),
            workers=args.workers,
            relays=args.relays,
            beat=True,
        )
        client = Client(shop.env["SITE_URL"], shop.env["STRIPE_API_BASE"])
        authorized = args.authorized and probe_payment_intents(client)
        plan = order_plan(args.orders, rng, authorized=authorized, duplicates=args.duplicates)
        supervisor = Supervisor(shop, args, rng)
        started = time.monotonic()
        supervisor.started = started
        supervisor.start()
        log(f"{args.race_buyers} buyers race for {args.race_units} units of {RACE_SKU}")
        placed = race(client, args.race_buyers)
        log(f"placing {len(plan)} orders at {args.rate:g}/s")

        def one(i_p):
            i, p = i_p
            time.sleep(max(0.0, started + i / args.rate - time.monotonic()))
            return client.place(p)

        pool = ThreadPoolExecutor(args.clients)
        try:
            placed += list(pool.map(one, enumerate(plan)))
        finally:  # on Ctrl-C, do not wait for the orders not sent yet
            pool.shutdown(wait=False, cancel_futures=True)
        placing = time.monotonic() - started
        log(f"all orders answered after {placing:.0f} s; faults continue until their schedule ends")
        while not supervisor.faults_done():
            time.sleep(0.5)
        supervisor.stop_faults.set()
        supervisor.finished.wait()
        faults_end = time.monotonic()
        log("hands off: waiting until every order is final")
        ids = {p.order_id for p in placed if p.status == 201}
        done, drain = wait_until_settled(shop, ids, args.drain_timeout)
        depths = broker_depths(shop)
        checks = audit(shop, placed, args.broker, depths)
        total = time.monotonic() - started
        all_statuses = shop.db.statuses()
        statuses = Counter(all_statuses[oid] for oid in ids if oid in all_statuses)
        counters = shop.partner("shipments")["counters"]
        downs = ", ".join(f"{s:.1f} s" for s in supervisor.pg_restarts)
        twice = Counter(p.duplicate for p in placed if p.duplicate)
        faults = [
            (
                "SIGKILL a worker (its process group), restarted at once",
                per_role(supervisor.kills, worker=True),
            ),
            ("SIGKILL a relay, restarted at once", per_role(supervisor.kills, worker=False)),
            (
                f"broker ({args.broker}) paused: SIGSTOP, SIGCONT after",
                f"{supervisor.broker_paused:g} s" if supervisor.broker_paused else 0,
            ),
            (
                f"PostgreSQL restarted (pg_ctl -m {args.pg_restart_mode})",
                f"{len(supervisor.pg_restarts)} (down {downs})" if downs else 0,
            ),
            (
                f"partner 503s / lost answers (rates {args.partner_errors:g} / "
                f"{args.partner_lost:g})",
                f"{counters['injected_failures']} / {counters['lost_responses']}",
            ),
            (
                "requests sent twice, same Idempotency-Key (after / concurrently)",
                f"{twice['again']} / {twice['concurrent']}",
            ),
            ("client requests sent again (same key) after", dict(client.retried) or "none"),
            ("processes that exited by themselves (restarted)", dict(shop.crashed) or "none"),
        ]
        kinds = dict(Counter(p.kind for p in placed if p.status == 201))
        lines += [
            f"### Chaos run: {len(ids)} orders ({args.broker} broker, PostgreSQL of its own)",
            "",
            "| fault | injected |",
            "|---|---|",
            *(f"| {name} | {count} |" for name, count in faults),
            "",
            f"Orders by kind {kinds}; final statuses {dict(statuses)}.",
            f"Duration {total:.0f} s: orders answered after {placing:.0f} s, faults ended after "
            f"{faults_end - started:.0f} s, drained {drain:.0f} s later"
            f"{'' if done else ' (TIMED OUT)'}.",
            "",
            *check_table(checks),
        ]
        return done and all(c.ok for c in checks), lines
    finally:
        shop.stop()


def per_role(counts: Counter, *, worker: bool) -> str:
    """'3 (worker-1 2, orders-worker 1)': the workers' (or the relays') share of `counts`."""
    mine = {n: c for n, c in sorted(counts.items()) if n.startswith("relay") != worker}
    detail = ", ".join(f"{n} {c}" for n, c in mine.items())
    return f"{sum(mine.values())} ({detail})" if mine else "0"


def probe_payment_intents(client: Client) -> bool:
    try:
        response = requests.post(f"{client.base}/api/v1/payment-intents/", json={}, timeout=10)
    except requests.RequestException:
        return False
    return response.status_code != 404


# --- the slow-partner check ------------------------------------------------------------------


# While the partner is paused an order gets as far as it can without it; then it finishes.
SLOW_PARTNER_PAUSED_STATUS = {"good": "paid", "declined": "cancelled"}
SLOW_PARTNER_FINAL = {"good": ("shipped", "delivered"), "declined": ("cancelled",)}


def slow_partner(args: argparse.Namespace, workdir: Path, database: str) -> tuple[bool, list[str]]:
    shop = Shop(workdir / f"slow-{database}", database=database, broker="redis", args=args)
    shop.workdir.mkdir()
    try:
        log(f"slow partner on {database}: starting the shop in {shop.workdir}")
        shop.start(
            partner_args=("--transit-seconds", "1", "--delivery-seconds", "2"),
            workers=args.workers,
            relays=1,
            beat=False,
        )
        client = Client(shop.env["SITE_URL"], shop.env["STRIPE_API_BASE"])
        rng = random.Random(args.seed)
        plan = order_plan(args.slow_orders, rng, authorized=False, duplicates=0)
        for i, p in enumerate(plan):  # good cards (they need the partner), and a declined one
            p.kind = "declined" if i % 5 == 4 else "good"  # in five (it never does)
            p.body["payment_method"] = (
                "pm_card_chargeCustomerFail" if p.kind == "declined" else "pm_card_visa"
            )
            p.body["shipping_address"]["postal_code"] = ADDRESS["postal_code"]
        partner = shop.components["partner"]
        Processes.signal(partner, signal.SIGSTOP)
        paused_at = time.monotonic()
        log(f"partner paused; placing {len(plan)} orders {args.slow_interval:g} s apart")
        placed = []
        for i, p in enumerate(plan):
            time.sleep(max(0.0, paused_at + i * args.slow_interval - time.monotonic()))
            placed.append(client.place(p))
        ids = {p.order_id for p in placed if p.status == 201}
        time.sleep(max(0.0, paused_at + args.slow_pause - time.monotonic()))
        statuses = shop.db.statuses()
        moved = sum(
            1 for p in placed if statuses.get(p.order_id) == SLOW_PARTNER_PAUSED_STATUS[p.kind]
        )
        shipped_while_paused = sum(
            1 for oid in ids if statuses.get(oid) in ("shipped", "delivered")
        )
        Processes.signal(partner, signal.SIGCONT)
        log(f"partner resumed after {time.monotonic() - paused_at:.0f} s; {moved} orders moved")
        resumed = time.monotonic()
        deadline = resumed + args.slow_drain_timeout
        while time.monotonic() < deadline:
            statuses = shop.db.statuses()
            shipped = sum(
                1 for p in placed if statuses.get(p.order_id) in SLOW_PARTNER_FINAL[p.kind]
            )
            if shipped == len(ids):
                break
            shop.restart_crashed()
            time.sleep(1)
        ship_time = time.monotonic() - resumed
        latencies = [p.latency for p in placed if p.status == 201]
        p50, p99 = statistics.median(latencies), percentile(latencies, 99)
        checks = [
            Check("checkouts answered 201", len(plan), len(ids)),
            Check(
                "checkouts slower than 1 s",
                0,
                sum(1 for x in latencies if x >= 1.0),
                f"max {max(latencies):.2f} s",
            ),
            Check(
                f"orders paid (good cards) or cancelled (declined) while the partner was paused "
                f"({args.slow_pause:g} s)",
                len(ids),
                moved,
            ),
            Check("orders shipped while it was paused (it cannot answer)", 0, shipped_while_paused),
            Check(
                f"orders shipped (good) or still cancelled after it came back ({ship_time:.0f} s)",
                len(ids),
                shipped,
            ),
        ]
        lines = [
            f"### Slow partner on {database}: paused {args.slow_pause:g} s, {len(plan)} orders "
            f"{args.slow_interval:g} s apart; checkout p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms",
            "",
            *check_table(checks),
        ]
        return all(c.ok for c in checks), lines
    finally:
        shop.stop()


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the CI variant (small and quick)")
    parser.add_argument("--only", choices=("chaos", "slow-partner"), default=None)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--rate", type=float, default=3.0, help="orders per second offered")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--broker", choices=("sqs", "redis"), default="sqs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument(
        "--own-worker",
        default="orders,shipping",
        help="apps whose queue has a worker of its own, as in the Procfile (the --workers "
        "consume every other queue); '' = every worker on every queue",
    )
    parser.add_argument("--relays", type=int, default=2)
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=0,
        help="SQS_VISIBILITY_TIMEOUT for the shop (0: its default): how long a message held by "
        "a killed worker stays hidden",
    )
    parser.add_argument(
        "--lease-seconds",
        type=int,
        default=0,
        help="EMAIL_SEND_LEASE_SECONDS and BILLING_STEP_LEASE_SECONDS (0: the shop's defaults): "
        "when a step cut off by a kill is taken up again",
    )
    parser.add_argument("--kill-every", type=float, nargs=2, default=(10.0, 15.0))
    parser.add_argument("--kill-rounds", type=int, default=1000, help="at most this many kills")
    parser.add_argument("--chaos-seconds", type=float, default=0, help="faults last at least this")
    parser.add_argument("--broker-pause", type=float, default=45)
    parser.add_argument("--broker-pause-at", type=float, default=15)
    parser.add_argument("--pg-restart", type=int, default=1)
    parser.add_argument("--pg-restart-at", type=float, default=75)
    parser.add_argument("--pg-restart-mode", choices=("fast", "immediate"), default="fast")
    parser.add_argument("--partner-errors", type=float, default=0.2)
    parser.add_argument("--partner-lost", type=float, default=0.05)
    parser.add_argument(
        "--duplicates", type=float, default=0.1, help="share of requests sent twice"
    )
    parser.add_argument("--authorized", type=int, default=1, help="include payment-intents orders")
    parser.add_argument("--race-buyers", type=int, default=50)
    parser.add_argument("--race-units", type=int, default=10)
    parser.add_argument("--drain-timeout", type=float, default=1800)
    parser.add_argument("--slow-partner-db", default="sqlite,postgres")
    parser.add_argument("--slow-orders", type=int, default=20)
    parser.add_argument("--slow-interval", type=float, default=1.0)
    parser.add_argument("--slow-pause", type=float, default=60)
    parser.add_argument("--slow-drain-timeout", type=float, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--redis-url", default="", help="the shop's cache (default: a redis-server of its own)"
    )
    args = parser.parse_args(argv)
    if args.short:
        # The CI variant: every fault once, small numbers (README: < 3 minutes).
        defaults = {
            "orders": 30,
            "rate": 3.0,
            "kill_rounds": 2,
            "kill_every": (4.0, 7.0),
            "visibility_timeout": 20,
            "lease_seconds": 30,
            "broker_pause": 10,
            "broker_pause_at": 3,
            "pg_restart_at": 8,
            "race_buyers": 20,
            "race_units": 5,
            "drain_timeout": 150,
            "slow_partner_db": "sqlite",
            "slow_orders": 8,
            "slow_interval": 0.5,
            "slow_pause": 15,
            "slow_drain_timeout": 120,
        }
        for name, value in defaults.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    args.own_worker = [app for app in args.own_worker.split(",") if app]
    if not args.chaos_seconds:
        args.chaos_seconds = max(args.pg_restart_at, args.broker_pause_at + args.broker_pause) + 5
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A SIGTERM (a CI timeout) unwinds like Ctrl-C: every process started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="chargeflow-chaos-"))
    log(f"working directory {workdir} (process logs there)")
    results = []
    if args.only in (None, "chaos"):
        results.append(chaos(args, workdir))
    if args.only in (None, "slow-partner"):
        for database in filter(None, args.slow_partner_db.split(",")):
            results.append(slow_partner(args, workdir, database))
    print()
    for _, lines in results:
        print("\n".join(lines))
        print()
    ok = all(ok for ok, _ in results)
    print(json.dumps({"ok": ok, "workdir": str(workdir)}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
