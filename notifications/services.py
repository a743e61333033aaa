"""Writes of the notifications app: one email per order and kind, logged, then `email.sent`.

How an email goes out (docs/notifications.md), in atomic phases, never with a transaction open
while the provider (SMTP or an API) or object storage (attachments) is being called:

1. `email_queue`, committed on its own: the log row (unique per order and kind) with what the
   email is rendered from, status `queued`. A redelivered event finds the row.
2. `email_deliver`, after that commit (the subscriber, on every delivery until it returns; or
   the beat task): renders the email (attachments read from storage), then commits the
   attempt as `sending` with its Message-ID, deterministic per order, kind and resend
   (`<kind.order-id@domain>`, `<kind.resend-N.order-id@domain>`);
3. sends it with no transaction open;
4. records the answer in a new transaction: `sent` (and publishes `email.sent`), or a failed
   attempt (`pending` with `next_attempt_at`, exponential backoff with jitter, up to
   EMAIL_SEND_MAX_ATTEMPTS, then `failed`).

An email's first delivery (`email_send`) renders it first and commits 1 and 2 together (`_send`).

A crash between 2 and 4 leaves the attempt `sending`: after EMAIL_SEND_LEASE_SECONDS the beat
task `notifications.send_due_emails` resumes that same attempt with the same Message-ID, so a
copy that the provider had accepted is collapsed by the mail store. An admin resend
(`email_resend_request`) is one more, forced attempt with its own Message-ID, never a second log.
The provider's tracking webhooks (anymail's `tracking` signal) move the log to `delivered`,
`bounced` or `complained` (`email_track`).
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from anymail.exceptions import AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django_countries import countries

from chargeflow import metrics
from chargeflow.backoff import backoff_seconds
from chargeflow.wording import customer_reason
from notifications.models import CreditNoteCopy, EmailAttempt, EmailLog, Notice, OrderContact
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
    "order_confirmation": EmailKind("Thank you for your order {number}", "order_confirmation"),
    "invoice_issued": EmailKind("Your invoice for order {number}", "invoice_issued"),
    "payment_received": EmailKind("Payment received for order {number}", "payment_received"),
    # Not sent any more (a declined payment is told in the `cancelled` email, one message for
    # one thing that happened); kept so that an old log can still be rendered and resent.
    "payment_failed": EmailKind("Payment failed for order {number}", "payment_failed"),
    "action_required": EmailKind(
        "Please confirm your payment for order {number}", "action_required"
    ),
    "shipped": EmailKind("Your order {number} is on its way", "shipped"),
    "delivered": EmailKind("Your order {number} was delivered", "delivered"),
    "cancelled": EmailKind("Your order {number} was cancelled", "cancelled"),
    "refunded": EmailKind("Your order {number} was refunded in full", "refunded"),
    # "Find my order": the order's link; asked again, it is resent (one log, attempts).
    "order_link": EmailKind("The link to your order {number}", "order_link"),
    # One per partial refund: the log's kind is `partial_refund-<refund id>` (base_kind()).
    "partial_refund": EmailKind("A refund for your order {number}", "partial_refund"),
}


def base_kind(kind: str) -> str:
    """The kind of email a log is (`partial_refund-12` is a `partial_refund`)."""
    return kind.split("-", 1)[0]


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


def _insert_once(row: Any, **key: Any) -> tuple[Any, bool]:
    """Insert `row`, or read the row that has its unique `key` already (a redelivery): (row,
    created). The insert comes first, the usual case being a first delivery. Outside a
    transaction it is one statement, committed on its own; inside one, a savepoint keeps a
    refused insert from breaking the caller's transaction."""
    try:
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():
                row.save(force_insert=True)
        else:
            row.save(force_insert=True)
    except IntegrityError:
        return type(row).objects.get(**key), False
    return row, True


