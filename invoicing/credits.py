"""What a credit note credits, and its net/VAT split at the invoice's rates (docs/invoicing.md).

An invoice taxes its lines (and shipping, where the country taxes it) at one rate; shipping that
is not taxed is a second, 0 % part. A credit note takes from these parts:

- the whole invoice (nothing credited before): it repeats the invoice's lines and shipping, and
  credits exactly the invoice's net amounts and VAT;
- what is left after earlier credit notes (a full refund after a partial one): the rest of every
  part, exactly, so that all the credit notes of an invoice add up to it to the cent;
- an amount (a partial refund): split over the parts in proportion to what is left of them,
  and within a part into net and VAT at its rate, half-up to the cent (VAT = gross - net).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django_countries import countries

from chargeflow.money import quantize

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Part:
    rate: Decimal
    net: Decimal
    tax: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax

    def as_dict(self) -> dict[str, str]:
        return {"rate": str(self.rate), "net": str(self.net), "tax": str(self.tax)}


@dataclass(frozen=True)
class Credit:
    kind: str  # "invoice" (every line and shipping), "balance" (what was left), "amount"
    lines: list[dict[str, str]]
    parts: list[Part]

    @property
    def net(self) -> Decimal:
        return sum((p.net for p in self.parts), ZERO)

    @property
    def tax(self) -> Decimal:
        return sum((p.tax for p in self.parts), ZERO)


def percent(rate: Decimal | str) -> str:
    """0.1900 -> '19', 0.0750 -> '7.5'."""
    return f"{(Decimal(str(rate)) * 100).normalize():f}"


def invoice_parts(invoice) -> list[Part]:
    """The invoice's amounts per VAT rate: the taxed base at its rate, and untaxed shipping."""
    parts = [Part(rate=invoice.tax_rate, net=invoice.tax_base, tax=invoice.tax)]
    untaxed = invoice.subtotal + invoice.shipping - invoice.tax_base
    if untaxed > 0:
        parts.append(Part(rate=Decimal("0"), net=untaxed, tax=ZERO))
    return parts


def _credited(notes: Iterable) -> dict[Decimal, Part]:
    """What earlier credit notes credited, per rate (notes from before this split was recorded
    are read as taxed at the invoice's rate)."""
    done: dict[Decimal, Part] = {}
    for note in notes:
        for item in note.parts or []:
            rate = Decimal(item["rate"])
            prev = done.get(rate, Part(rate, ZERO, ZERO))
            done[rate] = Part(
                rate, prev.net + Decimal(item["net"]), prev.tax + Decimal(item["tax"])
            )
    return done


def credit_for(*, invoice, earlier: list, amount: Decimal) -> Credit:
    """What a credit of `amount` (gross) on `invoice` credits, after the `earlier` notes."""
    done = _credited(earlier)
    left = []
    for part in invoice_parts(invoice):
        prev = done.get(part.rate, Part(part.rate, ZERO, ZERO))
        left.append(Part(part.rate, part.net - prev.net, part.tax - prev.tax))
    left_total = sum((p.gross for p in left), ZERO)
    gross_prices = bool(getattr(invoice, "prices_include_tax", False))
    if not earlier and amount == invoice.total:
        rate = str(invoice.tax_rate)
        lines = [
            {
                "description": line.description,
                "sku": line.sku,
                "quantity": str(line.quantity),
                "unit_price": str(line.unit_price),
                "amount": str(line.line_total),
                "rate": rate,
            }
            for line in invoice.lines.all()
        ]
        if invoice.shipping:
            shipping = getattr(invoice, "shipping_shown", None) if gross_prices else None
            shipping_rate = rate if len(left) == 1 else "0"
            lines.append(_line("Shipping", shipping or invoice.shipping, shipping_rate))
        return Credit(kind="invoice", lines=lines, parts=left)
    if amount == left_total:
        kind, label, parts = "balance", f"Remaining balance of invoice {invoice.number}", left
    else:
        kind, label, parts = "amount", "Partial refund", []
        rest = amount
        live = [p for p in left if p.gross > 0]
        for index, part in enumerate(live):
            last = index == len(live) - 1
            gross = rest if last else quantize(amount * part.gross / left_total)
            net = quantize(gross / (1 + part.rate))
            parts.append(Part(part.rate, net, gross - net))
            rest -= gross
    parts = [p for p in parts if p.gross]
    lines = [
        _line(
            label if len(parts) == 1 else f"{label} ({percent(p.rate)} % VAT)",
            p.gross if gross_prices else p.net,
            str(p.rate),
        )
        for p in parts
    ]
    return Credit(kind=kind, lines=lines, parts=parts)


