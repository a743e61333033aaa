from django.db.models import Q, QuerySet

from invoicing.models import CreditNote, Invoice


def invoice_for_order(*, order_id) -> Invoice | None:
    return Invoice.objects.filter(order_id=order_id).first()


def credit_notes_of(*, order_id) -> QuerySet[CreditNote]:
    return CreditNote.objects.filter(invoice__order_id=order_id).order_by("issued_at", "id")


def order_ids_for_document(*, number: str) -> list:
    """Orders whose invoice or credit note has this number."""
    number = number.strip()
    if not number:
        return []
    return list(
        Invoice.objects.filter(Q(number__iexact=number) | Q(credit_notes__number__iexact=number))
        .values_list("order_id", flat=True)
        .distinct()
    )
