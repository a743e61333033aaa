"""Writes of the invoicing app: issue invoices and credit notes with gap-free numbers.

Issuing is two steps (docs/invoicing.md):

1. `invoice_issue` (on order.placed) checks the order's totals (fixed by orders at placement,
   invoicing/totals.py), allocates the number from the locked counter and stores the invoice
   and its lines. It commits in milliseconds, so the counter row is never locked for longer
   than that.
2. `invoice_render` (right after, in the same order.placed delivery, a `transactional=False`
   subscriber: no transaction open) renders the PDF (50-350 ms) and stores it (object
   storage may be S3: a remote call) under a name of its content, then records it with its
   SHA-256 and publishes `invoice.issued` (billing charges it) in a short transaction of its own.

Credit notes follow the same two steps (`credit_note.numbered`, then `credit_note.issued`).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from chargeflow.money import quantize
from chargeflow.wording import customer_reason
from invoicing.credits import credit_for, document_context
from invoicing.models import CreditNote, Invoice, InvoiceLine, NumberSequence
from invoicing.pdf import pdf_file, render_pdf
from invoicing.totals import lines_from_snapshot, rate_percent, totals_from_event
from outbox import publish

logger = logging.getLogger(__name__)

INVOICE_SERIES = ""
CREDIT_NOTE_SERIES = "CN-"


class CreditNoteError(ValueError):
    pass


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
    totals: dict[str, Any] | None,
    pricing: dict[str, Any] | None,
) -> Invoice:
    """Number and store the order's invoice (once: a second call returns the first); the PDF and
    `invoice.issued` follow in `invoice_render` (the order.placed subscriber calls both,
    invoicing/handlers.py). Documents the totals the order was placed with (checked: they add
    up), never computes its own."""
    existing = Invoice.objects.filter(order_id=order_id).first()
    if existing:
        return existing
    lines = lines_from_snapshot(items)
    totals = totals_from_event(lines=lines, totals=totals, pricing=pricing)
    now = timezone.now()
    # Everything that can fail runs before the number is taken; the counter is locked from here
    # to the commit, a few milliseconds later.
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
        shipping_zone=totals.shipping_zone,
        tax_name=totals.tax_name,
        tax_rate=totals.tax_rate,
        tax_base=totals.tax_base,
        tax=totals.tax,
        total=totals.total,
        prices_include_tax=totals.prices_include_tax,
        goods_shown=totals.goods_shown,
        shipping_shown=totals.shipping_shown,
    )
    invoice.save()
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            sku=line.sku,
            description=line.name,
            quantity=line.quantity,
            unit_price=line.unit_price,
            line_total=line.line_total,
        )
        for line in lines
    )
    logger.info(
        "invoice %s numbered for order %s: %s %s", invoice.number, order_id, totals.total, currency
    )
    return invoice


def _pdf_store(document, *, template: str, number: str, context: dict) -> tuple[str, str]:
    """Render the document's PDF and store it, with no transaction open (the storage may be S3).

    The name carries the content's SHA-256 (`invoices/<number>-<first 12 hex>.pdf`): storing the
    same bytes again is a no-op, and two renders racing for one document never overwrite each
    other's file (the one recorded first is kept, `_pdf_discard` removes the other). Returns the
    stored name and the digest."""
    content = render_pdf(template, context)
    file, digest = pdf_file(content, f"{number}.pdf")
    path = document.pdf.field.generate_filename(document, f"{number}-{digest[:12]}.pdf")
    if not default_storage.exists(path):
        path = default_storage.save(path, file)
    return path, digest


def _pdf_discard(path: str, *, kept: str) -> None:
    """Another render recorded its file first: remove ours (never the kept one)."""
    if path != kept:
        default_storage.delete(path)


def _amount_or_blank(amount) -> str:
    return "" if amount is None else str(amount)


def invoice_render(*, invoice_id: int, invoice: Invoice | None = None) -> Invoice:
    """Render and store the invoice PDF once, then publish `invoice.issued` (billing charges
    its total). Phases: render and store with no transaction open, then record in a new
    transaction (the invoice row is locked for milliseconds, never during the upload).
    `invoice`: the row as `invoice_issue` just returned it (not read again)."""
    if invoice is None:
        invoice = Invoice.objects.get(pk=invoice_id)
    if invoice.pdf:
        return invoice
    path, digest = _pdf_store(
        invoice,
        template="invoicing/invoice_pdf.html",
        number=invoice.number,
        context=document_context(invoice),
    )
    with transaction.atomic(durable=True):
        recorded = invoice.attach_pdf(path=path, digest=digest)
        if recorded:
            publish(
                "invoice.issued",
                invoice.order_id,
                {
                    "order_id": str(invoice.order_id),
                    "invoice_number": invoice.number,
                    "number": invoice.number,
                    "email": invoice.email,
                    "currency": invoice.currency,
                    "totals": {
                        "subtotal": str(invoice.subtotal),
                        "shipping": str(invoice.shipping),
                        "tax_rate": str(invoice.tax_rate),
                        "tax": str(invoice.tax),
                        "total": str(invoice.total),
                        # Additive: how the shop showed the prices (the email repeats the PDF).
                        "tax_name": invoice.tax_name,
                        "tax_percent": rate_percent(invoice.tax_rate),
                        "prices_include_tax": invoice.prices_include_tax,
                        "goods_shown": _amount_or_blank(invoice.goods_shown),
                        "shipping_shown": _amount_or_blank(invoice.shipping_shown),
                    },
                    "amount": str(invoice.total),
                    "pdf_path": invoice.pdf.name,
                    "pdf_sha256": invoice.pdf_sha256,
                    "issued_at": invoice.issued_at.isoformat(),
                },
            )
    if recorded:
        logger.info("invoice %s issued for order %s", invoice.number, invoice.order_id)
    else:
        invoice = Invoice.objects.get(pk=invoice_id)
        _pdf_discard(path, kept=invoice.pdf.name)
    return invoice


@transaction.atomic
def credit_note_issue(
    *, order_id: str, source: str, reason: str, amount: Decimal | None = None
) -> CreditNote | None:
    """Credit (part of) the order's invoice, once per `source` (the payment failure, a refund
    id); without `amount`, whatever is not credited yet. None if nothing was invoiced.
    Publishes `credit_note.numbered`; the PDF and `credit_note.issued` follow in
    `credit_note_render`."""
    invoice = Invoice.objects.select_for_update().filter(order_id=order_id).first()
    if invoice is None:
        logger.warning("order %s: no invoice to credit (%s)", order_id, reason)
        return None
    existing = invoice.credit_notes.filter(source=source).first()
    if existing:
        return existing
    already = sum((n.amount for n in invoice.credit_notes.all()), Decimal("0"))
    amount = quantize(invoice.total - already if amount is None else amount)
    if amount <= 0 or already + amount > invoice.total:
        raise CreditNoteError(
            f"credit of {amount} on invoice {invoice.number} exceeds what is left "
            f"({invoice.total - already})"
        )
    earlier = list(invoice.credit_notes.all())
    credit = credit_for(invoice=invoice, earlier=earlier, amount=amount)
    now = timezone.now()
    note = CreditNote.objects.create(
        invoice=invoice,
        number=number_allocate(series=CREDIT_NOTE_SERIES, year=now.year),
        source=source,
        reason=reason[:255],
        customer_reason=customer_reason(reason, default="Credit on your invoice.")[:400],
        amount=amount,
        kind=credit.kind,
        lines=credit.lines,
        parts=[part.as_dict() for part in credit.parts],
        net=credit.net,
        tax=credit.tax,
        balance_after=invoice.total - already - amount,
        issued_at=now,
    )
    publish("credit_note.numbered", order_id, {"credit_note_id": note.pk, "number": note.number})
    logger.info(
        "credit note %s (%s) numbered for order %s: %s", note.number, reason, order_id, amount
    )
    return note


def credit_note_render(*, credit_note_id: int) -> CreditNote:
    """Render and store the credit note PDF once, then publish `credit_note.issued`; phases as
    in `invoice_render`."""
    note = CreditNote.objects.select_related("invoice").get(pk=credit_note_id)
    if note.pdf:
        return note
    path, digest = _pdf_store(
        note,
        template="invoicing/credit_note_pdf.html",
        number=note.number,
        context=document_context(note.invoice, note=note),
    )
    with transaction.atomic(durable=True):
        recorded = note.attach_pdf(path=path, digest=digest)
        if recorded:
            invoice = note.invoice
            publish(
                "credit_note.issued",
                invoice.order_id,
                {
                    "order_id": str(invoice.order_id),
                    "number": note.number,
                    "invoice_number": invoice.number,
                    "amount": str(note.amount),
                    "currency": invoice.currency,
                    "reason": note.reason,
                    # Additive: what it credits and its split, for the email that attaches it.
                    "source": note.source,
                    "kind": note.kind,
                    "customer_reason": note.customer_reason,
                    "net": str(note.net),
                    "tax": str(note.tax),
                    "balance_after": str(note.balance_after),
                    "pdf_path": note.pdf.name,
                    "pdf_sha256": note.pdf_sha256,
                },
            )
    if recorded:
        logger.info("credit note %s issued for order %s", note.number, note.invoice.order_id)
    else:
        note = CreditNote.objects.select_related("invoice").get(pk=credit_note_id)
        _pdf_discard(path, kept=note.pdf.name)
    return note
