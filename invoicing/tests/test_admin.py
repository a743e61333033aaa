"""The invoice admin: totals with their currency, read-only inlines, a list that fits."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from invoicing import services
from invoicing.tests.factories import order_placed

pytestmark = pytest.mark.django_db


def columns(content: bytes) -> list[str]:
    return re.findall(r'<th scope="col" class="[^"]*column-(\w+)', content.decode())


@pytest.fixture
def invoice():
    payload = order_placed(country="GB")
    invoice = services.invoice_issue(**payload)
    services.credit_note_issue(
        order_id=payload["order_id"], source="refund:1", reason="Goodwill", amount=Decimal("10")
    )
    return invoice


def test_invoice_and_credit_note_lists(admin_client, invoice):
    page = admin_client.get("/admin/invoicing/invoice/")
    assert columns(page.content) == ["number", "order_number", "amount", "issued_at"]
    assert f"{invoice.total:,.2f} EUR".encode() in page.content
    notes = admin_client.get("/admin/invoicing/creditnote/")
    assert columns(notes.content) == ["number", "invoice", "credited", "issued_at"]
    assert b"10.00 EUR" in notes.content


def test_invoice_page_inlines_are_read_only(admin_client, invoice):
    content = admin_client.get(f"/admin/invoicing/invoice/{invoice.pk}/change/").content.decode()
    assert "LAPTOP-14" in content and "Goodwill" in content
    for prefix in ("lines", "credit_notes"):
        # No "Add another" (the admin's script adds the link only below MAX_NUM_FORMS) and no
        # editable field: only the formset's hidden keys.
        assert f'name="{prefix}-MAX_NUM_FORMS" value="0"' in content
        assert set(re.findall(rf'name="{prefix}-\d+-(\w+)"', content)) == {"id", "invoice"}
