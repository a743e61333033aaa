"""The shop as real processes on free loopback ports, for `make bench` and `make chaos`.

Not a test and not used by the app: helpers that start localstripe, the partner simulator, the
SMTP sink, gunicorn, relays, Celery workers and beat, and (for the chaos run) a throwaway
PostgreSQL cluster and a dedicated redis-server or moto SQS server that can be paused, killed and
restarted. Every process gets its own session (process group) so a signal reaches its children
(gunicorn's and Celery's forks) too; logs go to `<workdir>/<name>.log`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent


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

    def start(self, name: str, *cmd: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            list(cmd),
            cwd=ROOT,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()  # the child holds its own copy
        self.procs.append(proc)
        return proc

    def run(self, *cmd: str) -> None:
        subprocess.run(list(cmd), cwd=ROOT, env=self.env, check=True, stdout=subprocess.DEVNULL)

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [PY, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    @staticmethod
    def signal(proc: subprocess.Popen, sig: int) -> None:
        """Signal a process and everything in its session (its forks)."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self, proc: subprocess.Popen) -> None:
        self.signal(proc, signal.SIGKILL)
        proc.wait(20)
        self.procs.remove(proc)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.signal(proc, signal.SIGCONT)  # a paused process cannot handle SIGTERM
                self.signal(proc, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                self.signal(proc, signal.SIGKILL)
        self.procs = []


# --- the shop's own processes ----------------------------------------------------------------


def relay_cmd() -> list[str]:
    return [PY, "manage.py", "outbox_relay"]


def worker_cmd(
    concurrency: int, name: str = "worker", queues: str = "", exclude: str = ""
) -> list[str]:
    return [
        str(BIN / "celery"),
        "-A",
        "chargeflow",
        "worker",
        "--hostname",
        f"{name}@%h",
        "--concurrency",
        str(concurrency),
        *(["--queues", queues] if queues else []),
        *(["--exclude-queues", exclude] if exclude else []),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
    ]


def beat_cmd(workdir: Path) -> list[str]:
    return [
        str(BIN / "celery"),
        "-A",
        "chargeflow",
        "beat",
        "--loglevel",
        "WARNING",
        "--schedule",
        str(workdir / "celerybeat-schedule"),
    ]


def web_cmd(port: int, workers: int = 2, threads: int = 4) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "chargeflow.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--timeout",
        "60",
    ]


@dataclass
class Ports:
    web: int = field(default_factory=free_port)
    stripe: int = field(default_factory=free_port)
    partner: int = field(default_factory=free_port)
    smtp: int = field(default_factory=free_port)


def shop_env(
    workdir: Path, ports: Ports, *, database_url: str, broker_url: str, redis_url: str
) -> dict[str, str]:
    """The environment every shop process shares; `database_url` "" means SQLite in workdir."""
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker_url,
        "STRIPE_API_BASE": f"http://127.0.0.1:{ports.stripe}",
        "SHIPPING_PARTNER_URL": f"http://127.0.0.1:{ports.partner}",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(ports.smtp),
        "MAILBOX_DIR": str(workdir / "mailbox"),
        "MEDIA_ROOT": str(workdir / "media"),
        "SITE_URL": f"http://127.0.0.1:{ports.web}",
        "LOG_LEVEL": "WARNING",
        "OUTBOX_RELAY_POLL_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
        # One client places every order: no checkout rate limit (docs/security.md).
        "THROTTLE_CHECKOUT_RATE": "",
        "THROTTLE_CHECKOUT_IP_RATE": "",
        "THROTTLE_ORDER_LOOKUP_RATE": "",
        "THROTTLE_QUOTE_RATE": "",
    }
    if not database_url:
        env.pop("DATABASE_URL")
        env["SQLITE_PATH"] = str(workdir / "chargeflow.sqlite3")
    return env


def start_components(
    procs: Processes, ports: Ports, workdir: Path, *, partner_args: tuple[str, ...] = ()
) -> dict[str, subprocess.Popen]:
    """localstripe (its webhook pointed at the shop), the partner simulator and the SMTP sink."""
    started = {
        "stripe": procs.start(
            "stripe",
            PY,
            "-m",
            "chargeflow.localdev.stripe_server",
            "--port",
            str(ports.stripe),
            "--webhook-url",
            f"http://127.0.0.1:{ports.web}/billing/stripe/webhook/",
            "--webhook-secret",
            "whsec_chargeflow_local",
        ),
        "partner": procs.start(
            "partner", PY, "-m", "shipping.simulator", "--port", str(ports.partner), *partner_args
        ),
        "smtp": procs.start(
            "smtp",
            PY,
            "-m",
            "chargeflow.localdev.smtp_sink",
            "--port",
            str(ports.smtp),
            "--dir",
            str(workdir / "mailbox"),
        ),
    }
    wait_http(f"http://127.0.0.1:{ports.stripe}/v1/customers")
    wait_http(f"http://127.0.0.1:{ports.partner}/_sim/health")
    return started


# --- infrastructure the chaos run owns (so it may pause, kill and restart it) ----------------


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def postgres_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        raise SystemExit(f"{name} not found (install postgresql)")
    return str(candidates[-1])


class PostgresCluster:
    """A throwaway PostgreSQL cluster in `<workdir>/pg` on a free port (trust auth, loopback)."""

    def __init__(self, workdir: Path):
        self.dir = workdir / "pg"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/chargeflow"
        self.log = workdir / "postgres.log"

    def _run(self, *cmd: str) -> None:
        subprocess.run(_as_postgres(list(cmd)), check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        self.dir.mkdir(parents=True)
        self.log.touch()
        if os.geteuid() == 0:
            for parent in self.dir.parents:  # the temp dirs above: postgres must traverse them
                if parent == Path(tempfile.gettempdir()) or parent.stat().st_uid != 0:
                    break
                os.chmod(parent, parent.stat().st_mode | 0o011)
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.log, "postgres")
        self._run(
            postgres_bin("initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust"
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c max_connections=300 "
            "-c fsync=off -c full_page_writes=off"  # the OS does not crash here; processes do
        )
        self._run(
            postgres_bin("pg_ctl"),
            "-D",
            str(self.dir / "data"),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "start",
        )
        self._run(postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "chargeflow")

    def restart(self, mode: str = "fast") -> float:
        """Restart it (`fast`: connections cut, clean shutdown; `immediate`: crash and recovery);
        returns the seconds it was unavailable."""
        started = time.monotonic()
        self._run(postgres_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w", "restart")
        return time.monotonic() - started

    def stop(self) -> None:
        if (self.dir / "data" / "postmaster.pid").exists():
            pg_ctl = postgres_bin("pg_ctl")
            subprocess.run(
                _as_postgres([pg_ctl, "-D", str(self.dir / "data"), "-m", "immediate", "stop"]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )


def start_redis(procs: Processes, name: str) -> tuple[subprocess.Popen, str]:
    """A redis-server of our own (e.g. the broker, so pausing it pauses nothing else)."""
    port = free_port()
    proc = procs.start(
        name,
        shutil.which("redis-server") or "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.1)
    raise SystemExit("redis-server did not start")


def start_moto(procs: Processes) -> tuple[subprocess.Popen, str]:
    """moto's SQS server of our own (the queues are created by `manage.py sqs_create_queues`)."""
    port = free_port()
    proc = procs.start("moto", str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port))
    wait_http(f"http://127.0.0.1:{port}/moto-api/")
    return proc, f"sqs://chaos:chaos@127.0.0.1:{port}"
