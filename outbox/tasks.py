"""Celery tasks of the outbox: thin wrappers over delivery and cleanup."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from chargeflow.backoff import backoff_seconds
from outbox import delivery
from outbox.events import Event, RetryLater
from outbox.services import delivery_failure_record, outbox_cleanup

# A RetryLater (an event ahead of what it depends on) is retried quickly and quietly this many
# times; after that it is recorded as a failed delivery like any other error.
QUIET_RETRIES = 3


def retry_countdown(retries: int) -> int:
    """About 2, 4, 8 … seconds (with jitter), at most CELERY_RETRY_BACKOFF_MAX."""
    return max(1, int(backoff_seconds(retries + 1, base=2, cap=settings.CELERY_RETRY_BACKOFF_MAX)))


@shared_task(bind=True, name="outbox.deliver", max_retries=None)
def deliver(self, subscriber: str, event: dict) -> bool:
    retries = self.request.retries
    try:
        return delivery.deliver(subscriber_name=subscriber, envelope=event)
    except RetryLater as exc:
        if retries >= QUIET_RETRIES:
            delivery_failure_record(
                event=Event.from_envelope(event), subscriber=subscriber, error=f"not ready: {exc}"
            )
        if retries >= settings.CELERY_TASK_MAX_RETRIES:
            raise
        raise self.retry(exc=exc, countdown=min(1 + retries, 10)) from exc
    except Exception as exc:
        if retries >= settings.CELERY_TASK_MAX_RETRIES:
            # Not acknowledged (acks_on_failure_or_timeout=False): SQS redelivers it until the
            # queue's RedrivePolicy moves it to the dead-letter queue.
            raise
        raise self.retry(exc=exc, countdown=retry_countdown(retries)) from exc


@shared_task(name="outbox.cleanup")
def cleanup() -> tuple[int, int]:
    return outbox_cleanup()
