"""The bench's Celery worker and relay: the project's own app plus two probes (`make bench` only).

- `bench.ping`, an event type with one transactional subscriber that does nothing: commit ->
  handler start through the outbox, relay and worker, without any business work.
- `bench.hop`, a bare Celery task: the floor that the outbox path is compared with.
- Every task start is pushed to a Redis list (`bench:starts`) with the wall-clock time, so the
  bench measures "commit -> first handler start" from outside.

    celery -A bench.benchapp worker ...      python bench/benchapp.py relay
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargeflow.settings")

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from celery.signals import task_postrun, task_prerun  # noqa: E402
from django.conf import settings  # noqa: E402

from chargeflow.celery import app  # noqa: E402
from outbox.registry import subscriber  # noqa: E402

STARTS_KEY = "bench:starts"
_redis = None


def _client():
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ["BENCH_PROBE_REDIS"])
    return _redis


@subscriber("bench.ping", name="bench.ping", app="notifications")
def ping(event) -> None:
    """Nothing: the cost measured is the pipeline's own."""


@app.task(name="bench.hop")
def hop(sent: float) -> None:
    return None


# --task-cpu: the CPU of each task in the pool process (time.process_time around it), summed per
# subscriber (or task name) in a Redis hash that the bench reads before and after each batch.
TASK_CPU_KEY = "bench:taskcpu"
_task_started: dict[str, float] = {}


def _task_key(task, kwargs) -> str:
    if task.name == "outbox.deliver":
        return (kwargs or {}).get("subscriber") or task.name
    return task.name


def _cpu_start(task_id=None, **_):
    _task_started[task_id] = time.process_time()


def _cpu_end(task_id=None, task=None, kwargs=None, **_):
    started = _task_started.pop(task_id, None)
    if started is None:
        return
    key = _task_key(task, kwargs)
    pipe = _client().pipeline(transaction=False)
    pipe.hincrbyfloat(TASK_CPU_KEY, key, time.process_time() - started)
    pipe.hincrby(TASK_CPU_KEY, f"{key}#n", 1)
    pipe.execute()


if os.environ.get("BENCH_TASK_CPU"):
    task_prerun.connect(_cpu_start, weak=False)
    task_postrun.connect(_cpu_end, weak=False)


@task_prerun.connect
def record_start(task_id=None, task=None, args=None, kwargs=None, **_):
    now = time.time()
    if task.name == "bench.hop":
        key = f"hop:{args[0]!r}"
    elif task.name == "outbox.deliver" and (kwargs or {}).get("subscriber") == "bench.ping":
        key = f"ping:{kwargs['event']['id']}"
    else:
        return
    _client().rpush(STARTS_KEY, json.dumps([key, now]))


if __name__ == "__main__" and sys.argv[1:] == ["relay"]:
    from django.core.management import call_command

    assert settings.QUEUE_NAMES
    call_command("outbox_relay")