def contact_record(
    *,
    order_id: str,
    order_number: str,
    email: str,
    name: str,
    order_url: str,
    summary: dict | None = None,
) -> OrderContact:
    contact, _ = _insert_once(
        OrderContact(
            order_id=order_id,
            order_number=order_number,
            email=email,
            name=name,
            order_url=order_url,
            summary=summary or {},
        ),
        order_id=order_id,
    )
    return contact


def order_confirmation_send(
    *,
    order_id: str,
    order_number: str,
    email: str,
    name: str,
    order_url: str,
    summary: dict,
    order: dict,
) -> EmailLog:
    """order.placed: keep the order's contact (what every later email is addressed and
    rendered from) and send the order confirmation, in phases like `email_send`."""
    contact = contact_record(
        order_id=order_id,
        order_number=order_number,
        email=email,
        name=name,
        order_url=order_url,
        summary=summary,
    )
    return _send(contact, _new_log(contact, kind="order_confirmation", context={"order": order}))


def order_summary(data: dict) -> dict:
    """What the emails show of an order, from its order.placed payload: the items (with their
    prices), the address, the currency, the totals when the event carries them, and how it is
    paid."""
    payment = data.get("payment") or {}
    address = dict(data.get("shipping_address") or {})
    if address.get("country"):
        address["country_name"] = countries.name(address["country"]) or address["country"]
    return {
        "currency": data.get("currency", ""),
        "items": [
            {
                "sku": item.get("sku", ""),
                "name": item.get("name", ""),
                "quantity": item.get("quantity"),
                "unit_price": str(item.get("unit_price", "")),
                "line_total": str(item.get("line_total", "")),
            }
            for item in data.get("items", [])
        ],
        "shipping_address": address,
        "totals": data.get("totals") or {},
        "pricing": data.get("pricing") or {},
        "payment": {"authorized": bool(payment.get("payment_intent"))},
    }


def contact_record_invoice(*, order_id: str, invoice: dict) -> None:
    """Keep the invoice's number and totals (from invoice.issued) for the later emails (one
    UPDATE, atomic by itself)."""
    OrderContact.objects.filter(order_id=order_id).update(
        invoice={
            "number": invoice.get("number", ""),
            "currency": invoice.get("currency", ""),
            "totals": invoice.get("totals") or {},
        }
    )


def _contact(order_id: str) -> OrderContact:
    contact = OrderContact.objects.filter(order_id=order_id).first()
    if contact is None:
        raise RetryLater(f"order {order_id}: order.placed not handled here yet (no contact)")
    return contact


def email_queue(
    *,
    order_id: str,
    kind: str,
    context: dict | None = None,
    attachments: list[Attachment] | None = None,
    subject: str = "",
) -> EmailLog:
    """Phase 1, committed before anything is sent: record the `kind` email of an order
    (`queued`), once; a row that exists already (a redelivery) is returned as it is. Sends
    nothing: `email_deliver` does, after commit. `subject` replaces the kind's own (a
    `{number}` in it is the order number)."""
    contact = _contact(order_id)
    log, created = _insert_once(
        _new_log(contact, kind=kind, context=context, attachments=attachments, subject=subject),
        order_id=contact.order_id,
        kind=kind,
    )
    if not created:
        logger.info("order %s: %s email already recorded (%s)", contact.order_id, kind, log.status)
    return log


def _new_log(
    contact: OrderContact,
    *,
    kind: str,
    context: dict | None = None,
    attachments: list[Attachment] | None = None,
    subject: str = "",
) -> EmailLog:
    """The `kind` email of the contact's order, as first recorded (`queued`; not saved)."""
    return EmailLog(
        order_id=contact.order_id,
        kind=kind,
        recipient=contact.email,
        subject=(subject or KINDS[base_kind(kind)].subject).format(number=contact.order_number),
        context=context or {},
        attachments=[asdict(a) for a in attachments or []],
        status=EmailLog.Status.QUEUED,
    )


