import time

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from outbox.sqs import ensure_queues, sqs_client


class Command(BaseCommand):
    help = "Create the SQS queues and their dead-letter queues (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--wait", type=float, default=0, help="Seconds to wait for the SQS endpoint to answer."
        )

    def handle(self, *args, wait, **options):
        if not settings.CELERY_BROKER_URL.startswith("sqs://"):
            self.stdout.write("broker is not SQS: nothing to create")
            return
        deadline = time.monotonic() + wait
        while True:
            try:
                results = ensure_queues(sqs_client())
                break
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() >= deadline:
                    raise CommandError(f"cannot reach SQS: {exc}") from exc
                time.sleep(0.5)
        for name, created in results:
            self.stdout.write(f"{'created' if created else 'exists '} {name}")
