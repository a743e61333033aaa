import io
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from pypdf import PdfReader

from invoicing import services
from invoicing.models import CreditNote, Invoice, IssuedDocumentError, NumberSequence
from invoicing.tests.factories import item, order_placed
from invoicing.totals import TotalsError
from outbox import Event, publish
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db


def issue(payload: dict) -> Invoice:
    invoice = services.invoice_issue(**payload)
    return services.invoice_render(invoice_id=invoice.pk)


def pdf_text(path: str) -> str:
    with default_storage.open(path, "rb") as f:
        reader = PdfReader(io.BytesIO(f.read()))
    # pypdf breaks table cells onto lines of their own: compare with whitespace collapsed.
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def events(kind: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(type=kind).order_by("id"))


def test_issue_numbers_then_renders_and_publishes_invoice_issued():
    # Net prices (a B2B shop): the order's totals as order.placed carries them, documented as is.
    payload = order_placed(country="FR", gross=False)
    assert payload["totals"]["total"] == "1271.96"
    invoice = services.invoice_issue(**payload)
    assert invoice.number.endswith("-000001") and not invoice.pdf
    # No internal invoice.numbered any more: the order.placed subscriber renders right after.
    assert events("invoice.numbered") == []
    assert events("invoice.issued") == []

    invoice = services.invoice_render(invoice_id=invoice.pk)
    (issued,) = events("invoice.issued")
    assert issued.data["totals"] == {
        "subtotal": "1059.97",
        "shipping": "0.00",
        "tax_rate": "0.2000",
        "tax": "211.99",  # 211.994
        "total": "1271.96",
        "tax_name": "VAT",
        "tax_percent": "20",
        "prices_include_tax": False,
        "goods_shown": "1059.97",
        "shipping_shown": "0.00",
    }
    assert issued.data["pdf_path"] == invoice.pdf.name
    assert len(invoice.pdf_sha256) == 64
    # Redelivery changes nothing: same invoice, no second number or event.
    assert services.invoice_issue(**payload).pk == invoice.pk
    services.invoice_render(invoice_id=invoice.pk)
    assert len(events("invoice.issued")) == 1
    assert NumberSequence.objects.get(series="").last_value == 1


def test_pdf_contains_number_lines_and_totals():
    invoice = issue(order_placed(gross=False))
    text = pdf_text(invoice.pdf.name)
    for expected in (
        invoice.number,
        "ChargeFlow",
        "Ada Lovelace",
        "Product LAPTOP-14",
        "999.99 EUR",
        "59.98 EUR",  # 2 x 29.99
        f"Net amount {invoice.subtotal + invoice.shipping} EUR",
        f"Total {invoice.total} EUR",
        "VAT per rate Rate Net VAT Gross 20 % 1059.97",
        "page 1 of 1",
        # Issued before the charge, which may fail: the PDF must not say it was paid.
        "Payment: by card, charged when this invoice is issued; "
        "a failed charge is cancelled by a credit note.",
    ):
        assert expected in text, expected
    assert "Paid" not in text


def test_pdf_with_prices_including_vat_shows_what_was_paid_and_the_vat_breakdown():
    # Gross prices (the consumer-shop default): 1059.97 + 4.90 shipping paid, VAT extracted
    # once on the goods (176.661 -> 176.66) and once on shipping (0.8166 -> 0.82).
    invoice = issue(order_placed(shipping="4.90"))
    assert (invoice.subtotal, invoice.shipping, invoice.tax, invoice.total) == (
        Decimal("883.31"),
        Decimal("4.08"),
        Decimal("177.48"),
        Decimal("1064.87"),
    )
    text = pdf_text(invoice.pdf.name)
    for expected in (
        "Unit price (incl. VAT)",
        "999.99 EUR",
        "Shipping (Standard) 1 4.90 EUR 4.90 EUR 20 %",
        "Total 1064.87 EUR",
        "VAT per rate Rate Net VAT Gross 20 % 887.39 177.48 1064.87",
        "Net amount 887.39 EUR VAT 20 % 177.48 EUR Total 1064.87 EUR",
    ):
        assert expected in text, expected