def _send(contact: OrderContact, log: EmailLog) -> EmailLog:
    """`email_send` for a contact already read and its new log (`_new_log`, not saved). The
    first delivery renders the email, then commits the log and its first attempt (`sending`)
    together: phases 1 and 2 in one transaction, as if the log had been queued a moment
    before. A redelivery finds the log (its unique order and kind) and makes its due attempt,
    if any (`_deliver`)."""
    message = _render(log, contact)
    connection = get_connection()
    provider = _provider(connection)
    try:
        with transaction.atomic(durable=True):
            log.status, log.attempts, log.provider = EmailLog.Status.SENDING, 1, provider
            log.save(force_insert=True)
            attempt = EmailAttempt.objects.create(
                log=log,
                number=1,
                status=EmailAttempt.Status.SENDING,
                provider=provider,
                header_message_id=message_id_for(log),
            )
    except IntegrityError:  # recorded already: a redelivery, or a duplicate right now
        log = EmailLog.objects.get(order_id=contact.order_id, kind=log.kind)
        logger.info("order %s: %s email already recorded (%s)", log.order_id, log.kind, log.status)
        return _deliver(log, contact)
    return _send_attempt(message, connection, attempt)


# --- Emails that wait for their credit note ---------------------------------------------------
#
# A cancellation and a refund are each told in one email with the credit note attached. The
# credit note is issued by invoicing a moment after the fact (its own event), so the email is
# recorded as a `Notice` and queued when both are here, whichever event is handled first: both
# handlers lock the order's contact row, so neither misses the other. A notice whose credit note
# does not come (nothing was invoiced, or invoicing is stuck) is sent without it after
# NOTICE_WAIT_MINUTES by the beat task; the order page lists the credit note when it comes.

CANCELLATION = "cancellation"


def _locked_contact(order_id: str) -> OrderContact:
    contact = OrderContact.objects.select_for_update().filter(order_id=order_id).first()
    if contact is None:
        raise RetryLater(f"order {order_id}: order.placed not handled here yet (no contact)")
    return contact


def _credits(note: CreditNoteCopy, awaits: str) -> bool:
    if awaits == CANCELLATION:
        return not note.source.startswith("refund:")
    return note.source == awaits


def _note_context(note: CreditNoteCopy) -> dict:
    return {
        "number": note.number,
        "amount": str(note.amount),
        "currency": note.currency,
        "invoice_number": note.data.get("invoice_number", ""),
        "balance_after": note.data.get("balance_after", ""),
        "net": note.data.get("net", ""),
        "tax": note.data.get("tax", ""),
    }


def _notice_queue(notice: Notice, note: CreditNoteCopy | None) -> None:
    context = dict(notice.context)
    attachments = []
    if note is not None:
        context["credit_note"] = _note_context(note)
        attachments.append(Attachment(note.pdf_path, f"credit-note-{note.number}.pdf"))
    email_queue(
        order_id=str(notice.order_id),
        kind=notice.kind,
        context=context,
        attachments=attachments,
        subject=context.pop("subject", ""),
    )
    notice.queued_at = timezone.now()
    notice.save(update_fields=["queued_at"])


def _notices_ready(order_id: str) -> None:
    """Queue the order's waiting notices whose credit note is here (or that wait for none).
    Runs with the contact row locked."""
    notes = list(CreditNoteCopy.objects.filter(order_id=order_id))
    for notice in Notice.objects.filter(order_id=order_id, queued_at__isnull=True):
        note = next((n for n in notes if _credits(n, notice.awaits)), None)
        if note is not None or not notice.awaits:
            _notice_queue(notice, note)


def notice_record(
    *, order_id: str, kind: str, context: dict, awaits: str, subject: str = ""
) -> list[str]:
    """Record that the customer is to be told `kind` (once), and queue its email if its credit
    note is here already. Returns the order's notice kinds (to deliver after commit)."""
    with transaction.atomic():
        _locked_contact(order_id)
        Notice.objects.get_or_create(
            order_id=order_id,
            kind=kind,
            defaults={"context": {**context, "subject": subject}, "awaits": awaits},
        )
        _notices_ready(order_id)
        return list(Notice.objects.filter(order_id=order_id).values_list("kind", flat=True))


