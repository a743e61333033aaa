"""Writes of the notifications app: one email per order and kind, logged, then `email.sent`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.utils import make_msgid

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from notifications.models import EmailLog, OrderContact
from outbox import publish

logger = logging.getLogger(__name__)


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
    kind) is written and locked first, and a row already sent means nothing more to do."""
    contact = OrderContact.objects.get(order_id=order_id)
    spec = KINDS[kind]
    subject = spec.subject.format(number=contact.order_number)
    log, _ = EmailLog.objects.select_for_update().get_or_create(
        order_id=order_id,
        kind=kind,
        defaults={"recipient": contact.email, "subject": subject},
    )
    if log.status != EmailLog.Status.SENDING and log.status != EmailLog.Status.FAILED:
        logger.info("order %s: %s email already sent, not sending again", order_id, kind)
        return log
    ctx = {
        "shop_name": settings.SHOP_NAME,
        "site_url": settings.SITE_URL,
        "contact": contact,
        "order_number": contact.order_number,
        "order_url": contact.order_url,
        "subject": subject,
        **(context or {}),
    }
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"notifications/email/{spec.template}.txt", ctx),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[contact.email],
        headers={
            "Message-ID": make_msgid(domain="chargeflow.local"),
            "X-ChargeFlow-Order": str(order_id),
        },
    )
    message.attach_alternative(
        render_to_string(f"notifications/email/{spec.template}.html", ctx), "text/html"
    )
    for attachment in attachments or []:
        with default_storage.open(attachment.storage_path, "rb") as fh:
            message.attach(attachment.filename, fh.read(), attachment.mimetype)
    message.send(fail_silently=False)
    status = getattr(message, "anymail_status", None)
    log.message_id = (status and status.message_id) or message.extra_headers["Message-ID"]
    log.provider = (
        settings.EMAIL_BACKEND.rsplit(".", 2)[-2] if "anymail" in settings.EMAIL_BACKEND else "smtp"
    )
    log.status = EmailLog.Status.SENT
    log.sent_at = timezone.now()
    log.recipient = contact.email
    log.save()
    publish(
        "email.sent",
        order_id,
        {"order_id": str(order_id), "kind": kind, "recipient": contact.email},
    )
    logger.info("order %s: %s email sent to %s", order_id, kind, contact.email)
    return log
