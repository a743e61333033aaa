"""Invoice and credit note PDFs, read back as an accountant would: their text (pypdf) and where
each piece of text is on the page (no two text boxes overlap, long texts wrap inside the page).

Page 1 of every document is also rendered to PNG (pdftoppm) under test-artifacts/documents/ to
be looked at."""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from pypdf import PdfReader
from reportlab.pdfbase.pdfmetrics import stringWidth

from conftest import ARTIFACTS
from invoicing import services
from invoicing.credits import credit_for
from invoicing.models import CreditNote, Invoice
from invoicing.tests.factories import item, order_placed

pytestmark = pytest.mark.django_db


LONG_NAME = "Ergonomic Laptop Stand with Adjustable Height, Aluminium, Space Grey, for 13-17 inch"
REASON_200 = (
    "You returned the laptop stand because one of its hinges arrived bent; as agreed on the phone "
    "we refund the stand and keep the rest of the order as it is. Thank you for your patience!"
)
assert len(REASON_200) >= 170


@dataclass(frozen=True)
class Box:
    page: int
    text: str
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box) -> bool:
        if self.page != other.page:
            return False
        # A point of tolerance: glyph boxes of neighbouring lines touch, they must not cross.
        return (
            min(self.x1, other.x1) - max(self.x0, other.x0) > 1.0
            and min(self.y1, other.y1) - max(self.y0, other.y0) > 1.0
        )


class TextTracker:
    """Where each shown string lands, from pypdf's operator visitor: the text state (Tm, Td, TL,
    T*, Tf) tracked here, the current transformation matrix from pypdf. (pypdf's own text
    visitor misplaces lines after T* when the leading is not the font size.)"""

    def __init__(self, page: int, fonts: dict):
        self.page, self.fonts, self.boxes = page, fonts, []
        self.line = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]  # the text line matrix
        self.leading, self.size, self.font = 0.0, 10.0, "Helvetica"

    def __call__(self, operator, operands, cm, tm):
        op = operator.decode() if isinstance(operator, bytes) else operator
        if op == "BT":
            self.line = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
        elif op == "Tm":
            self.line = [float(v) for v in operands]
        elif op == "TL":
            self.leading = float(operands[0])
        elif op in ("Td", "TD"):
            self.line[4] += float(operands[0])
            self.line[5] += float(operands[1])
            if op == "TD":
                self.leading = -float(operands[1])
        elif op == "T*":
            self.line[5] -= self.leading
        elif op == "Tf":
            base = str(self.fonts.get(operands[0], {}).get("/BaseFont", ""))
            self.font = "Helvetica-Bold" if "Bold" in base else "Helvetica"
            self.size = float(operands[1])
        elif op in ("Tj", "TJ"):
            parts = operands[0] if op == "TJ" else [operands[0]]
            text = "".join(
                p.decode("cp1252", "replace") if isinstance(p, bytes) else p
                for p in parts
                if isinstance(p, (bytes, str))
            )
            if text.strip():
                x = self.line[4] * cm[0] + self.line[5] * cm[2] + cm[4]
                y = self.line[4] * cm[1] + self.line[5] * cm[3] + cm[5]
                lead = len(text) - len(text.lstrip())
                x += stringWidth(text[:lead], self.font, self.size)
                width = stringWidth(text.strip(), self.font, self.size)
                self.boxes.append(
                    Box(
                        self.page,
                        text.strip(),
                        x,
                        y - 0.2 * self.size,
                        x + width,
                        y + 0.75 * self.size,
                    )
                )


def read_pdf(path: str) -> tuple[str, list[Box], float]:
    """The PDF's text (whitespace collapsed), its text boxes and the page width."""
    with default_storage.open(path, "rb") as fh:
        reader = PdfReader(io.BytesIO(fh.read()))
    boxes: list[Box] = []
    texts = []
    page_width = 0.0
    for number, page in enumerate(reader.pages):
        fonts = {name: font.get_object() for name, font in page["/Resources"]["/Font"].items()}
        tracker = TextTracker(number, fonts)
        texts.append(page.extract_text(visitor_operand_before=tracker))
        boxes += tracker.boxes
        page_width = float(page.mediabox.width)
    return " ".join(" ".join(texts).split()), boxes, page_width


