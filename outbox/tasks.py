"""Celery tasks of the outbox: thin wrappers over delivery and cleanup."""

from __future__ import annotations

from datetime import UTC, datetime

from celery import shared_task
from celery.worker.request import Request
from django.conf import settings
from django.utils import timezone

from chargeflow.backoff import backoff_seconds
from outbox import delivery
from outbox.events import Event, RetryLater
from outbox.services import delivery_failure_record, outbox_cleanup

# A RetryLater (an event ahead of what it depends on) is retried quickly and quietly this many
# times; after that it is recorded as a failed delivery like any other error.
QUIET_RETRIES = 3
# RetryLater waits about 1, 2, 4, 8 … seconds, at most this long: the missing event is usually
# a moment away on another queue.
QUIET_RETRY_CAP_SECONDS = 10


class DeliveryRequest(Request):
    """The worker's view of a delivery, plus what SQS says about the message: how many times it
    was received (ApproximateReceiveCount: a worker that died holding it counts) and when first
    (ApproximateFirstReceiveTimestamp). Celery keeps only a few delivery_info keys for the task;
    these two are added to them here, in the worker's main process, where the SQS message is."""

    def __init__(self, message, *args, **kwargs):
        super().__init__(message, *args, **kwargs)
        sqs_message = (message.delivery_info or {}).get("sqs_message") or {}
        attributes = sqs_message.get("Attributes") or {}
        if attributes.get("ApproximateReceiveCount"):
            self._delivery_info["receive_count"] = int(attributes["ApproximateReceiveCount"])
        if attributes.get("ApproximateFirstReceiveTimestamp"):
            self._delivery_info["first_received_ms"] = int(
                attributes["ApproximateFirstReceiveTimestamp"]
            )


def retry_countdown(retries: int, *, base: float = 2, cap: float | None = None) -> int:
    """About 2, 4, 8 … seconds (with jitter), at most CELERY_RETRY_BACKOFF_MAX."""
    cap = settings.CELERY_RETRY_BACKOFF_MAX if cap is None else cap
    return max(1, round(backoff_seconds(retries + 1, base=base, cap=cap)))


def delivery_attempt(request, delivered_before: int) -> tuple[int, datetime]:
    """(attempt, first delivery time) of the message being run: the deliveries of earlier
    messages of this event (a Celery retry is a new message) plus this message's receive count.
    Without SQS attributes (another broker, an eager call) a redelivered message counts 2."""
    info = request.delivery_info or {}
    receives = info.get("receive_count") or (2 if info.get("redelivered") else 1)
    first_ms = info.get("first_received_ms")
    first = datetime.fromtimestamp(first_ms / 1000, tz=UTC) if first_ms else timezone.now()
    return delivered_before + receives, first


@shared_task(bind=True, name="outbox.deliver", max_retries=None, Request=DeliveryRequest)
def deliver(
    self,
    subscriber: str,
    event: dict,
    delivered_before: int = 0,
    first_delivered_at: str | None = None,
) -> bool:
    retries = self.request.retries
    attempt, first = delivery_attempt(self.request, delivered_before)
    if first_delivered_at:
        first = datetime.fromisoformat(first_delivered_at)
    # A retry is a new message: it carries how many deliveries came before it, and since when.
    again = {
        "subscriber": subscriber,
        "event": event,
        "delivered_before": attempt,
        "first_delivered_at": first.isoformat(),
    }
    try:
        return delivery.deliver(
            subscriber_name=subscriber, envelope=event, attempt=attempt, first_delivered_at=first
        )
    except RetryLater as exc:
        if retries >= QUIET_RETRIES:
            delivery_failure_record(
                event=Event.from_envelope(event), subscriber=subscriber, error=f"not ready: {exc}"
            )
        if retries >= settings.CELERY_TASK_MAX_RETRIES:
            raise
        countdown = retry_countdown(retries, base=1, cap=QUIET_RETRY_CAP_SECONDS)
        raise self.retry(kwargs=again, exc=exc, countdown=countdown) from exc
    except Exception as exc:
        if retries >= settings.CELERY_TASK_MAX_RETRIES:
            # Not acknowledged (acks_on_failure_or_timeout=False): SQS redelivers it until the
            # queue's RedrivePolicy moves it to the dead-letter queue.
            raise
        raise self.retry(kwargs=again, exc=exc, countdown=retry_countdown(retries)) from exc


@shared_task(name="outbox.cleanup")
def cleanup() -> tuple[int, int]:
    return outbox_cleanup()
