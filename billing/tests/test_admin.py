"""The payment admin: amounts as money, refunds read-only, a list that fits the screen."""

from __future__ import annotations

import re
import uuid

import pytest

from billing.models import Payment, Refund

pytestmark = pytest.mark.django_db


@pytest.fixture
def payment():
    payment = Payment.objects.create(
        order_id=uuid.uuid4(),
        order_number="CF-000123",
        email="ada@example.com",
        payment_method="pm_card_visa",
        currency="EUR",
        expected_subtotal_minor=330000,
        amount_minor=395960,
        refunded_minor=1000,
        status=Payment.Status.PARTIALLY_REFUNDED,
    )
    Refund.objects.create(
        payment=payment,
        source="admin:1",
        reason="Goodwill",
        amount_minor=1000,
        idempotency_key="refund-1",
        status=Refund.Status.SUCCEEDED,
    )
    return payment


def columns(content: bytes) -> list[str]:
    return re.findall(r'<th scope="col" class="[^"]*column-([\w]+)', content.decode())


def test_payment_list_shows_the_amount_with_its_currency(admin_client, payment):
    page = admin_client.get("/admin/billing/payment/")
    assert columns(page.content) == ["order_number", "status", "amount", "updated_at"]
    assert b"3,959.60 EUR" in page.content
    assert b"395960" not in page.content


def test_payment_page_shows_amounts_as_money_and_refunds_read_only(admin_client, payment):
    page = admin_client.get(f"/admin/billing/payment/{payment.pk}/change/")
    content = page.content.decode()
    assert "Amount minor" not in content and "395960" not in content
    for label, value in (
        ("Amount", "3,959.60 EUR"),
        ("Refunded", "10.00 EUR"),
        ("Expected subtotal", "3,300.00 EUR"),
    ):
        assert re.search(rf'<label>{label}:</label>\s*<div class="readonly">{value}</div>', content)
    # The refund inline: its amount as money, no "Add another" (the admin's script adds the link
    # only below MAX_NUM_FORMS) and no editable field (only the formset's hidden keys).
    assert "<p>10.00 EUR</p>" in content
    assert 'name="refunds-MAX_NUM_FORMS" value="0"' in content
    assert set(re.findall(r'name="refunds-0-(\w+)"', content)) == {"id", "payment"}