@pytest.mark.parametrize(
    "change",
    [
        {"totals": None},  # an order.placed from before orders fixed the totals
        {"tax": "177.49"},  # subtotal + shipping + tax != total
        {"goods_shown": "1059.98"},  # not what the lines add up to
        {"shipping_shown": "5.00"},  # gross goods + shipping != total
    ],
)
def test_totals_that_do_not_add_up_are_never_invoiced(change):
    payload = order_placed(shipping="4.90")
    if "totals" in change:
        payload["totals"] = None
    elif "tax" in change:
        payload["totals"]["tax"] = change["tax"]
    else:
        payload["pricing"].update(change)
    with pytest.raises(TotalsError):
        services.invoice_issue(**payload)
    assert not Invoice.objects.exists() and not NumberSequence.objects.exists()


def test_a_long_invoice_has_page_numbers_on_every_page():
    items = [item(f"SKU-{i:03d}", "1.50", 2) for i in range(90)]
    invoice = issue(order_placed(items=items))
    with default_storage.open(invoice.pdf.name, "rb") as f:
        reader = PdfReader(io.BytesIO(f.read()))
    pages = len(reader.pages)
    assert pages >= 2
    for n, page in enumerate(reader.pages, start=1):
        assert f"page {n} of {pages}" in " ".join(page.extract_text().split())
    assert "SKU-089" in pdf_text(invoice.pdf.name)


def test_rollback_gives_the_number_back():
    first = services.invoice_issue(**order_placed())
    with pytest.raises(RuntimeError), transaction.atomic():
        services.invoice_issue(**order_placed())
        raise RuntimeError("crash before commit")
    third = services.invoice_issue(**order_placed())
    n1, n3 = int(first.number[-6:]), int(third.number[-6:])
    assert n3 == n1 + 1


def test_an_issued_invoice_is_immutable():
    invoice = issue(order_placed())
    invoice.total = Decimal("1.00")
    with pytest.raises(IssuedDocumentError):
        invoice.save()
    with pytest.raises(IssuedDocumentError):
        invoice.save(update_fields=["pdf", "pdf_sha256", "pdf_rendered_at"])  # already attached
    with pytest.raises(IssuedDocumentError):
        invoice.lines.first().delete()
    with pytest.raises(IssuedDocumentError):
        Invoice.objects.get(pk=invoice.pk).delete()


def test_credit_notes_have_their_own_series_once_per_source_and_never_exceed_the_invoice():
    payload = order_placed(items=[item("A", "100.00")])
    invoice = issue(payload)
    order_id = payload["order_id"]
    first = services.credit_note_issue(
        order_id=order_id, source="refund:1", reason="Scratched", amount=Decimal("30.00")
    )
    assert first.number.startswith("CN-") and first.number.endswith("-000001")
    again = services.credit_note_issue(
        order_id=order_id, source="refund:1", reason="Scratched", amount=Decimal("30.00")
    )
    assert again.pk == first.pk
    with pytest.raises(services.CreditNoteError):
        services.credit_note_issue(
            order_id=order_id, source="refund:2", reason="x", amount=invoice.total
        )
    rest = services.credit_note_issue(order_id=order_id, source="refund:3", reason="Rest")
    assert rest.amount == invoice.total - Decimal("30.00")
    assert rest.number.endswith("-000002")
    note = services.credit_note_render(credit_note_id=rest.pk)
    text = pdf_text(note.pdf.name)
    assert note.number in text and invoice.number in text and str(rest.amount) in text
    (issued,) = events("credit_note.issued")  # only this one was rendered
    assert issued.data["number"] == rest.number and issued.data["pdf_path"] == note.pdf.name
    assert CreditNote.objects.filter(invoice=invoice).count() == 2


def test_credit_note_without_invoice_is_skipped():
    assert (
        services.credit_note_issue(
            order_id="6b1f8d1e-0000-4000-8000-000000000000", source="payment_failed", reason="x"
        )
        is None
    )


