"""Pipeline benchmark (`make bench`): N orders through the API, end to end, on PostgreSQL and the
Redis broker (moto's SQS is too slow for throughput figures, see DESIGN.md §5).

Starts its own processes on free loopback ports: localstripe, the partner simulator, the SMTP
sink, gunicorn, one relay and one Celery worker; places the orders from a thread pool; waits until
every order is shipped; then measures the relay alone on a backlog, with batch size 1 and 100 side
by side in the same run. Prints one table of figures. Not a test: nothing here asserts.

    python bench/pipeline.py --orders 200 --clients 8 --worker-concurrency 4
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
DB_NAME = "chargeflow_bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout}s")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


class Processes:
    def __init__(self, env: dict[str, str], logdir: Path):
        self.env, self.logdir, self.procs = env, logdir, []

    def start(self, name: str, *cmd: str) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            list(cmd),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def run(self, *cmd: str) -> None:
        subprocess.run(list(cmd), cwd=ROOT, env=self.env, check=True, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def recreate_database(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def place_orders(base: str, n: int, clients: int, rate: float) -> list[str]:
    body = {
        "email": "bench@example.com",
        "shipping_address": {
            "name": "Bench Customer",
            "line1": "1 Load Street",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "items": [{"sku": "LAPTOP-14", "quantity": 1}, {"sku": "MOUSE-01", "quantity": 1}],
        "payment_method": "pm_card_visa",
    }
    session = requests.Session()
    started = time.monotonic()

    def one(i):
        if rate:  # open loop: order i leaves at i / rate seconds, whatever the shop's speed
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
        response = session.post(
            f"{base}/api/v1/orders/",
            json=body,
            headers={"Idempotency-Key": str(uuid.uuid4())},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["id"]

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--rate", type=float, default=0, help="orders per second (0: as fast as the API takes them)"
    )
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--relay-events", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    pg = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
    redis_base = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
    recreate_database(f"{pg}/postgres")
    workdir = Path(tempfile.mkdtemp(prefix="chargeflow-bench-"))
    ports = {name: free_port() for name in ("web", "stripe", "partner", "smtp")}
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": f"{pg}/{DB_NAME}",
        "REDIS_URL": f"{redis_base}/13",
        "CELERY_BROKER_URL": f"{redis_base}/14",
        "STRIPE_API_BASE": f"http://127.0.0.1:{ports['stripe']}",
        "SHIPPING_PARTNER_URL": f"http://127.0.0.1:{ports['partner']}",
        "EMAIL_PORT": str(ports["smtp"]),
        "MAILBOX_DIR": str(workdir / "mailbox"),
        "MEDIA_ROOT": str(workdir / "media"),
        "SITE_URL": f"http://127.0.0.1:{ports['web']}",
        "LOG_LEVEL": "WARNING",
        "OUTBOX_RELAY_POLL_SECONDS": "1",
        # One client places every order: no checkout rate limit (docs/security.md).
        "THROTTLE_CHECKOUT_RATE": "",
        "THROTTLE_CHECKOUT_IP_RATE": "",
        "THROTTLE_ORDER_LOOKUP_RATE": "",
    }
    redis.Redis.from_url(f"{redis_base}/14").flushdb()  # no leftovers from an earlier run
    procs = Processes(env, workdir)
    print(f"bench: working directory {workdir}", flush=True)
    try:
        procs.run(PY, "manage.py", "migrate", "--noinput")
        procs.run(PY, "manage.py", "seed_catalog")
        stock = args.orders * 2 + 100
        procs.run(
            PY,
            "manage.py",
            "shell",
            "-c",
            f"from orders.models import Product; Product.objects.update(stock={stock})",
        )
        procs.start(
            "stripe", PY, "-m", "chargeflow.localdev.stripe_server", "--port", str(ports["stripe"])
        )
        procs.start("partner", PY, "-m", "shipping.simulator", "--port", str(ports["partner"]))
        procs.start(
            "smtp",
            PY,
            "-m",
            "chargeflow.localdev.smtp_sink",
            "--port",
            str(ports["smtp"]),
            "--dir",
            env["MAILBOX_DIR"],
        )
        procs.start(
            "web",
            str(BIN / "gunicorn"),
            "chargeflow.wsgi",
            "--bind",
            f"127.0.0.1:{ports['web']}",
            "--workers",
            "2",
            "--threads",
            "4",
        )
        procs.start("relay", PY, "manage.py", "outbox_relay")
        procs.start(
            "worker",
            str(BIN / "celery"),
            "-A",
            "chargeflow",
            "worker",
            "--concurrency",
            str(args.worker_concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        )
        wait_http(f"{env['STRIPE_API_BASE']}/v1/customers")
        wait_http(f"{env['SITE_URL']}/health/")

        started = time.time()
        ids = place_orders(env["SITE_URL"], args.orders, args.clients, args.rate)
        placed = time.time()
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            deadline = time.monotonic() + args.timeout
            while True:
                shipped = conn.execute(
                    "SELECT count(*) FROM orders_order WHERE status = 'shipped'"
                ).fetchone()[0]
                if shipped >= len(ids) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            rows = conn.execute(
                """SELECT o.created_at, t.at FROM orders_order o
                   JOIN orders_timelineentry t ON t.order_id = o.id
                   AND t.type = 'status_changed' AND t.detail->>'to' = 'shipped'"""
            ).fetchall()
            failures = conn.execute(
                "SELECT count(*) FROM outbox_faileddelivery WHERE resolved_at IS NULL"
            ).fetchone()[0]
        latencies = [(at - created).total_seconds() for created, at in rows]
        last_shipped = max(at for _, at in rows).timestamp() if rows else time.time()
        procs.stop()

        relay = relay_side_by_side(env, args.relay_events)
        print()
        print("| figure | value |")
        print("|---|---|")
        pace = f"{args.rate:g}/s offered" if args.rate else f"{args.clients} clients, closed loop"
        print(
            f"| orders placed (API, {pace}) | {len(ids)} in "
            f"{placed - started:.1f} s = {len(ids) / (placed - started):.1f} orders/s |"
        )
        print(f"| orders shipped | {len(rows)} / {len(ids)} |")
        print(
            f"| end-to-end throughput (first POST to last shipped) | "
            f"{len(rows) / (last_shipped - started):.2f} orders/s |"
        )
        if latencies:
            print(
                f"| checkout-to-shipped latency p50 / p95 / max | "
                f"{statistics.median(latencies):.2f} s / {percentile(latencies, 95):.2f} s / "
                f"{max(latencies):.2f} s |"
            )
        print(f"| unresolved failed deliveries | {failures} |")
        for batch, rate in relay.items():
            print(
                f"| relay alone, {args.relay_events} events, batch {batch} | {rate:.0f} events/s |"
            )
        if len(relay) == 2:
            small, large = relay.values()
            print(f"| relay batch 100 vs batch 1 (same run) | {large / small:.1f}x |")
    finally:
        procs.stop()


def relay_side_by_side(env: dict[str, str], events: int) -> dict[int, float]:
    """The relay alone on a backlog of `events` (one subscriber each), batch 1 vs batch 100."""
    code = f"""
import time
from django.db import transaction
from chargeflow.celery import app
from outbox import publish
from outbox.models import OutboxEvent
from outbox.relay import Relay
for batch in (1, 100):
    OutboxEvent.objects.all().delete()
    with transaction.atomic():
        for i in range({events}):
            publish("email.sent", f"bench-{{i}}", {{"kind": "bench", "order_id": "x"}})
    relay = Relay(app, batch_size=batch)
    started = time.perf_counter()
    while relay.run_once():
        pass
    print("RELAY", batch, {events} / (time.perf_counter() - started))
OutboxEvent.objects.all().delete()
app.connection_for_write().default_channel.client.flushdb()
"""
    out = subprocess.run(
        [PY, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {
        int(parts[1]): float(parts[2])
        for parts in (line.split() for line in out.splitlines() if line.startswith("RELAY"))
    }


if __name__ == "__main__":
    main()
