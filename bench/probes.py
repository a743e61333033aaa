"""Measurements that run inside Django, in their own process (`bench/pipeline.py` calls them).

    python bench/probes.py pdf N          CPU of rendering one shipped order's invoice PDF alone
    python bench/probes.py relay N        the relay on a backlog of N events vs raw send_task
    python bench/probes.py latency N      commit -> handler start, outbox vs a bare Celery hop

Each prints one line `RESULT <json>`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django.conf import settings
from django.db import transaction

from bench import benchapp
from outbox import publish
from outbox.models import OutboxEvent
from outbox.registry import subscribers_for
from outbox.relay import Relay


def envelope(row: OutboxEvent) -> dict:
    if hasattr(row, "as_event"):
        return row.as_event().to_envelope()
    from outbox.relay import envelope_of  # before the outbox's public Event API

    return envelope_of(row)


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def pdf(n: int) -> dict:
    from invoicing.models import Invoice
    from invoicing.pdf import render_pdf
    from invoicing.services import document_context

    # The same template and context as invoicing.services.invoice_render.
    invoice = Invoice.objects.order_by("-pk").first()
    context = document_context(invoice)
    render_pdf("invoicing/invoice_pdf.html", context)  # warm-up: imports, template loading
    cpu = []
    for _ in range(n):
        started = time.process_time()
        render_pdf("invoicing/invoice_pdf.html", context)
        cpu.append(time.process_time() - started)
    return {
        "renders": n,
        "cpu_ms_mean": statistics.mean(cpu) * 1000,
        "cpu_ms_p50": pct(cpu, 50) * 1000,
    }


def _backlog(n: int) -> list[OutboxEvent]:
    OutboxEvent.objects.all().delete()
    with transaction.atomic():
        for i in range(n):
            publish("bench.ping", f"bench-{i}", {"i": i, "note": "x" * 200})
    return list(OutboxEvent.objects.order_by("id"))


def relay(n: int) -> dict:
    conn = benchapp.app.connection_for_write()
    client = conn.default_channel.client
    out = {"events": n}
    subs = subscribers_for("bench.ping")
    for round_ in range(2):  # twice each, interleaved: the second round counts
        rows = _backlog(n)
        started = time.perf_counter()
        with benchapp.app.producer_or_acquire() as producer:
            for row in rows:
                env = envelope(row)
                for sub in subs:
                    benchapp.app.send_task(
                        "outbox.deliver",
                        kwargs={"subscriber": sub.name, "event": env},
                        queue=sub.queue,
                        producer=producer,
                    )
        raw = n / (time.perf_counter() - started)
        client.flushdb()
        _backlog(n)
        r = Relay(benchapp.app)
        started = time.perf_counter()
        while r.run_once():
            pass
        rel = n / (time.perf_counter() - started)
        client.flushdb()
        if round_:
            out.update(raw_per_s=raw, relay_per_s=rel, batch_size=r.batch_size)
    OutboxEvent.objects.all().delete()
    return out


def latency(n: int) -> dict:
    r = benchapp._client()
    r.delete(benchapp.STARTS_KEY)
    sent: dict[str, float] = {}
    for i in range(n):
        with transaction.atomic():
            row = publish("bench.ping", f"lat-{i}", {"i": i})
        sent[f"ping:{row.event_id}"] = time.time()
        time.sleep(0.03)
        stamp = time.time()
        benchapp.app.send_task(
            "bench.hop", args=[stamp], queue=settings.QUEUE_NAMES["notifications"]
        )
        sent[f"hop:{stamp!r}"] = stamp
        time.sleep(0.03)
    deadline = time.time() + 30
    starts: dict[str, float] = {}
    while time.time() < deadline and len(starts) < len(sent):
        for raw in r.lrange(benchapp.STARTS_KEY, 0, -1):
            key, at = json.loads(raw)
            starts.setdefault(key, at)
        time.sleep(0.2)
    out = {"samples": n}
    for kind in ("ping", "hop"):
        lat = [
            (starts[k] - t) * 1000 for k, t in sent.items() if k.startswith(kind) and k in starts
        ]
        out[kind] = {
            "n": len(lat),
            "p50_ms": pct(lat, 50) if lat else None,
            "p95_ms": pct(lat, 95) if lat else None,
        }
    return out


if __name__ == "__main__":
    what, count = sys.argv[1], int(sys.argv[2])
    print("RESULT " + json.dumps({"pdf": pdf, "relay": relay, "latency": latency}[what](count)))
