"""Writes of the invoicing app: issue invoices and credit notes with gap-free numbers."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from chargeflow.money import quantize
from invoicing.models import CreditNote, Invoice, InvoiceLine, NumberSequence
from invoicing.pdf import pdf_file, render_pdf
from invoicing.pricing import calculate_totals
from outbox import publish

logger = logging.getLogger(__name__)

INVOICE_SERIES = ""
CREDIT_NOTE_SERIES = "CN-"


def number_allocate(*, series: str, year: int) -> str:
    """The next number of a series, e.g. 2026-000001 or CN-2026-000001. Must run inside the
    transaction that uses it: the counter row stays locked until commit, and a rollback gives
    the number back, so the series has no gaps and no duplicates."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("number_allocate() must run inside the issuing transaction")
    sequence, _ = NumberSequence.objects.select_for_update().get_or_create(series=series, year=year)
    sequence.last_value += 1
    sequence.save(update_fields=["last_value"])
    return f"{series}{year}-{sequence.last_value:06d}"


@transaction.atomic
def invoice_issue(
    *,
    order_id: str,
    order_number: str,
    email: str,
    currency: str,
    shipping_address: dict[str, str],
    items: list[dict[str, Any]],
) -> Invoice:
    """Issue the order's invoice (once: a second call returns the first) and `invoice.issued`."""
    existing = Invoice.objects.filter(order_id=order_id).first()
    if existing:
        return existing
    totals = calculate_totals(
        line_totals=[Decimal(i["line_total"]) for i in items], country=shipping_address["country"]
    )
    now = timezone.now()
    invoice = Invoice(
        order_id=order_id,
        order_number=order_number,
        number=number_allocate(series=INVOICE_SERIES, year=now.year),
        issued_at=now,
        currency=currency,
        email=email,
        buyer_name=shipping_address["name"],
        billing_address=shipping_address,
        subtotal=totals.subtotal,
        shipping=totals.shipping,
        tax_rate=totals.tax_rate,
        tax=totals.tax,
        total=totals.total,
    )
    invoice.save()
    lines = InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            sku=i["sku"],
            description=i["name"],
            quantity=int(i["quantity"]),
            unit_price=Decimal(i["unit_price"]),
            line_total=Decimal(i["line_total"]),
        )
        for i in items
    )
    content = render_pdf("invoicing/invoice_pdf.html", {"invoice": invoice, "lines": lines})
    file, digest = pdf_file(content, f"{invoice.number}.pdf")
    invoice.pdf.save(file.name, file, save=False)
    invoice.pdf_sha256 = digest
    invoice.save(update_fields=["pdf", "pdf_sha256"])
    publish(
        "invoice.issued",
        order_id,
        {
            "order_id": str(order_id),
            "invoice_number": invoice.number,
            "number": invoice.number,
            "email": email,
            "currency": currency,
            "totals": totals.as_dict(),
            "amount": str(invoice.total),
            "pdf_path": invoice.pdf.name,
            "pdf_sha256": digest,
            "issued_at": now.isoformat(),
        },
    )
    logger.info(
        "invoice %s issued for order %s: %s %s", invoice.number, order_id, invoice.total, currency
    )
    return invoice


@transaction.atomic
def credit_note_issue(
    *, order_id: str, source: str, reason: str, amount: Decimal | None = None
) -> CreditNote | None:
    """Credit (part of) the order's invoice, once per `source`. None if nothing was invoiced."""
    invoice = Invoice.objects.select_for_update().filter(order_id=order_id).first()
    if invoice is None:
        logger.warning("order %s: no invoice to credit (%s)", order_id, reason)
        return None
    existing = invoice.credit_notes.filter(source=source).first()
    if existing:
        return existing
    amount = quantize(invoice.total if amount is None else amount)
    already = sum((n.amount for n in invoice.credit_notes.all()), Decimal("0"))
    if amount <= 0 or already + amount > invoice.total:
        raise ValueError(
            f"credit of {amount} on invoice {invoice.number} exceeds what is left "
            f"({invoice.total - already})"
        )
    now = timezone.now()
    note = CreditNote(
        invoice=invoice,
        number=number_allocate(series=CREDIT_NOTE_SERIES, year=now.year),
        source=source,
        reason=reason,
        amount=amount,
        issued_at=now,
    )
    content = render_pdf("invoicing/credit_note_pdf.html", {"note": note, "invoice": invoice})
    file, digest = pdf_file(content, f"{note.number}.pdf")
    note.pdf.save(file.name, file, save=False)
    note.pdf_sha256 = digest
    note.save()
    publish(
        "credit_note.issued",
        order_id,
        {
            "order_id": str(order_id),
            "number": note.number,
            "invoice_number": invoice.number,
            "amount": str(amount),
            "currency": invoice.currency,
            "reason": reason,
            "pdf_path": note.pdf.name,
        },
    )
    logger.info(
        "credit note %s (%s) issued for order %s: %s", note.number, reason, order_id, amount
    )
    return note