def credit_note_record(*, order_id: str, data: dict) -> list[str]:
    """Keep an issued credit note (credit_note.issued) and queue the notice waiting for it.
    Returns the order's notice kinds (to deliver after commit)."""
    with transaction.atomic():
        _locked_contact(order_id)
        CreditNoteCopy.objects.get_or_create(
            number=data["number"],
            defaults={
                "order_id": order_id,
                "source": data.get("source", ""),
                "amount": Decimal(data["amount"]),
                "currency": data.get("currency", ""),
                "pdf_path": data["pdf_path"],
                "data": {
                    k: data.get(k, "")
                    for k in ("invoice_number", "balance_after", "net", "tax", "reason")
                },
            },
        )
        _notices_ready(order_id)
        return list(Notice.objects.filter(order_id=order_id).values_list("kind", flat=True))


def notices_release_overdue(*, now: datetime | None = None) -> list[int]:
    """Queue the notices that waited NOTICE_WAIT_MINUTES for a credit note that did not come,
    without it (beat task). Returns the email log ids to deliver."""
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.NOTICE_WAIT_MINUTES)
    ids = []
    for pk in Notice.objects.filter(queued_at__isnull=True, created_at__lte=cutoff).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            notice = Notice.objects.get(pk=pk)
            _locked_contact(str(notice.order_id))
            notice = Notice.objects.get(pk=pk)
            if notice.queued_at is not None:
                continue
            logger.warning(
                "order %s: %s email waited %s min for its credit note: sent without it",
                notice.order_id,
                notice.kind,
                settings.NOTICE_WAIT_MINUTES,
            )
            _notice_queue(notice, None)
            ids.append(EmailLog.objects.get(order_id=notice.order_id, kind=notice.kind).pk)
    return ids


def order_link_send(*, order_id: str, order_url: str) -> EmailLog | None:
    """Email the order's (fresh) link, asked for on "Find my order": the first time as the
    order's `order_link` email, later as a resend of it with the new link, but not again within
    ORDER_LINK_EMAIL_COOLDOWN_MINUTES of the last one (whoever asks, however often)."""
    cooldown = timedelta(minutes=settings.ORDER_LINK_EMAIL_COOLDOWN_MINUTES)
    with transaction.atomic():
        _locked_contact(order_id)
        log = EmailLog.objects.select_for_update().filter(order_id=order_id, kind="order_link")
        log = log.first()
        if log is None:
            log = email_queue(
                order_id=order_id, kind="order_link", context={"order_url": order_url}
            )
        elif log.status in (EmailLog.Status.QUEUED, EmailLog.Status.SENDING) or (
            log.sent_at and log.sent_at > timezone.now() - cooldown
        ):
            logger.info("order %s: order link sent moments ago, not again", order_id)
            return None
        else:
            log.context = {"order_url": order_url}
            log.save(update_fields=["context", "updated_at"])
            log = email_resend_request(log_id=log.pk, requested_by="customer (find my order)")
    return email_deliver(log_id=log.pk)


def cancellation_context(data: dict) -> tuple[dict, str]:
    """The cancelled email's context and subject, from order.cancelled: a declined payment and
    the cancellation it causes are one email."""
    reason = data.get("reason", "")
    payment_failed = bool(data.get("payment_failed")) or reason.lower().startswith("payment failed")
    context = {
        "order": {"number": data.get("number", ""), "status": data.get("status", "")},
        "cause": customer_reason(reason, default="We had to cancel it."),
        "payment_failed": payment_failed,
    }
    subject = (
        "Your payment did not go through: order {number} is cancelled"
        if payment_failed
        else "Your order {number} was cancelled"
    )
    return context, subject


