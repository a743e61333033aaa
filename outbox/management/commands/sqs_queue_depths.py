from django.core.management.base import BaseCommand

from outbox.sqs import queue_depths


class Command(BaseCommand):
    help = "Show visible and in-flight messages per SQS queue and dead-letter queue."

    def handle(self, *args, **options):
        for name, depth in queue_depths().items():
            self.stdout.write(
                f"{name:40} visible={depth['visible']:<6} in_flight={depth['in_flight']}"
            )
