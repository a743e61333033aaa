"""Writes of the notifications app: one email per order and kind, logged, then `email.sent`.

How an email goes out (docs/notifications.md):
- `email_send` runs in the subscriber's inbox transaction: it creates the log row (unique per
  order and kind, locked) with what the email is rendered from, and makes the first attempt. A
  redelivered event finds the row and sends nothing.
- A failed attempt (SMTP or provider error) does not raise: it is recorded (an `EmailAttempt`, the
  error on the log) and the log becomes `pending` with `next_attempt_at` (exponential backoff with
  jitter). The beat task `notifications.send_due_emails` retries it, up to
  EMAIL_SEND_MAX_ATTEMPTS, then the log is `failed` (shown in the admin, which can resend).
- An admin resend (`email_resend_request`) makes one more, forced attempt: a new `EmailAttempt`
  on the same log, never a second log.
- Every successful attempt publishes `email.sent` (orders records `email_sent` on the timeline).
- The provider's tracking webhooks (anymail's `tracking` signal) move the log to `delivered`,
  `bounced` or `complained` (`email_track`).
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any

from anymail.exceptions import AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from chargeflow.backoff import backoff_seconds
from notifications.models import EmailAttempt, EmailLog, OrderContact
from outbox import RetryLater, publish

logger = logging.getLogger(__name__)

# What a send may raise that is about the transport, not about our code: recorded and retried.
SEND_ERRORS = (smtplib.SMTPException, OSError, AnymailError)


@dataclass(frozen=True)
class Attachment:
    storage_path: str
    filename: str
    mimetype: str = "application/pdf"


@dataclass(frozen=True)
class EmailKind:
    subject: str
    template: str


KINDS: dict[str, EmailKind] = {
    "order_confirmation": EmailKind("We received your order {number}", "order_confirmation"),
    "invoice_issued": EmailKind("Your invoice for order {number}", "invoice_issued"),
    "payment_received": EmailKind("Payment received for order {number}", "payment_received"),
    "payment_failed": EmailKind("Payment failed for order {number}", "payment_failed"),
    "action_required": EmailKind(
        "Please confirm your payment for order {number}", "action_required"
    ),
    "shipped": EmailKind("Your order {number} is on its way", "shipped"),
    "delivered": EmailKind("Your order {number} was delivered", "delivered"),
    "cancelled": EmailKind("Your order {number} was cancelled", "cancelled"),
    "refunded": EmailKind("Your order {number} was refunded", "refunded"),
}

# Tracking events (anymail's normalised `event_type`) that change the log's status, and how far
# along each status is: a late `delivered` never hides an earlier bounce or complaint.
TRACKED_STATUS = {
    "delivered": EmailLog.Status.DELIVERED,
    "bounced": EmailLog.Status.BOUNCED,
    "rejected": EmailLog.Status.BOUNCED,
    "failed": EmailLog.Status.BOUNCED,
    "complained": EmailLog.Status.COMPLAINED,
}
STATUS_RANK = {
    EmailLog.Status.SENT: 0,
    EmailLog.Status.DELIVERED: 1,
    EmailLog.Status.BOUNCED: 2,
    EmailLog.Status.COMPLAINED: 2,
}


@transaction.atomic
def contact_record(
    *, order_id: str, order_number: str, email: str, name: str, order_url: str
) -> OrderContact:
    contact, _ = OrderContact.objects.get_or_create(
        order_id=order_id,
        defaults={
            "order_number": order_number,
            "email": email,
            "name": name,
            "order_url": order_url,
        },
    )
    return contact


@transaction.atomic
def email_send(
    *,
    order_id: str,
    kind: str,
    context: dict | None = None,
    attachments: list[Attachment] | None = None,
) -> EmailLog:
    """Send the `kind` email of an order to its customer, once: the log row (unique per order and
    kind) is written and locked first; a row that exists already means nothing more to do here
    (a redelivery; a failed first attempt is the retry task's job)."""
    contact = OrderContact.objects.filter(order_id=order_id).first()
    if contact is None:
        raise RetryLater(f"order {order_id}: order.placed not handled here yet (no contact)")
    spec = KINDS[kind]
    log, created = EmailLog.objects.select_for_update().get_or_create(
        order_id=order_id,
        kind=kind,
        defaults={
            "recipient": contact.email,
            "subject": spec.subject.format(number=contact.order_number),
            "context": context or {},
            "attachments": [asdict(a) for a in attachments or []],
        },
    )
    if not created:
        logger.info("order %s: %s email already handled (%s)", order_id, kind, log.status)
        return log
    return _attempt(log, contact=contact)


def due_email_ids(*, now: datetime | None = None, limit: int = 100) -> list[int]:
    return list(
        EmailLog.objects.filter(
            status=EmailLog.Status.PENDING, next_attempt_at__lte=now or timezone.now()
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


@transaction.atomic
def email_retry(*, log_id: int) -> EmailLog | None:
    """Make the due attempt of a pending email (a retry or a requested resend). Skips a row
    another worker holds, or one that is no longer pending (None)."""
    log = (
        EmailLog.objects.select_for_update(skip_locked=True)
        .filter(pk=log_id, status=EmailLog.Status.PENDING)
        .first()
    )
    if log is None:
        return None
    return _attempt(log, contact=OrderContact.objects.get(order_id=log.order_id))


@transaction.atomic
def email_resend_request(*, log_id: int, requested_by: str) -> EmailLog:
    """Ask for one more, forced attempt at an email (admin "resend"): the same log, a new
    attempt, made by `notifications.send_email` right after commit (or the next beat run)."""
    log = EmailLog.objects.select_for_update().get(pk=log_id)
    log.status = EmailLog.Status.PENDING
    log.next_attempt_at = timezone.now()
    log.resend_requested_by = requested_by[:150] or "admin"
    log.save(update_fields=["status", "next_attempt_at", "resend_requested_by", "updated_at"])
    logger.info("order %s: resend of %s requested by %s", log.order_id, log.kind, requested_by)
    return log


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(
        seconds=backoff_seconds(
            attempts, base=settings.EMAIL_RETRY_BASE_SECONDS, cap=settings.EMAIL_RETRY_MAX_SECONDS
        )
    )


def _provider(connection: Any) -> str:
    return getattr(connection, "esp_name", None) or type(connection).__module__.rsplit(".", 1)[-1]


def _render(log: EmailLog, contact: OrderContact) -> EmailMultiAlternatives:
    spec = KINDS[log.kind]
    ctx = {
        "shop_name": settings.SHOP_NAME,
        "brand_color": settings.SHOP_BRAND_COLOR,
        "site_url": settings.SITE_URL,
        "contact": contact,
        "order_number": contact.order_number,
        "order_url": contact.order_url,
        "subject": log.subject,
        **log.context,
    }
    message = EmailMultiAlternatives(
        subject=log.subject,
        body=render_to_string(f"notifications/email/{spec.template}.txt", ctx),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[contact.email],
        headers={
            "Message-ID": make_msgid(domain="chargeflow.local"),
            "X-ChargeFlow-Order": contact.order_number,
            "X-ChargeFlow-Kind": log.kind,
        },
    )
    message.attach_alternative(
        render_to_string(f"notifications/email/{spec.template}.html", ctx), "text/html"
    )
    message.tags = [log.kind]  # anymail: the provider's own reports can group by kind
    message.metadata = {"order_id": str(log.order_id), "kind": log.kind}
    for item in log.attachments:
        attachment = Attachment(**item)
        with default_storage.open(attachment.storage_path, "rb") as fh:
            message.attach(attachment.filename, fh.read(), attachment.mimetype)
    return message


def _attempt(log: EmailLog, *, contact: OrderContact) -> EmailLog:
    """One try at sending `log` (locked by the caller); records it whatever happens."""
    forced = bool(log.resend_requested_by)
    message = _render(log, contact)  # a template or storage error raises: a bug, not a retry
    connection = get_connection()
    message.connection = connection
    log.attempts += 1
    attempt = EmailAttempt(
        log=log,
        number=log.attempts,
        forced=forced,
        requested_by=log.resend_requested_by,
        provider=_provider(connection),
    )
    log.provider = attempt.provider
    log.recipient = contact.email
    log.resend_requested_by = ""
    try:
        message.send(fail_silently=False)
    except SEND_ERRORS as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        attempt.status = EmailAttempt.Status.FAILED
        attempt.error = error
        log.error = error
        refused = isinstance(exc, AnymailRecipientsRefused)
        if forced or refused or log.attempts >= settings.EMAIL_SEND_MAX_ATTEMPTS:
            log.status = EmailLog.Status.FAILED
            log.next_attempt_at = None
        else:
            log.status = EmailLog.Status.PENDING
            log.next_attempt_at = timezone.now() + _retry_delay(log.attempts)
        log.save()
        attempt.save()
        logger.warning(
            "order %s: %s email attempt %s to %s failed (%s, next %s): %s",
            log.order_id,
            log.kind,
            log.attempts,
            contact.email,
            log.status,
            log.next_attempt_at,
            error,
        )
        return log
    anymail_status = getattr(message, "anymail_status", None)
    message_id = (anymail_status and anymail_status.message_id) or message.extra_headers[
        "Message-ID"
    ]
    attempt.status = EmailAttempt.Status.SENT
    attempt.message_id = str(message_id)
    log.message_id = attempt.message_id
    log.status = EmailLog.Status.SENT
    log.error = ""
    log.next_attempt_at = None
    log.sent_at = timezone.now()
    log.save()
    attempt.save()
    publish(
        "email.sent",
        log.order_id,
        {
            "order_id": str(log.order_id),
            "kind": log.kind,
            "recipient": contact.email,
            "attempt": attempt.number,
            "resend": forced,
        },
    )
    logger.info(
        "order %s: %s email sent to %s (attempt %s%s, %s %s)",
        log.order_id,
        log.kind,
        contact.email,
        attempt.number,
        ", forced resend" if forced else "",
        attempt.provider,
        attempt.message_id,
    )
    return log


@transaction.atomic
def email_track(
    *, message_id: str, event_type: str, detail: str = "", at: datetime | None = None
) -> EmailLog | None:
    """Apply a provider's tracking event (delivered, bounced, complained, ...) to the attempt
    with that message id and, when it is the log's latest attempt, to the log. Unknown message
    ids (another system's mail) are ignored."""
    attempt = (
        EmailAttempt.objects.select_related("log")
        .filter(message_id=message_id)
        .order_by("-pk")
        .first()
    )
    if not message_id or attempt is None:
        logger.info("tracking %s for unknown message %r ignored", event_type, message_id)
        return None
    log = EmailLog.objects.select_for_update().get(pk=attempt.log_id)
    attempt.tracking_event = event_type[:32]
    attempt.tracking_detail = detail[:2000]
    attempt.tracking_at = at or timezone.now()
    attempt.save(update_fields=["tracking_event", "tracking_detail", "tracking_at"])
    new_status = TRACKED_STATUS.get(event_type)
    if (
        new_status
        and log.message_id == message_id
        and log.status in STATUS_RANK
        and STATUS_RANK[new_status] > STATUS_RANK[log.status]
    ):
        log.status = new_status
        if new_status != EmailLog.Status.DELIVERED:
            log.error = f"{event_type}: {detail}"[:2000]
        log.save(update_fields=["status", "error", "updated_at"])
        logger.info("order %s: %s email %s (%s)", log.order_id, log.kind, event_type, detail)
    return log
