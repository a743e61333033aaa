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
import statistics
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import redis
import requests
from stack import (
    PY,
    ROOT,
    Ports,
    Processes,
    percentile,
    relay_cmd,
    shop_env,
    start_components,
    wait_http,
    web_cmd,
    worker_cmd,
)

DB_NAME = "chargeflow_bench"


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
    ports = Ports()
    env = shop_env(
        workdir,
        ports,
        database_url=f"{pg}/{DB_NAME}",
        broker_url=f"{redis_base}/14",
        redis_url=f"{redis_base}/13",
    )
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
        start_components(procs, ports, workdir)
        procs.start("web", *web_cmd(ports.web))
        procs.start("relay", *relay_cmd())
        procs.start("worker", *worker_cmd(args.worker_concurrency))
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