def test_render_phases_two_racing_renders_keep_one_file_and_one_event(monkeypatch):
    """The PDF is stored with no transaction open, then recorded under the row lock. A render
    that stored its file while another recorded first keeps the winner's file, removes its own
    and publishes nothing; the stored bytes always match the recorded SHA-256."""
    import hashlib

    invoice = services.invoice_issue(**order_placed())
    store = services._pdf_store
    race = {}

    def store_while_another_worker_records(document, **kwargs):
        path, digest = store(document, **kwargs)
        if not race:
            race["loser_path"] = path
            race["winner"] = services.invoice_render(invoice_id=document.pk)
        return path, digest

    monkeypatch.setattr(services, "_pdf_store", store_while_another_worker_records)
    result = services.invoice_render(invoice_id=invoice.pk)

    winner = race["winner"]
    assert result.pdf.name == winner.pdf.name
    assert winner.pdf.name.startswith(f"invoices/{invoice.number}-")
    # xhtml2pdf stamps each render (creation date, document id), so two renders usually differ
    # and get two names; byte-identical renders would share one file, which is kept.
    if race["loser_path"] != winner.pdf.name:
        assert not default_storage.exists(race["loser_path"])
    assert default_storage.exists(winner.pdf.name)
    with default_storage.open(winner.pdf.name, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == winner.pdf_sha256
    assert len(events("invoice.issued")) == 1


def _order_placed_envelope(payload: dict) -> dict:
    data = {
        "number": payload["order_number"],
        "email": payload["email"],
        "currency": payload["currency"],
        "shipping_address": payload["shipping_address"],
        "items": payload["items"],
        "totals": payload["totals"],
        "pricing": payload["pricing"],
    }
    with transaction.atomic():
        row = publish("order.placed", payload["order_id"], data)
    return row.as_event().to_envelope()


@pytest.mark.django_db(transaction=True)
def test_order_placed_numbers_renders_and_issues_in_one_delivery_once(monkeypatch):
    from outbox.delivery import deliver

    payload = order_placed()
    envelope = _order_placed_envelope(payload)
    # A first delivery cut off after the number was committed, before the PDF was recorded.
    with monkeypatch.context() as patched:
        patched.setattr(services, "invoice_render", _raise_crash)
        with pytest.raises(RuntimeError):
            deliver(subscriber_name="invoicing.on_order_placed", envelope=envelope)
    invoice = Invoice.objects.get(order_id=payload["order_id"])
    assert not invoice.pdf and events("invoice.issued") == []
    # The redelivery resumes: same number, the PDF, invoice.issued; a later duplicate: nothing.
    assert deliver(subscriber_name="invoicing.on_order_placed", envelope=envelope)
    assert not deliver(subscriber_name="invoicing.on_order_placed", envelope=envelope)
    invoice.refresh_from_db()
    assert invoice.pdf and Invoice.objects.filter(order_id=payload["order_id"]).count() == 1
    (issued,) = events("invoice.issued")
    assert issued.data["number"] == invoice.number
    assert events("invoice.numbered") == []
    assert NumberSequence.objects.get(series="").last_value == 1


def test_a_duplicate_numbering_at_the_same_moment_uses_the_first_invoice(monkeypatch):
    """Two deliveries of one order.placed at once: the second one's INSERT meets the unique
    order id (its number rolled back); the handler carries on with the first invoice."""
    from invoicing import handlers

    payload = order_placed()
    first = services.invoice_issue(**payload)
    real_issue, calls = services.invoice_issue, []

    def racing_issue(**kwargs):
        calls.append(kwargs["order_id"])
        if len(calls) == 1:
            raise IntegrityError("duplicate key value violates unique constraint (order_id)")
        return real_issue(**kwargs)

    monkeypatch.setattr(services, "invoice_issue", racing_issue)
    envelope = _order_placed_envelope(payload)
    handlers.on_order_placed(Event.from_envelope(envelope))
    first.refresh_from_db()
    assert len(calls) == 2 and first.pdf
    assert Invoice.objects.filter(order_id=payload["order_id"]).count() == 1


def _raise_crash(**kwargs):
    raise RuntimeError("worker died while rendering")
