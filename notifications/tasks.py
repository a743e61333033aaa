"""Celery tasks of notifications: thin wrappers that load by id and call a service."""

import logging

from celery import shared_task

from notifications import services

logger = logging.getLogger(__name__)


@shared_task(name="notifications.send_due_emails")
def send_due_emails() -> int:
    """Beat task: make every due attempt (retries after a failure, requested resends), and send
    the cancellation or refund emails whose credit note did not come in time."""
    sent = 0
    overdue = services.notices_release_overdue()
    for log_id in [*overdue, *services.due_email_ids()]:
        log = services.email_retry(log_id=log_id)
        if log is not None and log.status == log.Status.SENT:
            sent += 1
    return sent


@shared_task(name="notifications.send_email")
def send_email(log_id: int) -> str | None:
    """One email's due attempt now (an admin resend); the beat task is the fallback."""
    log = services.email_retry(log_id=log_id)
    return log and log.status
