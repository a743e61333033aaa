import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from chargeflow.celery import app
from outbox.relay import Relay


class Command(BaseCommand):
    help = "Publish committed outbox events to the broker (long-running; several may run at once)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Publish one batch and exit.")
        parser.add_argument("--batch-size", type=int, default=settings.OUTBOX_RELAY_BATCH_SIZE)
        parser.add_argument(
            "--poll-seconds", type=float, default=settings.OUTBOX_RELAY_POLL_SECONDS
        )

    def handle(self, *args, once, batch_size, poll_seconds, **options):
        relay = Relay(app, batch_size=batch_size)
        if once:
            self.stdout.write(f"published {relay.run_once()} event(s)")
            return
        if settings.METRICS_PORT:
            from chargeflow.metrics import serve

            serve(settings.METRICS_PORT)  # the relay's publish counters
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        relay.run_forever(poll_seconds=poll_seconds, stop=stop)
