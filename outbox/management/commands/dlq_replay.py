"""Send the messages of the dead-letter queues back to their queues (docs/operations.md).

    python manage.py dlq_replay                    # every queue
    python manage.py dlq_replay --queue billing    # one queue
    python manage.py dlq_replay --dry-run          # list what would be sent, send nothing

Safe to repeat: a message delivered twice is skipped by the inbox."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from outbox.dlq import redrive


class Command(BaseCommand):
    help = "Send dead-letter messages back to their queue (safe to repeat)."

    def add_arguments(self, parser):
        parser.add_argument("--queue", choices=sorted(settings.QUEUE_NAMES), default=None)
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, queue=None, dry_run=False, **options):
        try:
            result = redrive(queue, dry_run=dry_run)
        except Exception as exc:
            raise CommandError(f"{type(exc).__name__}: {exc}") from exc
        for letter in result.messages:
            self.stdout.write(
                f"{letter.queue}: {letter.message_id} {letter.subscriber or letter.task} "
                f"{letter.event_type or '-'} order={letter.aggregate_id or '-'} "
                f"event={letter.event_id or '-'} received {letter.receive_count}x"
            )
        verb = "would send back" if dry_run else "sent back"
        per_queue = ", ".join(f"{q}: {n}" for q, n in sorted(result.moved.items())) or "nothing"
        self.stdout.write(self.style.SUCCESS(f"{verb} {result.total} message(s) ({per_queue})"))
