"""Pipeline benchmark (`make bench`): the targets of issue 11, each as a ratio measured side by side
in ONE run on this machine (PostgreSQL, the Redis broker; moto's SQS is too slow, DESIGN.md §5).

Starts everything itself on free loopback ports, in its own databases (BENCH_DB, default
`chargeflow_bench`, and `<BENCH_DB>_old`) and one Redis database (BENCH_REDIS_DB, default 13):
localstripe, the partner simulator, the SMTP sink, gunicorn as in the Procfile (DEBUG off), one
relay, one Celery worker. Then, in this order:

1. pipeline: orders through the API in batches, each batch waited for until every order is
   shipped and every email sent; CPU of each process (from /proc, whole process trees) per batch:
   own CPU per shipped order (web + relay + worker), the emulators separately; RSS per process;
2. the invoice PDF rendered alone (the same template and context), CPU per render;
3. commit -> first handler start through the outbox vs a bare Celery hop (same worker, same broker);
4. checkout: requests/s, p50/p99 at 10 and 50 clients, one hot product and spread over the
   catalog, for this tree, for commit 8912b0a (a worktree, --old-root, against the same
   PostgreSQL) and for a bare Django view inserting one row (bench/bareapp.py); SQL per checkout;
5. the relay on a backlog vs raw send_task of the same messages.

Prints every target with figure, ratio and verdict; writes bench/results/<stamp>.json (+ .png).

    python bench/pipeline.py --quick          # a few minutes
    python bench/pipeline.py                  # the default run
    python bench/pipeline.py --long           # 2,000 orders in batches of 200 (ageing)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import redis
from stack import free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
RESULTS = ROOT / "bench" / "results"
OLD_COMMIT = "8912b0a"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


# --- CPU and memory of whole process trees, from /proc ------------------------------------------


def _stat(pid: int):
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    # after the command: state ppid pgrp session ... utime(11) stime(12) cutime cstime ... rss(21)
    return int(fields[3]), (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[21]) * PAGE


def session_usage() -> dict[int, tuple[float, int]]:
    """{session id: (CPU seconds of its live processes, RSS bytes)}."""
    out: dict[int, list] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st:
                acc = out.setdefault(st[0], [0.0, 0])
                acc[0] += st[1]
                acc[1] += st[2]
    return {k: (v[0], v[1]) for k, v in out.items()}


class Processes:
    """Long-running processes, each in its own session (its CPU is its whole tree's)."""

    def __init__(self, logdir: Path):
        self.logdir, self.procs = logdir, {}
        self.dead_cpu: dict[str, float] = {}

    def start(self, name: str, cmd: list[str], *, env: dict, cwd: Path) -> None:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115
        self.procs[name] = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def cpu(self) -> dict[str, float]:
        usage = session_usage()
        out = dict(self.dead_cpu)
        for name, proc in self.procs.items():
            out[name] = out.get(name, 0.0) + usage.get(proc.pid, (0.0, 0))[0]
        return out

    def rss(self) -> dict[str, int]:
        usage = session_usage()
        return {name: usage.get(p.pid, (0, 0))[1] for name, p in self.procs.items()}

    def stop(self, *names: str) -> None:
        names = names or tuple(self.procs)
        for name in names:
            proc = self.procs.get(name)
            if proc and proc.poll() is None:
                live = session_usage().get(proc.pid, (0.0, 0))[0]
                self.dead_cpu[name] = self.dead_cpu.get(name, 0.0) + live
                os.killpg(proc.pid, signal.SIGTERM)
        for name in names:
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def pg_backend_cpu(conn, datnames: tuple[str, ...], seen: dict[int, float]) -> float:
    """CPU of the PostgreSQL backends serving our databases (sampled: a backend that lives and
    dies between two samples is missed)."""
    pids = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s)", [list(datnames)]
    ).fetchall()
    for (pid,) in pids:
        st = _stat(pid)
        if st:
            seen[pid] = st[1]
    return sum(seen.values())


class Monitor(threading.Thread):
    """One sample a second: CPU and RSS per process, PostgreSQL backends, shipped orders."""

    def __init__(self, procs: Processes, database_url: str, datnames: tuple[str, ...]):
        super().__init__(daemon=True)
        self.procs, self.samples, self.stop_event = procs, [], threading.Event()
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.datnames, self.pg_seen = datnames, {}
        self.lock = threading.Lock()

    def sample(self) -> dict:
        with self.lock:
            shipped = self.conn.execute(
                "SELECT count(*) FROM orders_order WHERE status IN ('shipped', 'delivered')"
            ).fetchone()[0]
            pg = pg_backend_cpu(self.conn, self.datnames, self.pg_seen)
        return {
            "t": time.time(),
            "cpu": self.procs.cpu(),
            "rss": self.procs.rss(),
            "pg_cpu": pg,
            "shipped": shipped,
        }

    def run(self):
        while not self.stop_event.wait(1.0):
            try:
                self.samples.append(self.sample())
            except Exception:  # noqa: S112 (a process ended between two reads)
                continue


# --- the stacks ----------------------------------------------------------------------------------