def assert_no_overlap(boxes: list[Box]) -> None:
    clashes = [
        (a.text, b.text) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)
    ]
    assert not clashes, f"text printed over other text: {clashes[:5]}"


def assert_inside(boxes: list[Box], width: float) -> None:
    outside = [b.text for b in boxes if b.x0 < 20 or b.x1 > width - 20]
    assert not outside, f"text outside the page's margins: {outside[:5]}"


def lines_of(boxes: list[Box], words: str) -> int:
    """On how many lines the text `words` is printed (boxes holding a piece of it)."""
    whole = " ".join(words.split())
    return len({round(b.y0) for b in boxes if len(b.text) > 3 and b.text in whole})


def png_of(path: str, name: str):
    """Page 1 as PNG (60 dpi) in test-artifacts/documents/, to be looked at."""
    if not shutil.which("pdftoppm"):
        return None
    out = ARTIFACTS / "documents"
    out.mkdir(parents=True, exist_ok=True)
    with default_storage.open(path, "rb") as fh:
        (out / f"{name}.pdf").write_bytes(fh.read())
    subprocess.run(
        [
            *("pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile"),
            *(str(out / f"{name}.pdf"), str(out / name)),
        ],
        check=True,
        timeout=60,
    )
    return out / f"{name}.png"


def issued_invoice(*, gross: bool = False) -> Invoice:
    """A German order (19 % VAT, 4.90 shipping), prices net unless `gross`."""
    placed = order_placed(
        country="DE",
        items=[item("STAND-01", "39.90", 1, name=LONG_NAME), item("MOUSE-01", "29.99", 3)],
        rate="0.1900",
        shipping="4.90",
        gross=gross,
    )
    invoice = services.invoice_issue(**placed)
    return services.invoice_render(invoice_id=invoice.pk)


def render(note: CreditNote) -> CreditNote:
    return services.credit_note_render(credit_note_id=note.pk)


def test_invoice_reads_as_an_accountant_expects():
    invoice = issued_invoice()
    png_of(invoice.pdf.name, "invoice")
    text, boxes, width = read_pdf(invoice.pdf.name)
    for expected in (
        "Invoice",
        f"Number {invoice.number}",
        f"Order {invoice.order_number}",
        "ChargeFlow",  # the seller
        "VAT ID",
        "Ada Lovelace",  # the buyer (the shared test address)
        "Description Qty Unit price",
        "3 29.99 EUR 89.97 EUR 19 %",
        "VAT per rate",
        f"19 % {invoice.tax_base} {invoice.tax}",
        f"Total {invoice.total} EUR",
    ):
        assert expected in text, expected
    assert_no_overlap(boxes)
    assert_inside(boxes, width)
    assert lines_of(boxes, "Ergonomic Laptop Stand with Adjustable Height, Aluminium") <= 3


def test_cancellation_credit_note_credits_every_line_at_the_invoice_rates():
    invoice = issued_invoice()
    note = services.credit_note_issue(
        order_id=str(invoice.order_id),
        source="payment_failed",
        reason="Payment failed: Your card was declined.",
    )
    note = render(note)
    assert note.kind == "invoice"
    assert (note.net, note.tax, note.amount) == (
        invoice.subtotal + invoice.shipping,
        invoice.tax,
        invoice.total,
    )
    assert note.balance_after == Decimal("0.00")
    png_of(note.pdf.name, "credit-note-cancellation")
    text, boxes, width = read_pdf(note.pdf.name)
    for expected in (
        "Credit note",
        f"Number {note.number}",
        f"Corrects invoice {invoice.number} Invoice date",
        "Reason Your bank declined the payment.",  # the customer's words, not the bank's error
        "3 29.99 EUR 89.97 EUR 19 %",
        f"19 % {invoice.tax_base} {invoice.tax}",
        f"Total credited {invoice.total} EUR",
        "Balance after this credit note 0.00 EUR",
    ):
        assert expected in text, expected
    assert "Payment failed" not in text
    assert_no_overlap(boxes)
    assert_inside(boxes, width)