def refund_notice(data: dict) -> tuple[str, dict, str]:
    """The refund email's kind, context and subject, from refund.succeeded: a full refund and a
    partial one are worded differently (and each partial refund has its own email)."""
    full = bool(data.get("full"))
    kind = "refunded" if full else f"partial_refund-{data['refund_id']}"
    context = {
        "refund": {
            "amount": data.get("amount", ""),
            "currency": data.get("currency", ""),
            "full": full,
            "refunded_total": data.get("refunded_total", data.get("amount", "")),
        },
        "cause": customer_reason(data.get("reason", ""), default=""),
    }
    subject = (
        "Your order {number} was refunded in full"
        if full
        else f"We refunded {data.get('amount', '')} {data.get('currency', '')} "
        "for your order {number}"
    )
    return kind, context, subject


def email_send(
    *,
    order_id: str,
    kind: str,
    context: dict | None = None,
    attachments: list[Attachment] | None = None,
) -> EmailLog:
    """Send the `kind` email of an order, once, in phases, with no transaction open (the
    notification subscribers, a shell, a test): record the email, then make its due attempt."""
    contact = _contact(order_id)
    return _send(contact, _new_log(contact, kind=kind, context=context, attachments=attachments))


def email_deliver_for(*, order_id: str, kind: str) -> EmailLog | None:
    """Deliver the order's `kind` email if it is due (nothing for one already sent: a
    redelivered event)."""
    log_id = (
        EmailLog.objects.filter(order_id=order_id, kind=kind).values_list("pk", flat=True).first()
    )
    return None if log_id is None else email_deliver(log_id=log_id)


def _is_due(log: EmailLog, now: datetime) -> bool:
    if log.status == EmailLog.Status.QUEUED:
        return True
    if log.status == EmailLog.Status.PENDING:
        return log.next_attempt_at is not None and log.next_attempt_at <= now
    if log.status == EmailLog.Status.SENDING:  # cut off? only once the lease is over
        return log.updated_at <= now - timedelta(seconds=settings.EMAIL_SEND_LEASE_SECONDS)
    return False