def procfile_web_args(root: Path) -> list[str]:
    """gunicorn's options from the tree's Procfile `web:` line, without --bind."""
    for line in (root / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            words = shlex.split(line.split(":", 1)[1])
            words = words[words.index("gunicorn") + 2 :]
            out, skip = [], False
            for word in words:
                if skip:
                    skip = False
                elif word == "--bind":
                    skip = True
                elif not word.startswith("--bind="):
                    out.append(word)
            return out
    raise SystemExit(f"no web: line in {root}/Procfile")


def base_env(args, pg: str, db: str, ports: dict, workdir: Path, prefix: str) -> dict:
    redis_url = f"{args.redis}/{args.redis_db}"
    return {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + secrets.token_hex(24),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_HSTS_SECONDS": "0",
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_bench",
        "STRIPE_WEBHOOK_SECRET": "whsec_bench",
        "SHIPPING_PARTNER_API_KEY": "bench-partner-key",
        "ANYMAIL_WEBHOOK_SECRET": "bench:webhook-secret",
        "DATABASE_URL": f"{pg}/{db}",
        "REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": f"{prefix}cache",
        "CELERY_BROKER_URL": redis_url,
        "SQS_QUEUE_PREFIX": f"{prefix}",
        "BENCH_PROBE_REDIS": redis_url,
        "STRIPE_API_BASE": f"http://127.0.0.1:{ports['stripe']}",
        "SHIPPING_PARTNER_URL": f"http://127.0.0.1:{ports['partner']}",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(ports["smtp"]),
        "PYTHONUNBUFFERED": "1",
        "MAILBOX_DIR": str(workdir / "mailbox"),
        "MEDIA_ROOT": str(workdir / f"{prefix}media"),
        "SITE_URL": "http://127.0.0.1:8000",
        "LOG_LEVEL": "WARNING",
        "OUTBOX_RELAY_POLL_SECONDS": "1",
        # The bench's clients share one address: no checkout rate limit (docs/security.md).
        "THROTTLE_CHECKOUT_RATE": "",
        "THROTTLE_CHECKOUT_IP_RATE": "",
        "THROTTLE_ORDER_LOOKUP_RATE": "",
        "THROTTLE_QUOTE_RATE": "",
    }


SEED = """
from orders.models import Product
base = list(Product.objects.order_by("pk"))
for i in range({extra}):
    p = base[i % len(base)]
    p.pk = None
    p.sku = f"BENCH-{{i:04d}}"
    p.name = f"Bench product {{i}}"
    p.save()
Product.objects.update(stock={stock}, is_active=True)
print("SKUS " + " ".join(Product.objects.order_by("pk").values_list("sku", flat=True)))
"""

QUERIES = """
import json, uuid
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
body = json.loads({body!r})
client, counts = Client(), []
for _ in range(4):
    with CaptureQueriesContext(connection) as ctx:
        r = client.post("/api/v1/orders/", data=json.dumps(body), content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert r.status_code == 201, r.content
    counts.append(len(ctx.captured_queries))
sql = [q["sql"][:160] for q in ctx.captured_queries]
print("QUERIES " + json.dumps({{"counts": counts, "sql": sql}}))
"""


def shell(root: Path, env: dict, code: str, marker: str) -> str:
    out = subprocess.run(
        [PY, "manage.py", "shell", "-c", code],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(line for line in out.splitlines() if line.startswith(marker))[len(marker) + 1 :]


def probe(env: dict, what: str, n: int) -> dict:
    out = subprocess.run(
        [PY, "bench/probes.py", what, str(n)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def recreate_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


# --- load ------------------------------------------------------------------------------------


ADDRESS = {
    "name": "Bench Customer",
    "line1": "1 Load Street",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}


def order_body(skus: list[str]) -> dict:
    return {
        "email": "bench@example.com",
        "shipping_address": ADDRESS,
        "items": [{"sku": sku, "quantity": 1} for sku in skus],
        "payment_method": "pm_card_visa",
    }


# Every request of the run: (wall time it started, latency s, what was measured, ok); the plot's
# latency percentiles over time come from it.
TRACE: list[tuple[float, float, str, bool]] = []


def load(
    port: int,
    path: str,
    bodies,
    *,
    clients: int,
    seconds: float = 0,
    count: int = 0,
    label: str = "",
):
    """Closed loop: `clients` threads, each one keep-alive connection, posting bodies() until
    `seconds` have passed or `count` requests were made. Returns [(start, latency s, status)]."""
    results, lock = [], threading.Lock()
    started = time.monotonic()
    wall = time.time() - started
    issued = iter(range(count)) if count else None

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            if issued is not None:
                with lock:
                    if next(issued, None) is None:
                        return
            elif time.monotonic() - started >= seconds:
                return
            payload = json.dumps(bodies()).encode()
            t0 = time.monotonic()
            try:
                conn.request(
                    "POST",
                    path,
                    body=payload,
                    headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": str(uuid.uuid4()),
                    },
                )
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status = 0
            latency = time.monotonic() - t0
            with lock:
                results.append((t0 - started, latency, status))
                if label:
                    TRACE.append((wall + t0, latency, label, 200 <= status < 300))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def summarise(results, seconds: float, warmup: float) -> dict:
    kept = [r for r in results if r[0] >= warmup]
    ok = [lat for _, lat, status in kept if 200 <= status < 300]
    span = seconds - warmup
    return {
        "requests": len(kept),
        "ok": len(ok),
        "errors": len(kept) - len(ok),
        "rps": len(ok) / span,
        "p50_ms": (pct(ok, 50) or 0) * 1000,
        "p99_ms": (pct(ok, 99) or 0) * 1000,
    }


def latency_series(trace, window: float = 2.0) -> dict[str, list[tuple[float, float, float, int]]]:
    """{label: [(window start, p50 ms, p99 ms, requests)]} of the successful requests."""
    by_label: dict[str, dict[int, list[float]]] = {}
    for at, latency, label, ok in trace:
        if ok:
            by_label.setdefault(label, {}).setdefault(int(at // window), []).append(latency)
    return {
        label: [
            (slot * window, pct(lat, 50) * 1000, pct(lat, 99) * 1000, len(lat))
            for slot, lat in sorted(slots.items())
        ]
        for label, slots in by_label.items()
    }


# --- the run ---------------------------------------------------------------------------------


def settle(conn, rds, prefix: str, timeout: float) -> bool:
    """Every order shipped, no unpublished outbox row, no queued or unacknowledged message, and
    no new email for a second: the batch's work is done. Each poll reads only what is in flight
    (the status and partial indexes, the last email id), so polling costs PostgreSQL the same
    after 5,000 orders as after 50 (a count of every shipped order or email grew with them)."""
    deadline, last, stable = time.monotonic() + timeout, None, 0
    while time.monotonic() < deadline:
        unshipped = conn.execute(
            "SELECT count(*) FROM orders_order WHERE status NOT IN ('shipped', 'delivered')"
        ).fetchone()[0]
        pending = conn.execute(  # the relay's partial index (outbox_unpublished_idx)
            "SELECT count(*) FROM outbox_outboxevent WHERE NOT (status = 'published')"
        ).fetchone()[0]
        emails = conn.execute("SELECT max(id) FROM notifications_emaillog").fetchone()[0]
        queued = sum(rds.llen(k) for k in rds.scan_iter(f"{prefix}*") if rds.type(k) == b"list")
        unacked = rds.hlen("unacked")
        state = (unshipped, emails)
        if not unshipped and not pending and not queued and not unacked and state == last:
            stable += 1
            if stable >= 2:
                return True
        else:
            stable = 0
        last = state
        time.sleep(0.5)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes: small batches")
    parser.add_argument(
        "--long",
        action="store_true",
        help="5,000 orders in 25 batches of 200: ageing (orders 1,801-2,000 vs 1-200) and RSS",
    )
    parser.add_argument(
        "--curve",
        default="",
        help="comma list of worker pool sizes, e.g. 1,2,4: pipeline throughput for each",
    )
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="orders per batch")
    parser.add_argument("--clients", type=int, default=8, help="pipeline phase clients")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=None, help="per checkout measurement")
    parser.add_argument("--rounds", type=int, default=None, help="checkout rounds (median)")
    parser.add_argument(
        "--old-root",
        default=os.environ.get("BENCH_OLD_ROOT", "/tmp/cf-old"),  # noqa: S108 (docs/performance.md)
        help=f"a worktree of {OLD_COMMIT}",
    )
    parser.add_argument("--no-old", action="store_true")
    parser.add_argument(
        "--pdf-per-batch",
        type=int,
        default=None,
        help="renders of the PDF probe right after each batch (default 5; 0: only at the end)",
    )
    parser.add_argument(
        "--task-cpu",
        action="store_true",
        help="CPU per task in the worker's pool processes, per subscriber (and the main "
        "process's), printed per batch (costs the worker a Redis write per task)",
    )
    parser.add_argument("--web-args", help="gunicorn options instead of the Procfile's")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy the web, relay and worker over the pipeline phase (collapsed stacks in DIR)",
    )
    parser.add_argument("--skip", default="", help="comma list: pipeline,checkout,relay,latency")
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379"))
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("BENCH_REDIS_DB", 13)))
    args = parser.parse_args()
    if args.pdf_per_batch is None:
        args.pdf_per_batch = 5
    batches = args.batches or (25 if args.long else 3 if args.quick else 5)
    batch = args.batch or (200 if args.long else 40 if args.quick else 100)
    seconds = args.seconds or (8 if args.quick else 10)
    rounds = args.rounds or (2 if args.quick else 3)
    warmup = 2.0 if args.quick else 4.0
    skip = set(filter(None, args.skip.split(",")))
    old_root = Path(args.old_root)
    if not args.no_old and "checkout" not in skip and not (old_root / "manage.py").exists():
        print(f"bench: git worktree add --detach {old_root} {OLD_COMMIT}", flush=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old_root), OLD_COMMIT],
            cwd=ROOT,
            check=False,
            stdout=subprocess.DEVNULL,
        )
    with_old = not args.no_old and (old_root / "manage.py").exists() and "checkout" not in skip

    pg = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
    # BENCH_DB: another name lets two benches run at once (each its own BENCH_REDIS_DB too).
    db = os.environ.get("BENCH_DB", "chargeflow_bench")
    old_db = f"{db}_old"
    workdir = Path(tempfile.mkdtemp(prefix="chargeflow-bench-"))
    ports = {n: free_port() for n in ("web", "stripe", "partner", "smtp", "old_web", "bare")}
    env = base_env(args, pg, db, ports, workdir, "bench-")
    env["SITE_URL"] = f"http://127.0.0.1:{ports['web']}"
    old_env = base_env(args, pg, old_db, ports, workdir, "benchold-")
    rds = redis.Redis.from_url(f"{args.redis}/{args.redis_db}")
    rds.flushdb()  # the bench's own database: no leftovers from an earlier run
    procs = Processes(workdir)
    result: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "load_at_start": os.getloadavg()},
        "config": {k: v for k, v in vars(args).items()},
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "web_args": shlex.split(args.web_args) if args.web_args else procfile_web_args(ROOT),
    }
    print(f"bench: working directory {workdir}; logs there", flush=True)
    stock = 10_000_000
    try:
        recreate_database(f"{pg}/postgres", db)
        subprocess.run(
            [PY, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [PY, "manage.py", "seed_catalog"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        skus = shell(ROOT, env, SEED.format(extra=200, stock=stock), "SKUS").split()
        if with_old:
            recreate_database(f"{pg}/postgres", old_db)
            for cmd in (["migrate", "--noinput"], ["seed_catalog"]):
                subprocess.run(
                    [PY, "manage.py", *cmd],
                    cwd=old_root,
                    env=old_env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            shell(old_root, old_env, SEED.format(extra=200, stock=stock), "SKUS")

        procs.start(
            "stripe",
            [PY, "-m", "chargeflow.localdev.stripe_server", "--port", str(ports["stripe"])],
            env=env,
            cwd=ROOT,
        )
        procs.start(
            "partner",
            [
                PY,
                "-m",
                "shipping.simulator",
                "--port",
                str(ports["partner"]),
                "--api-key",
                env["SHIPPING_PARTNER_API_KEY"],
            ],
            env=env,
            cwd=ROOT,
        )
        procs.start(
            "smtp",
            [
                PY,
                "-m",
                "chargeflow.localdev.smtp_sink",
                "--port",
                str(ports["smtp"]),
                "--dir",
                env["MAILBOX_DIR"],
            ],
            env=env,
            cwd=ROOT,
        )
        web_cmd = [
            str(BIN / "gunicorn"),
            "chargeflow.wsgi",
            "--bind",
            f"127.0.0.1:{ports['web']}",
            *result["web_args"],
        ]
        procs.start("web", web_cmd, env=env, cwd=ROOT)
        procs.start("relay", [PY, "bench/benchapp.py", "relay"], env=env, cwd=ROOT)

        def worker_cmd(concurrency: int) -> list[str]:
            return [
                str(BIN / "celery"),
                "-A",
                "bench.benchapp",
                "worker",
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "WARNING",
            ]

        if args.task_cpu:
            env["BENCH_TASK_CPU"] = "1"
        procs.start("worker", worker_cmd(args.worker_concurrency), env=env, cwd=ROOT)
        wait_http(f"{env['STRIPE_API_BASE']}/v1/customers", timeout=90)
        wait_http(f"{env['SITE_URL']}/health/", timeout=90)

        conn = psycopg.connect(env["DATABASE_URL"], autocommit=True)
        monitor = Monitor(procs, env["DATABASE_URL"], (db, old_db))
        monitor.start()
        own = ("web", "relay", "worker")

        spies = []
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            for name in own:
                spies.append(
                    subprocess.Popen(
                        [
                            str(BIN / "py-spy"),
                            "record",
                            "--subprocesses",
                            "--nonblocking",
                            # Only samples holding the GIL: CPU, not waits on sockets.
                            "--gil",
                            "--rate",
                            "250",
                            "--format",
                            "raw",
                            "-p",
                            str(procs.procs[name].pid),
                            "-o",
                            str(Path(args.profile) / f"{name}.txt"),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        # 1. the pipeline, batch by batch
        if "pipeline" not in skip:
            result["batches"] = []
            placed = [0]
            autovacuum = conn.execute("SHOW autovacuum").fetchone()[0] == "on"
            result["server_autovacuum"] = autovacuum

            def run_batch(n: int, label: str) -> dict:
                """`n` orders through the API, waited for until all is done; CPU per order."""
                if not autovacuum:
                    # What autovacuum does between batches on a normal server (this machine's
                    # PostgreSQL runs with autovacuum off: without it every updated row stays
                    # dead, the tables and indexes only grow and the planner never gets
                    # statistics, an ageing of the server's, not of the shop's). Before the
                    # batch's first sample: not counted in any figure.
                    conn.execute("VACUUM (ANALYZE)")
                before = monitor.sample()
                tasks_before = task_cpu()
                t0 = time.time()
                res = load(
                    ports["web"],
                    "/api/v1/orders/",
                    lambda: order_body(["LAPTOP-14", "MOUSE-01"]),
                    clients=args.clients,
                    count=n,
                    label="pipeline checkout",
                )
                placed[0] += n
                done = settle(conn, rds, "bench-", 600)
                after = monitor.sample()
                wall = time.time() - t0
                cpu = {k: after["cpu"].get(k, 0) - before["cpu"].get(k, 0) for k in after["cpu"]}
                row = {
                    "orders": f"{placed[0] - n - 3}-{placed[0] - 4}",
                    "completed": done,
                    "errors": sum(1 for r in res if not 200 <= r[2] < 300),
                    "wall_s": wall,
                    "orders_per_s": n / wall,
                    "cpu_ms_per_order": {k: v * 1000 / n for k, v in cpu.items()},
                    "own_cpu_ms_per_order": sum(cpu.get(k, 0) for k in own) * 1000 / n,
                    "pg_cpu_ms_per_order": (after["pg_cpu"] - before["pg_cpu"]) * 1000 / n,
                    "checkout_p50_ms": pct([r[1] for r in res], 50) * 1000,
                    "rss_mib": {k: v / 2**20 for k, v in after["rss"].items()},
                }
                print(
                    f"{label}: {n} orders in {wall:.1f} s ({n / wall:.1f}/s), own CPU "
                    f"{row['own_cpu_ms_per_order']:.0f} ms/order "
                    f"({', '.join(f'{k} {v:.0f}' for k, v in row['cpu_ms_per_order'].items())})"
                    f"{'' if done else ' NOT SETTLED'}",
                    flush=True,
                )
                if args.pdf_per_batch:
                    # The PDF alone right after the batch, in the same minute of the machine's
                    # load (CPU time itself inflates under load: docs/performance.md).
                    row["pdf"] = probe(env, "pdf", args.pdf_per_batch)
                    row["pdf_ratio"] = row["own_cpu_ms_per_order"] / row["pdf"]["cpu_ms_mean"]
                    print(
                        f"  pdf alone right after: {row['pdf']['cpu_ms_mean']:.1f} ms "
                        f"({args.pdf_per_batch} renders): own CPU {row['pdf_ratio']:.2f}x",
                        flush=True,
                    )
                if args.task_cpu:
                    tasks_after = task_cpu()
                    row["task_cpu_ms_per_order"] = per_order = {
                        k: (v - tasks_before.get(k, 0)) * 1000 / n
                        for k, v in tasks_after.items()
                        if v != tasks_before.get(k, 0)
                    }
                    print(
                        "  per order (ms CPU, tasks per order): "
                        + ", ".join(
                            f"{k} {v:.1f}"
                            for k, v in sorted(per_order.items(), key=lambda kv: -kv[1])
                        ),
                        flush=True,
                    )
                return row

            def task_cpu() -> dict[str, float]:
                """{subscriber: CPU s, subscriber#tasks: count} so far, and the worker's main
                process's own CPU (`worker main`): --task-cpu only."""
                if not args.task_cpu:
                    return {}
                raw = rds.hgetall("bench:taskcpu")
                out: dict[str, float] = {}
                for key, value in raw.items():
                    name = key.decode()
                    if name.endswith("#n"):
                        out[f"{name[:-2]} (tasks)"] = float(value) / 1000
                    else:
                        out[name] = float(value)
                main_stat = _stat(procs.procs["worker"].pid)
                out["worker main"] = main_stat[1] if main_stat else 0.0
                out["tasks total"] = sum(
                    v for k, v in out.items() if k != "worker main" and not k.endswith("(tasks)")
                )
                return out

            def warm_up() -> None:
                """A few orders, not counted: imports, connections, first renders."""
                load(
                    ports["web"],
                    "/api/v1/orders/",
                    lambda: order_body(["LAPTOP-14", "MOUSE-01"]),
                    clients=2,
                    count=4,
                )
                placed[0] += 4
                settle(conn, rds, "bench-", 120)

            warm_up()
            for b in range(batches):
                row = run_batch(batch, f"batch {b + 1}/{batches}")
                result["batches"].append({"batch": b + 1, **row})
            # Throughput against worker processes (docs/performance.md, "Scaling out").
            curve = [int(n) for n in args.curve.split(",") if n.strip()]
            if curve:
                result["curve"] = []
                for n in curve:
                    procs.stop("worker")
                    procs.start("worker", worker_cmd(n), env=env, cwd=ROOT)
                    warm_up()
                    row = run_batch(batch, f"curve: {n} worker process(es)")
                    result["curve"].append({"workers": n, **row})
                procs.stop("worker")
                procs.start("worker", worker_cmd(args.worker_concurrency), env=env, cwd=ROOT)
            result["emails_sent"] = conn.execute(
                "SELECT count(*) FROM notifications_emaillog"
            ).fetchone()[0]
            result["unresolved_failures"] = conn.execute(
                "SELECT count(*) FROM outbox_faileddelivery WHERE resolved_at IS NULL"
            ).fetchone()[0]
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            result["pdf"] = probe(env, "pdf", 10 if args.quick else 30)
            print(f"pdf alone: {result['pdf']['cpu_ms_mean']:.1f} ms CPU per render", flush=True)

        # 3. commit -> handler start
        if "latency" not in skip:
            result["latency"] = probe(env, "latency", 60 if args.quick else 200)
            print(f"latency: {result['latency']}", flush=True)

        procs.stop("worker")
        # 4. checkout, side by side
        if "checkout" not in skip:
            procs.start(
                "bare",
                [
                    str(BIN / "gunicorn"),
                    "bench.bareapp:application",
                    "--bind",
                    f"127.0.0.1:{ports['bare']}",
                    *result["web_args"],
                ],
                env=env,
                cwd=ROOT,
            )
            wait_http(f"http://127.0.0.1:{ports['bare']}/", timeout=90)
            with psycopg.connect(env["DATABASE_URL"], autocommit=True) as c:
                c.execute(
                    "CREATE TABLE IF NOT EXISTS bench_bare (id bigserial PRIMARY KEY, "
                    "body jsonb NOT NULL)"
                )
            targets = {"new": ports["web"]}
            if with_old:
                old_web = [
                    str(BIN / "gunicorn"),
                    "chargeflow.wsgi",
                    "--bind",
                    f"127.0.0.1:{ports['old_web']}",
                    *procfile_web_args(old_root),
                ]
                procs.start("old_web", old_web, env=old_env, cwd=old_root)
                procs.start(
                    "old_relay", [PY, "manage.py", "outbox_relay"], env=old_env, cwd=old_root
                )
                wait_http(f"http://127.0.0.1:{ports['old_web']}/health/", timeout=90)
                targets["old"] = ports["old_web"]
            hot = lambda: order_body(["LAPTOP-14"])  # noqa: E731
            spread = lambda: order_body([random.choice(skus)])  # noqa: E731
            result["queries"] = {
                "new": json.loads(
                    shell(ROOT, env, QUERIES.format(body=json.dumps(hot())), "QUERIES")
                )
            }
            if with_old:
                result["queries"]["old"] = json.loads(
                    shell(old_root, old_env, QUERIES.format(body=json.dumps(hot())), "QUERIES")
                )
            checkout = result["checkout"] = {}
            # Several short rounds, each the three side by side (this tree, 8912b0a, the bare
            # view): the ratio of each round, then the median of the rounds' ratios; a load
            # spike from elsewhere on the machine then moves one round, not the figure.
            runs: dict[str, list] = {}
            for clients in (10, 50):
                for round_ in range(rounds):
                    for mix, bodies in (("hot", hot), ("spread", spread)):
                        for name, port in targets.items():
                            before = procs.cpu()
                            res = load(
                                port,
                                "/api/v1/orders/",
                                bodies,
                                clients=clients,
                                seconds=seconds,
                                label=f"checkout {name} {mix} {clients}",
                            )
                            after = procs.cpu()
                            row = summarise(res, seconds, warmup)
                            web = "web" if name == "new" else "old_web"
                            relay = "relay" if name == "new" else "old_relay"
                            n = max(1, len(res))
                            row["web_cpu_ms"] = (after[web] - before[web]) * 1000 / n
                            row["relay_cpu_ms"] = (after[relay] - before[relay]) * 1000 / n
                            row["latencies"] = [
                                lat for at, lat, code in res if at >= warmup and 200 <= code < 300
                            ]
                            runs.setdefault(f"{name}/{mix}/{clients}", []).append(row)
                            print(
                                f"checkout {name} {mix} {clients} clients, round {round_ + 1}: "
                                f"{fmt_row(row)}",
                                flush=True,
                            )
                    res = load(
                        ports["bare"],
                        "/insert/",
                        lambda: {"n": 1},
                        clients=clients,
                        seconds=seconds,
                    )
                    row = summarise(res, seconds, warmup)
                    runs.setdefault(f"bare/{clients}", []).append(row)
                    print(f"bare view {clients} clients, round {round_ + 1}: {fmt_row(row)}")
            for key, rows in runs.items():
                pooled = [lat for row in rows for lat in row.pop("latencies", [])]
                checkout[key] = {
                    "rounds_rps": [row["rps"] for row in rows],
                    "rps": statistics.median(row["rps"] for row in rows),
                    "p50_ms": (pct(pooled, 50) or 0) * 1000 if pooled else rows[0]["p50_ms"],
                    "p99_ms": (pct(pooled, 99) or 0) * 1000 if pooled else rows[0]["p99_ms"],
                    "errors": sum(row["errors"] for row in rows),
                    "web_cpu_ms": statistics.median(row.get("web_cpu_ms", 0) for row in rows),
                    "relay_cpu_ms": statistics.median(row.get("relay_cpu_ms", 0) for row in rows),
                }
            procs.stop("bare", "old_web", "old_relay")

        # 5. the relay alone on a backlog vs raw send_task
        procs.stop("relay")
        if "relay" not in skip:
            result["relay"] = probe(env, "relay", 1000 if args.quick else 3000)
            print(f"relay: {result['relay']}", flush=True)
        monitor.stop_event.set()
        result["samples"] = monitor.samples
    finally:
        procs.stop()

    result["latency_series"] = latency_series(TRACE)
    result["targets"] = targets_of(result)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = RESULTS / f"bench-{stamp}.json"
    out.write_text(json.dumps(result, indent=1, default=str))
    (RESULTS / "latest.json").write_text(out.read_text())
    print_targets(result)
    plot(result, RESULTS / f"bench-{stamp}.png")
    print(f"\nresults: {out}")


def fmt_row(row: dict) -> str:
    return (
        f"{row['rps']:.0f} req/s, p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, "
        f"{row['errors']} errors"
    )


def targets_of(r: dict) -> list[dict]:
    out = []

    def add(name, figure, ratio, target, met):
        out.append({"target": name, "figure": figure, "ratio": ratio, "goal": target, "met": met})

    batches = r.get("batches") or []
    if batches and r.get("pdf"):
        steady = batches[1:] or batches
        own = statistics.mean(b["own_cpu_ms_per_order"] for b in steady)
        # The PDF alone: every render of the probes taken during the counted batches (right
        # after each, --pdf-per-batch) and at the end, so that both sides of the ratio come
        # from the same minutes of the machine's load; the end-only figure is reported too.
        slices = [(b["pdf"]["renders"], b["pdf"]["cpu_ms_mean"]) for b in steady if b.get("pdf")]
        slices.append((r["pdf"]["renders"], r["pdf"]["cpu_ms_mean"]))
        pdf = sum(n * ms for n, ms in slices) / sum(n for n, _ in slices)
        parts = {
            k: statistics.mean(b["cpu_ms_per_order"].get(k, 0) for b in steady)
            for k in batches[0]["cpu_ms_per_order"]
        }
        add(
            "own CPU per shipped order vs its invoice PDF alone",
            f"{own:.0f} ms vs {pdf:.0f} ms ("
            + ", ".join(f"{k} {v:.0f}" for k, v in parts.items())
            + f"; PostgreSQL {statistics.mean(b['pg_cpu_ms_per_order'] for b in steady):.0f})"
            + (
                f"; PDF {len(slices)} probes: "
                + ", ".join(f"{ms:.0f}" for _, ms in slices)
                + f" ms; with the end probe alone {own / r['pdf']['cpu_ms_mean']:.2f}x"
                if len(slices) > 1
                else ""
            ),
            own / pdf,
            "<= 2x",
            own / pdf <= 2,
        )
        first = batches[0]
        # The comparison is orders 1,801-2,000 vs 1-200 (batch 10 of a --long run); the
        # last batch vs the first is reported too (a --long run: orders 4,801-5,000).
        later = [batches[-1]]
        if len(batches) > 10 and first["orders"].startswith("1-200"):
            later.insert(0, batches[9])
        for last in later if len(batches) >= 2 else []:
            ratio = last["own_cpu_ms_per_order"] / first["own_cpu_ms_per_order"]
            add(
                f"no ageing: own CPU/order, orders {last['orders']} vs {first['orders']}",
                f"{last['own_cpu_ms_per_order']:.0f} vs {first['own_cpu_ms_per_order']:.0f} ms",
                ratio,
                "<= 1.10x",
                ratio <= 1.10,
            )
            s_first = first["cpu_ms_per_order"].get("stripe", 0)
            s_last = last["cpu_ms_per_order"].get("stripe", 0)
            if s_first:
                add(
                    f"no ageing: Stripe emulator CPU/order, orders {last['orders']} vs "
                    f"{first['orders']}",
                    f"{s_last:.1f} vs {s_first:.1f} ms",
                    s_last / s_first,
                    "<= 1.10x",
                    s_last / s_first <= 1.10,
                )
            p_first, p_last = first["pg_cpu_ms_per_order"], last["pg_cpu_ms_per_order"]
            if p_first:
                add(
                    f"(report) PostgreSQL CPU/order, orders {last['orders']} vs {first['orders']}",
                    f"{p_last:.1f} vs {p_first:.1f} ms",
                    p_last / p_first,
                    "report",
                    None,
                )
            if len(batches) >= 3:
                warm = batches[1]["rss_mib"].get("worker", 0)
                end = last["rss_mib"].get("worker", 0)
                add(
                    "worker RSS flat after warm-up (end vs after batch 2)",
                    f"{end:.0f} vs {warm:.0f} MiB over {len(batches) - 2} batches",
                    end / warm if warm else None,
                    "within ±10%",
                    bool(warm) and abs(end / warm - 1) <= 0.10,
                )
    for point in r.get("curve") or []:
        add(
            f"throughput with {point['workers']} worker process(es)",
            f"{point['orders_per_s']:.1f} orders/s shipped, own CPU "
            f"{point['own_cpu_ms_per_order']:.0f} ms/order",
            None,
            "report",
            None,
        )
    if r.get("relay"):
        rel = r["relay"]
        ratio = rel["relay_per_s"] / rel["raw_per_s"]
        add(
            "relay vs raw send_task (same messages, same broker)",
            f"{rel['relay_per_s']:.0f} vs {rel['raw_per_s']:.0f} events/s",
            ratio,
            ">= 0.8x",
            ratio >= 0.8,
        )
    if r.get("latency"):
        lat = r["latency"]
        if lat["ping"]["p95_ms"] and lat["hop"]["p95_ms"]:
            ratio = lat["ping"]["p95_ms"] / lat["hop"]["p95_ms"]
            add(
                "commit -> handler start p95 vs a bare Celery hop",
                f"p50/p95 {lat['ping']['p50_ms']:.1f}/{lat['ping']['p95_ms']:.1f} ms vs "
                f"{lat['hop']['p50_ms']:.1f}/{lat['hop']['p95_ms']:.1f} ms",
                ratio,
                "<= 2x",
                ratio <= 2,
            )
    co = r.get("checkout") or {}
    for clients in (10, 50):
        for mix in ("hot", "spread"):
            new, old = co.get(f"new/{mix}/{clients}"), co.get(f"old/{mix}/{clients}")
            if new and old and old["rps"]:
                ratio = round_ratio(new, old)
                add(
                    f"checkout {mix}, {clients} clients vs {OLD_COMMIT}",
                    f"{new['rps']:.0f} vs {old['rps']:.0f} req/s{rounds_note(new, old)}",
                    ratio,
                    ">= 5x",
                    ratio >= 5,
                )
            if new and new["p50_ms"]:
                ratio = new["p99_ms"] / new["p50_ms"]
                add(
                    f"checkout {mix}, {clients} clients: p99 vs p50",
                    f"p50 {new['p50_ms']:.0f} ms, p99 {new['p99_ms']:.0f} ms",
                    ratio,
                    "<= 3x",
                    ratio <= 3,
                )
            bare = co.get(f"bare/{clients}")
            if new and bare and bare["rps"]:
                ratio = round_ratio(new, bare)
                add(
                    f"checkout {mix}, {clients} clients vs the bare one-row view",
                    f"{new['rps']:.0f} vs {bare['rps']:.0f} req/s{rounds_note(new, bare)}",
                    ratio,
                    ">= 0.5x",
                    ratio >= 0.5,
                )
    q = r.get("queries") or {}
    if q.get("new"):
        new_q = q["new"]["counts"][-1]
        old_q = q.get("old", {}).get("counts", [None])[-1]
        add(
            "SQL queries per checkout (API, one item)",
            f"{new_q}" + (f" (was {old_q} at {OLD_COMMIT})" if old_q else ""),
            new_q / old_q if old_q else None,
            "report",
            None,
        )
    return out


def round_ratio(a: dict, b: dict) -> float:
    """The median of the rounds' ratios (each round measured the two side by side)."""
    pairs = list(
        zip(a.get("rounds_rps") or [a["rps"]], b.get("rounds_rps") or [b["rps"]], strict=False)
    )
    return statistics.median(x / y for x, y in pairs if y) if any(y for _, y in pairs) else 0.0


def rounds_note(a: dict, b: dict) -> str:
    pairs = list(zip(a.get("rounds_rps") or [], b.get("rounds_rps") or [], strict=False))
    if len(pairs) < 2:
        return ""
    return " (medians; rounds " + ", ".join(f"{x / y:.2f}x" for x, y in pairs if y) + ")"


def print_targets(r: dict) -> None:
    print("\n| target | figure | ratio | goal | met |")
    print("|---|---|---|---|---|")
    for t in r["targets"]:
        ratio = f"{t['ratio']:.2f}x" if t["ratio"] is not None else "-"
        met = {True: "yes", False: "NO", None: "-"}[t["met"]]
        print(f"| {t['target']} | {t['figure']} | {ratio} | {t['goal']} | {met} |")
    load = r["machine"]["load_at_start"]
    print(
        f"\nmachine: {r['machine']['cpus']} CPUs, load at start {load[0]:.1f}; commit "
        f"{r['commit']}; gunicorn {' '.join(r['web_args'])}"
    )


def plot(r: dict, path: Path) -> None:
    """Orders shipped per minute, CPU and RSS per process, checkout latency percentiles."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no PNG: matplotlib is not installed; pip install -r requirements-dev.txt)")
        return
    samples = r.get("samples") or []
    if len(samples) < 3:
        return
    t0 = samples[0]["t"]
    ts = [(s["t"] - t0) for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(10, 13), sharex=True)
    shipped = [s["shipped"] for s in samples]
    window = 10  # samples: orders shipped per minute over the last ~10 s
    rate = [
        (shipped[i] - shipped[max(0, i - window)]) * 60 / max(1e-6, ts[i] - ts[max(0, i - window)])
        for i in range(len(ts))
    ]
    axes[0].plot(ts, rate)
    axes[0].set_ylabel("orders shipped / min")
    names = sorted({k for s in samples for k in s["cpu"]})
    for name in names:
        cpu = [s["cpu"].get(name, 0) for s in samples]
        ceiling = 100 * (os.cpu_count() or 1)  # a process stopping mid-sample: clipped
        util = [0] + [
            min(ceiling, max(0, (cpu[i] - cpu[i - 1]) * 100 / max(1e-6, ts[i] - ts[i - 1])))
            for i in range(1, len(ts))
        ]
        axes[1].plot(ts, util, label=name)
        axes[2].plot(ts, [s["rss"].get(name, 0) / 2**20 for s in samples], label=name)
    for label, series in sorted((r.get("latency_series") or {}).items()):
        if label.startswith("checkout old") or not series:
            continue
        xs = [at - t0 for at, *_ in series]
        line = axes[3].plot(xs, [p50 for _, p50, _, _ in series], label=f"{label} p50")[0]
        axes[3].plot(
            xs,
            [p99 for _, _, p99, _ in series],
            linestyle="--",
            color=line.get_color(),
            label=f"{label} p99",
        )
    axes[3].set_yscale("log")
    axes[3].set_ylabel("checkout latency ms (2 s windows)")
    axes[3].legend(fontsize="x-small", ncol=3)
    axes[1].set_ylabel("CPU % of one core")
    axes[1].legend(fontsize="small", ncol=4)
    axes[2].set_ylabel("RSS MiB")
    axes[3].set_xlabel("seconds since the pipeline started")
    fig.suptitle(f"make bench {r['started']} ({r['commit']})")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    (RESULTS / "latest.png").write_bytes(path.read_bytes())
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
