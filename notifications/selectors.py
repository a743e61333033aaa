"""Reads of notifications."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from notifications.models import EmailAttempt, EmailLog, OrderContact

FAILED_STATUSES = (EmailLog.Status.FAILED, EmailLog.Status.BOUNCED, EmailLog.Status.COMPLAINED)


def emails_of(*, order_id) -> QuerySet[EmailLog]:
    """An order's emails, oldest first, each with its attempts."""
    return (
        EmailLog.objects.filter(order_id=order_id)
        .prefetch_related(
            Prefetch("attempt_rows", queryset=EmailAttempt.objects.order_by("number"))
        )
        .order_by("created_at", "id")
    )


def email_counts_by_status() -> dict[str, int]:
    rows = EmailLog.objects.values("status").annotate(n=Count("pk")).order_by()
    return {row["status"]: row["n"] for row in rows}


def email_failures() -> QuerySet[EmailLog]:
    return EmailLog.objects.filter(status__in=FAILED_STATUSES).order_by("-updated_at")


def order_ids_for_recipient(*, reference: str) -> list:
    """Orders an email address or a provider's message id points at."""
    reference = reference.strip()
    if not reference:
        return []
    ids = set(
        EmailLog.objects.filter(
            Q(recipient__iexact=reference) | Q(message_id=reference)
        ).values_list("order_id", flat=True)[:200]
    )
    ids |= set(
        OrderContact.objects.filter(email__iexact=reference).values_list("order_id", flat=True)[
            :200
        ]
    )
    return list(ids)
