"""Everything the desk shows about one order, read through each app's selectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.urls import reverse
from django.utils import timezone

import outbox
from billing import selectors as billing
from chargeflow.money import from_minor
from invoicing import selectors as invoicing
from notifications import selectors as notifications
from orders import presenters
from orders import selectors as orders
from orders.services import restocked_quantities
from shipping import selectors as shipping

# Raw fields shown only in the collapsed "Technical" section.
TECHNICAL_ORDER_FIELDS = (
    "id",
    "idempotency_key",
    "request_fingerprint",
    "payment_method",
    "payment_client_secret",
    "invoice_pdf_path",
    "stock_released_at",
    "last_progress_at",
    "stuck_since",
    "updated_at",
)


@dataclass
class Problem:
    """Why an order does not move (or what an operator should look at), in a sentence."""

    what: str
    detail: str = ""
    severity: str = "warning"  # warning | error


@dataclass
class OrderFile:
    order: Any
    payment: Any = None
    refunds: list = field(default_factory=list)
    invoice: Any = None
    credit_notes: list = field(default_factory=list)
    shipment: Any = None
    emails: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    unsent_events: list = field(default_factory=list)
    timeline: list = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    restocked: dict[int, int] = field(default_factory=dict)

    # --- Summary -----------------------------------------------------------------------------

    @property
    def currency(self) -> str:
        return self.order.currency

    @property
    def paid(self) -> Decimal | None:
        payment = self.payment
        if payment is None or payment.amount_minor is None:
            return None
        if payment.status in ("succeeded", "partially_refunded", "refunded"):
            return from_minor(payment.amount_minor)
        return None

    @property
    def refunded(self) -> Decimal:
        if self.payment is not None:
            return from_minor(self.payment.refunded_minor)
        return self.order.refunded_amount

    @property
    def refundable(self) -> Decimal:
        if self.payment is None:
            return Decimal("0.00")
        return from_minor(max(self.payment.refundable_minor, 0))

    @property
    def age(self) -> timedelta:
        return timezone.now() - self.order.created_at

    @property
    def stuck(self) -> bool:
        return self.order.stuck_since is not None

    @property
    def invoice_pdf_url(self) -> str | None:
        if self.invoice is not None and self.invoice.pdf:
            return reverse("api:order-invoice-pdf", kwargs={"order_id": self.order.id})
        return None

    def credit_note_rows(self) -> list[dict]:
        rows = []
        for note in self.credit_notes:
            rows.append(
                {
                    "note": note,
                    "pdf_url": reverse(
                        "api:order-credit-note-pdf",
                        kwargs={"order_id": self.order.id, "number": note.number},
                    )
                    if note.pdf
                    else None,
                }
            )
        return rows

    def shipment_history(self) -> list:
        return [
            (entry, text)
            for entry, text in self.timeline
            if entry.type in ("shipment",) or (entry.detail or {}).get("shipment")
        ]

    def technical(self) -> list[tuple[str, list[tuple[str, Any]]]]:
        sections = [
            (
                "Order",
                [
                    (name, _shown(name, getattr(self.order, name)))
                    for name in TECHNICAL_ORDER_FIELDS
                ],
            ),
        ]
        if self.payment is not None:
            sections.append(
                (
                    "Payment",
                    [
                        (f.name, _shown(f.name, getattr(self.payment, f.attname)))
                        for f in self.payment._meta.fields
                    ],
                )
            )
        if self.shipment is not None:
            sections.append(
                (
                    "Shipment",
                    [
                        (f.name, _shown(f.name, getattr(self.shipment, f.attname)))
                        for f in self.shipment._meta.fields
                    ],
                )
            )
        return sections


SECRET_FIELDS = frozenset({"payment_client_secret"})


def _shown(name: str, value: Any) -> Any:
    """A raw field as the technical section shows it: timestamps to the second (local time),
    secrets as "set", links without their query (a guest link's token)."""
    if name in SECRET_FIELDS:
        return "(set)" if value else None
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    if name.endswith("_url") and isinstance(value, str) and "?" in value:
        return value.split("?", 1)[0] + "?…"
    return value


def load(order_id) -> OrderFile | None:
    order = orders.order_for_desk(order_id=order_id)
    if order is None:
        return None
    payment = billing.payment_for_order(order_id=order.id)
    failures, unsent = outbox.undelivered_of(order.id)
    file = OrderFile(
        order=order,
        payment=payment,
        refunds=list(billing.refunds_of(payment=payment)) if payment else [],
        invoice=invoicing.invoice_for_order(order_id=order.id),
        credit_notes=list(invoicing.credit_notes_of(order_id=order.id)),
        shipment=shipping.shipment_for_order(order_id=order.id),
        emails=list(notifications.emails_of(order_id=order.id)),
        failures=failures,
        unsent_events=unsent,
        timeline=presenters.timeline_rows(order, customer=False),  # the internal causes
        restocked=restocked_quantities(order),
    )
    file.problems = diagnose(file)
    return file


def diagnose(file: OrderFile) -> list[Problem]:
    """What holds the order up, most telling first: failed deliveries (with their error),
    unpublished events, a Stripe call or a partner call in flight, a customer who has to act,
    failed emails."""
    found: list[Problem] = []
    now = timezone.now()
    for failure in file.failures:
        first_line = (failure.last_error or "").strip().splitlines()
        found.append(
            Problem(
                what=f"{failure.subscriber} failed on {failure.event_type} "
                f"({failure.attempts} attempt(s), "
                f"last {timezone.localtime(failure.last_failed_at):%H:%M:%S})",
                detail=first_line[-1] if first_line else "",
                severity="error",
            )
        )
    for event in file.unsent_events:
        age = int((now - event.occurred_at).total_seconds())
        found.append(
            Problem(
                what=f"Event {event.event_type} not published yet ({event.status}, "
                f"{event.attempts} attempt(s), {age} s old)",
                detail=event.last_error,
                severity="error" if event.status == "failing" else "warning",
            )
        )
    payment = file.payment
    if payment is not None:
        if payment.step:
            found.append(
                Problem(
                    what=f"Stripe call in flight: {payment.step} since "
                    f"{timezone.localtime(payment.step_started_at):%H:%M:%S}"
                    if payment.step_started_at
                    else f"Stripe call in flight: {payment.step}",
                    detail=payment.last_error,
                )
            )
        if payment.status == "action_required":
            found.append(
                Problem(what="Waiting for the customer to confirm the payment (3-D Secure).")
            )
        if payment.status == "failed":
            found.append(
                Problem(
                    what=f"Payment failed: {payment.failure_message or payment.failure_code}",
                    severity="error",
                )
            )
        for refund in file.refunds:
            if refund.status == "pending":
                found.append(
                    Problem(
                        what=f"Refund of {from_minor(refund.amount_minor)} "
                        f"{payment.currency} pending at Stripe",
                        detail=refund.last_error,
                    )
                )
    shipment = file.shipment
    if shipment is not None:
        if shipment.status == "failed":
            found.append(
                Problem(what=f"Shipment failed: {shipment.failure_reason}", severity="error")
            )
        elif shipment.status == "creating":
            found.append(
                Problem(
                    what=f"Shipment being created at the partner ({shipment.attempts} attempt(s))",
                    detail=shipment.last_error,
                )
            )
    for email in file.emails:
        if email.status in ("failed", "bounced", "complained"):
            found.append(
                Problem(
                    what=f"Email {email.kind.replace('_', ' ')} "
                    f"{email.get_status_display().lower()}",
                    detail=email.error,
                    severity="error",
                )
            )
    if file.stuck and not found:
        found.append(
            Problem(
                what="No progress and no recorded failure: a message may be lost or in a "
                "dead-letter queue.",
                detail="Retry the stuck step (publishes the order's events again; handled ones are "
                "skipped), or look at the dead-letter queues.",
            )
        )
    return found


def shipment_status_for(file: OrderFile) -> str:
    """The shipment's status as an operator should read it: a cancelled order's shipment that
    never left is "not shipped (order cancelled)", not "pending" forever."""
    order, shipment = file.order, file.shipment
    status = shipment.get_status_display() if shipment else (order.shipment_status or "")
    if order.status in ("cancelled", "refunded") and (
        shipment is None or shipment.status in ("pending", "cancelled")
    ):
        return f"Not shipped (order {order.get_status_display().lower()})"
    return status or "Not created yet"