def _line(description: str, amount: Decimal, rate: str) -> dict[str, str]:
    return {
        "description": description,
        "sku": "",
        "quantity": "1",
        "unit_price": str(amount),
        "amount": str(amount),
        "rate": rate,
    }


# --- The one layout of both documents (invoicing/templates/invoicing/_document.html) ----------


def _rows_per_rate(parts: list[Part]) -> list[dict[str, str]]:
    return [
        {
            "percent": percent(p.rate),
            "net": str(p.net),
            "tax": str(p.tax),
            "gross": str(p.gross),
        }
        for p in parts
    ]


def document_context(invoice, *, note=None) -> dict:
    """What the invoice or credit note PDF shows, on one layout: seller, buyer, numbers and
    dates, lines (quantity, unit price, amount, VAT rate), VAT per rate, totals."""
    return {**_document_context(invoice, note=note), "buyer_country": _country(invoice)}


def _country(invoice) -> str:
    code = (invoice.billing_address or {}).get("country", "")
    return countries.name(code) or code


def _document_context(invoice, *, note=None) -> dict:
    gross_prices = bool(getattr(invoice, "prices_include_tax", False))
    tax_name = invoice.tax_name or "VAT"
    currency = invoice.currency
    if note is None:
        rate = percent(invoice.tax_rate)
        parts = invoice_parts(invoice)
        lines = [
            {
                "description": line.description,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "amount": line.line_total,
                "percent": rate,
            }
            for line in invoice.lines.all()
        ]
        if invoice.shipping or invoice.shipping_zone:
            shipping = getattr(invoice, "shipping_shown", None) if gross_prices else None
            shipping = shipping if shipping is not None else invoice.shipping
            zone = f" ({invoice.shipping_zone})" if invoice.shipping_zone else ""
            lines.append(
                {
                    "description": f"Shipping{zone}",
                    "sku": "",
                    "quantity": 1,
                    "unit_price": shipping,
                    "amount": shipping,
                    "percent": rate if len(parts) == 1 else "0",
                }
            )
        net = sum((p.net for p in parts), ZERO)
        totals = [
            ("Net amount", net, False),
            (f"{tax_name} {rate} %" if len(parts) == 1 else tax_name, invoice.tax, False),
            ("Total", invoice.total, True),
        ]
        return {
            "document": "Invoice",
            "number": invoice.number,
            "date": invoice.issued_at,
            "invoice": invoice,
            "note": None,
            "gross_prices": gross_prices,
            "tax_name": tax_name,
            "currency": currency,
            "lines": lines,
            "per_rate": _rows_per_rate(parts),
            "totals": totals,
            "tax_percent": rate,
        }
    parts = [
        Part(Decimal(p["rate"]), Decimal(p["net"]), Decimal(p["tax"])) for p in note.parts or []
    ]
    lines = [
        {
            "description": line["description"],
            "sku": line.get("sku", ""),
            "quantity": line["quantity"],
            "unit_price": line["unit_price"],
            "amount": line["amount"],
            "percent": percent(line["rate"]),
        }
        for line in note.lines or []
    ]
    credited_before = invoice.total - note.amount - (note.balance_after or ZERO)
    totals = [
        ("Net credited", note.net, False),
        (f"{tax_name} credited", note.tax, False),
        ("Total credited", note.amount, True),
    ]
    balance = [
        (f"Invoice {invoice.number} total", invoice.total),
        ("Credited before", credited_before),
        ("This credit note", -note.amount),
        ("Balance after this credit note", note.balance_after),
    ]
    return {
        "document": "Credit note",
        "number": note.number,
        "date": note.issued_at,
        "invoice": invoice,
        "note": note,
        "gross_prices": gross_prices,
        "tax_name": tax_name,
        "currency": currency,
        "lines": lines,
        "per_rate": _rows_per_rate(parts),
        "totals": totals,
        "balance": balance,
        "tax_percent": percent(invoice.tax_rate),
    }