def due_email_ids(*, now: datetime | None = None, limit: int = 100) -> list[int]:
    """What the beat task sends: pending emails whose retry (or resend) is due, and emails whose
    first attempt never started or was cut off (queued or sending for longer than the lease)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.EMAIL_SEND_LEASE_SECONDS)
    return list(
        EmailLog.objects.filter(
            Q(status=EmailLog.Status.PENDING, next_attempt_at__lte=now)
            | Q(status__in=(EmailLog.Status.QUEUED, EmailLog.Status.SENDING), updated_at__lte=stale)
        )
        .order_by("updated_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def email_retry(*, log_id: int) -> EmailLog | None:
    """The due attempt of an email (a retry, a requested resend, or resuming a cut-off send);
    None if there is no such email. Same as `email_deliver` (kept for the task's name)."""
    return email_deliver(log_id=log_id)


@transaction.atomic
def email_resend_request(*, log_id: int, requested_by: str) -> EmailLog:
    """Ask for one more, forced attempt at an email (admin "resend"): the same log, a new
    attempt with its own Message-ID, made by `notifications.send_email` right after commit (or
    the next beat run). An email still queued or being sent is left alone."""
    log = EmailLog.objects.select_for_update().get(pk=log_id)
    if log.status in (EmailLog.Status.QUEUED, EmailLog.Status.SENDING):
        logger.info("order %s: %s email is %s: no resend", log.order_id, log.kind, log.status)
        return log
    log.status = EmailLog.Status.PENDING
    log.next_attempt_at = timezone.now()
    log.resend_requested_by = requested_by[:150] or "admin"
    log.save(update_fields=["status", "next_attempt_at", "resend_requested_by", "updated_at"])
    logger.info("order %s: resend of %s requested by %s", log.order_id, log.kind, requested_by)
    return log


def message_id_for(log: EmailLog, *, resend: int = 0) -> str:
    """The Message-ID header of an order's `kind` email: the same on every retry of it; a
    resend (the customer gets a second email on purpose) has its own."""
    tag = f"{log.kind}.resend-{resend}" if resend else log.kind
    return f"<{tag}.{log.order_id}@{settings.EMAIL_MESSAGE_ID_DOMAIN}>"


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(
        seconds=backoff_seconds(
            attempts, base=settings.EMAIL_RETRY_BASE_SECONDS, cap=settings.EMAIL_RETRY_MAX_SECONDS
        )
    )


def _provider(connection: Any) -> str:
    return getattr(connection, "esp_name", None) or type(connection).__module__.rsplit(".", 1)[-1]


def _money(amount: Any, currency: str) -> str:
    return f"{amount} {currency}".strip() if amount not in (None, "") else ""


def _shipping_money(amount: Any, currency: str) -> str:
    """A shipping fee of zero reads "Free", as the cart and the checkout said it."""
    if amount not in (None, "") and Decimal(str(amount)) == 0:
        return "Free"
    return _money(amount, currency)


def email_totals(contact: OrderContact) -> list[tuple[str, str]]:
    """The order's totals as the emails show them (label, amount with currency), the way the
    shop showed them (VAT included or added): from order.placed, else from the invoice."""
    totals = contact.summary.get("totals") or contact.invoice.get("totals") or {}
    pricing = contact.summary.get("pricing") or contact.invoice.get("totals") or {}
    currency = totals.get("currency") or contact.summary.get("currency") or ""
    currency = currency or contact.invoice.get("currency", "")
    if not totals.get("total"):
        return []
    tax_name = pricing.get("tax_name") or "VAT"
    rate = pricing.get("tax_rate")
    percent = f" {(Decimal(str(rate)) * 100).normalize():f} %" if rate not in (None, "") else ""
    if pricing.get("prices_include_tax") and pricing.get("goods_shown") not in (None, ""):
        return [
            (f"Items (incl. {tax_name})", _money(pricing["goods_shown"], currency)),
            (
                f"Shipping (incl. {tax_name})",
                _shipping_money(pricing.get("shipping_shown"), currency),
            ),
            ("Total", _money(totals["total"], currency)),
            (f"Included {tax_name}{percent}", _money(totals.get("tax"), currency)),
        ]
    return [
        ("Items", _money(totals.get("subtotal"), currency)),
        ("Shipping", _shipping_money(totals.get("shipping"), currency)),
        (f"{tax_name}{percent}", _money(totals.get("tax"), currency)),
        ("Total", _money(totals["total"], currency)),
    ]


def _render(log: EmailLog, contact: OrderContact) -> EmailMultiAlternatives:
    """The email as the customer gets it (attachments read from storage: call with no
    transaction open); the Message-ID header is set by the caller."""
    spec = KINDS[base_kind(log.kind)]
    ctx = {
        "shop_name": settings.SHOP_NAME,
        "brand_color": settings.SHOP_BRAND_COLOR,
        "site_url": settings.SITE_URL,
        "contact": contact,
        "order_number": contact.order_number,
        "order_url": contact.order_url,
        "subject": log.subject,
        "summary": contact.summary,
        "invoice_copy": contact.invoice,
        "currency": contact.summary.get("currency") or contact.invoice.get("currency", ""),
        "attachment_names": [item["filename"] for item in log.attachments],
        "totals_rows": email_totals(contact),
        **log.context,
    }
    message = EmailMultiAlternatives(
        subject=log.subject,
        body=render_to_string(f"notifications/email/{spec.template}.txt", ctx),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[contact.email],
        headers={
            "X-ChargeFlow-Order": contact.order_number,
            "X-ChargeFlow-Kind": log.kind,
        },
    )
    message.attach_alternative(
        render_to_string(f"notifications/email/{spec.template}.html", ctx), "text/html"
    )
    message.tags = [base_kind(log.kind)]  # anymail: the provider's own reports can group by kind
    message.metadata = {"order_id": str(log.order_id), "kind": log.kind}
    for item in log.attachments:
        attachment = Attachment(**item)
        with default_storage.open(attachment.storage_path, "rb") as fh:
            message.attach(attachment.filename, fh.read(), attachment.mimetype)
    return message


def email_deliver(*, log_id: int) -> EmailLog | None:
    """Make the email's due attempt, if it has one, in phases (module docstring): render, commit
    the attempt as `sending`, send with no transaction open, record the answer. Returns the log
    (as it is when nothing is due, e.g. already sent), None for an unknown id.

    A template or storage error raises (a bug, not a retry: the delivery fails visibly)."""
    log = EmailLog.objects.filter(pk=log_id).first()
    if log is None or not _is_due(log, timezone.now()):
        return log
    return _deliver(log, OrderContact.objects.get(order_id=log.order_id))


def _deliver(log: EmailLog, contact: OrderContact) -> EmailLog:
    """`email_deliver` for a log and its contact already read (what `email_send` just wrote)."""
    if not _is_due(log, timezone.now()):
        return log
    message = _render(log, contact)
    connection = get_connection()
    started = _attempt_begin(log_id=log.pk, contact=contact, provider=_provider(connection))
    if started is None:  # another worker took it meanwhile
        return EmailLog.objects.get(pk=log.pk)
    return _send_attempt(message, connection, started)


def _send_attempt(message: EmailMultiAlternatives, connection: Any, attempt: EmailAttempt):
    """Phases 3 and 4: send the rendered email as the committed `sending` attempt, with no
    transaction open, then record the answer."""
    message.extra_headers["Message-ID"] = attempt.header_message_id
    message.connection = connection
    try:
        message.send(fail_silently=False)
    except SEND_ERRORS as exc:
        return _attempt_failed(
            attempt=attempt,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            refused=isinstance(exc, AnymailRecipientsRefused),
        )
    anymail_status = getattr(message, "anymail_status", None)
    provider_id = (anymail_status and anymail_status.message_id) or attempt.header_message_id
    return _attempt_sent(attempt=attempt, message_id=str(provider_id))


# What `_attempt_begin` changes on the log (and `updated_at`: the lease of a `sending` attempt).
_BEGIN_FIELDS = (
    "attempts",
    "status",
    "provider",
    "recipient",
    "resend_requested_by",
    "next_attempt_at",
    "updated_at",
)


def _attempt_begin(*, log_id: int, contact: OrderContact, provider: str) -> EmailAttempt | None:
    """Phase 2: commit the attempt as `sending` (a new one, or the cut-off one resumed as it
    is), with its Message-ID, before anything is sent. None if nothing is due any more. The
    attempt returned carries its log as it was committed (`.log`)."""
    with transaction.atomic(durable=True):
        log = EmailLog.objects.select_for_update().get(pk=log_id)
        if not _is_due(log, timezone.now()):
            return None
        if log.status == EmailLog.Status.SENDING:
            attempt = log.attempt_rows.filter(status=EmailAttempt.Status.SENDING).last()
            if attempt is not None:
                logger.warning(
                    "order %s: %s email attempt %s was cut off; sending it again as %s",
                    log.order_id,
                    log.kind,
                    attempt.number,
                    attempt.header_message_id,
                )
                log.save(update_fields=["updated_at"])  # a new lease
                return attempt
        forced = bool(log.resend_requested_by)
        resend = log.attempt_rows.filter(forced=True).count() + 1 if forced else 0
        log.attempts += 1
        attempt = EmailAttempt.objects.create(
            log=log,
            number=log.attempts,
            status=EmailAttempt.Status.SENDING,
            forced=forced,
            requested_by=log.resend_requested_by,
            provider=provider,
            header_message_id=message_id_for(log, resend=resend),
        )
        log.status = EmailLog.Status.SENDING
        log.provider = provider
        log.recipient = contact.email
        log.resend_requested_by = ""
        log.next_attempt_at = None
        log.save(update_fields=_BEGIN_FIELDS)
    return attempt


def _locked_sending(attempt: EmailAttempt, **record: Any) -> EmailLog | None:
    """Lock the attempt's log, then record `record` on the attempt if it is still `sending`
    (the log first, as every phase does: no lock-order inversion). The locked log, or None
    when another worker recorded the attempt first. The attempt's other fields (number,
    forced, requested_by, provider) never change after it is created: the caller's copy is
    used as it is."""
    log = EmailLog.objects.select_for_update().get(pk=attempt.log_id)
    recorded = EmailAttempt.objects.filter(
        pk=attempt.pk, status=EmailAttempt.Status.SENDING
    ).update(**record)
    if not recorded:
        return None
    for name, value in record.items():
        setattr(attempt, name, value)
    return log


def _attempt_sent(*, attempt: EmailAttempt, message_id: str) -> EmailLog:
    """Phase 4 after a send the provider accepted: `sent`, and `email.sent` for the timeline.
    The log is locked first (its UPDATE), as in every phase; if the attempt is no longer
    `sending` (another worker recorded it first), nothing is written."""
    log = attempt.log  # as `_attempt_begin` (or `_send`) committed it
    sent = {
        "message_id": message_id,
        "status": EmailLog.Status.SENT,
        "error": "",
        "next_attempt_at": None,
        "sent_at": timezone.now(),
    }
    with transaction.atomic(durable=True):
        EmailLog.objects.filter(pk=log.pk).update(**sent, updated_at=sent["sent_at"])
        recorded = EmailAttempt.objects.filter(
            pk=attempt.pk, status=EmailAttempt.Status.SENDING
        ).update(status=EmailAttempt.Status.SENT, message_id=message_id)
        if not recorded:
            transaction.set_rollback(True)
        else:
            publish(
                "email.sent",
                log.order_id,
                {
                    "order_id": str(log.order_id),
                    "kind": base_kind(log.kind),
                    "email": log.kind,
                    "recipient": log.recipient,
                    "attempt": attempt.number,
                    "resend": attempt.forced,
                    "requested_by": attempt.requested_by,
                },
            )
    if not recorded:
        return EmailLog.objects.get(pk=log.pk)
    for name, value in sent.items():
        setattr(log, name, value)
    log.updated_at = sent["sent_at"]
    attempt.status, attempt.message_id = EmailAttempt.Status.SENT, message_id
    metrics.EMAIL_SENDS.labels(log.kind, "sent").inc()
    logger.info(
        "order %s: %s email sent (attempt %s%s, %s %s)",  # no address: PII stays out of logs
        log.order_id,
        log.kind,
        attempt.number,
        ", forced resend" if attempt.forced else "",
        attempt.provider,
        attempt.message_id,
    )
    return log


def _attempt_failed(*, attempt: EmailAttempt, error: str, refused: bool) -> EmailLog:
    """Phase 4 after a failed send: the attempt `failed`; the log `pending` with a backoff, or
    `failed` (a forced resend, every recipient refused, or the last attempt)."""
    with transaction.atomic(durable=True):
        log = _locked_sending(attempt, status=EmailAttempt.Status.FAILED, error=error)
        if log is None:
            return EmailLog.objects.get(pk=attempt.log_id)
        log.error = error
        if attempt.forced or refused or log.attempts >= settings.EMAIL_SEND_MAX_ATTEMPTS:
            log.status = EmailLog.Status.FAILED
            log.next_attempt_at = None
        else:
            log.status = EmailLog.Status.PENDING
            log.next_attempt_at = timezone.now() + _retry_delay(log.attempts)
        log.save()
    metrics.EMAIL_SENDS.labels(log.kind, "failed").inc()
    logger.warning(
        "order %s: %s email attempt %s failed (%s, next %s): %s",  # no address in logs
        log.order_id,
        log.kind,
        attempt.number,
        log.status,
        log.next_attempt_at,
        error,
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
