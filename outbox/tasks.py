"""Celery tasks of the outbox: thin wrappers over delivery and cleanup."""

from __future__ import annotations

import random

from celery import shared_task
from django.conf import settings

from outbox import delivery
from outbox.services import outbox_cleanup


def backoff_seconds(retries: int) -> int:
    """Exponential backoff with full jitter, capped: 2, 4, 8 … seconds, at most the cap."""
    ceiling = min(settings.CELERY_RETRY_BACKOFF_MAX, 2 ** (retries + 1))
    return max(1, int(random.uniform(ceiling / 2, ceiling)))


@shared_task(bind=True, name="outbox.deliver", max_retries=None)
def deliver(self, subscriber: str, event: dict) -> bool:
    try:
        return delivery.deliver(subscriber_name=subscriber, envelope=event)
    except Exception as exc:
        if self.request.retries >= settings.CELERY_TASK_MAX_RETRIES:
            # Not acknowledged (acks_on_failure_or_timeout=False): SQS redelivers it until the
            # queue's RedrivePolicy moves it to the dead-letter queue.
            raise
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc


@shared_task(name="outbox.cleanup")
def cleanup() -> tuple[int, int]:
    return outbox_cleanup()