@pytest.mark.parametrize("gross", [False, True], ids=["net-prices", "gross-prices"])
def test_partial_then_full_refund_credit_notes_add_up_to_the_invoice(gross):
    invoice = issued_invoice(gross=gross)
    order_id = str(invoice.order_id)
    partial = render(
        services.credit_note_issue(
            order_id=order_id, source="refund:1", reason=REASON_200, amount=Decimal("30.00")
        )
    )
    assert partial.kind == "amount"
    assert partial.net == Decimal("25.21")  # 30.00 / 1.19 = 25.2101 -> 25.21
    assert partial.tax == Decimal("4.79")
    assert partial.balance_after == invoice.total - Decimal("30.00")
    png_of(partial.pdf.name, f"credit-note-partial-refund{'-gross' if gross else ''}")
    text, boxes, width = read_pdf(partial.pdf.name)
    for expected in (
        # The line in the terms the shop showed its prices (net, or VAT included).
        "Partial refund 1 30.00 EUR 30.00 EUR 19 %"
        if gross
        else "Partial refund 1 25.21 EUR 25.21 EUR 19 %",
        "19 % 25.21 4.79 30.00",
        "Total credited 30.00 EUR",
        f"Invoice {invoice.number} total {invoice.total} EUR",
        "Credited before 0.00 EUR",
        "This credit note -30.00 EUR",
        f"Balance after this credit note {partial.balance_after} EUR",
        " ".join(REASON_200.split()),
    ):
        assert expected in text, expected
    assert_no_overlap(boxes)
    assert_inside(boxes, width)
    # The 200-character reason wraps inside its box: a few lines, not a word per line.
    assert 1 < lines_of(boxes, REASON_200) <= 3

    rest = render(
        services.credit_note_issue(
            order_id=order_id,
            source="refund:2",
            reason="Shipping failed: Address is undeliverable: postal code 00000",
        )
    )
    assert rest.kind == "balance"
    assert rest.amount == invoice.total - Decimal("30.00")
    assert rest.net + partial.net == invoice.subtotal + invoice.shipping
    assert rest.tax + partial.tax == invoice.tax
    assert rest.balance_after == Decimal("0.00")
    text, boxes, width = read_pdf(rest.pdf.name)
    assert "Our shipping partner could not deliver to the address" in text
    assert "postal code" not in text and "undeliverable" not in text
    assert "Credited before 30.00 EUR" in text
    assert_no_overlap(boxes)
    assert_inside(boxes, width)


def test_full_refund_credit_note():
    invoice = issued_invoice()
    note = render(
        services.credit_note_issue(
            order_id=str(invoice.order_id),
            source="refund:9",
            reason="Shipping failed: Address is undeliverable: postal code 00000",
        )
    )
    assert note.kind == "invoice"
    png_of(note.pdf.name, "credit-note-full-refund")
    text, boxes, width = read_pdf(note.pdf.name)
    assert "Our shipping partner could not deliver to the address given with the order." in text
    assert f"Total credited {invoice.total} EUR" in text
    assert_no_overlap(boxes)
    assert_inside(boxes, width)


def test_an_amount_is_split_over_taxed_and_untaxed_parts():
    invoice = issued_invoice()
    # Shipping not taxed: a second, 0 % part (as with a TaxRate that excludes shipping).
    invoice.tax_base = invoice.subtotal
    invoice.shipping = Decimal("10.00")
    invoice.tax = Decimal("30.01")
    invoice.total = invoice.subtotal + Decimal("10.00") + Decimal("30.01")
    credit = credit_for(invoice=invoice, earlier=[], amount=Decimal("50.00"))
    assert [p.rate for p in credit.parts] == [invoice.tax_rate, Decimal("0")]
    assert sum(p.gross for p in credit.parts) == Decimal("50.00")
