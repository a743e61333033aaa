"""The DEBUG-only local mailbox: what the SMTP sink received, as the customer sees it."""

from __future__ import annotations

import uuid

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from notifications import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice_email(mailbox, settings):
    settings.DEBUG = True
    contact = services.contact_record(
        order_id=str(uuid.uuid4()),
        order_number="CF-000099",
        email="ada@example.com",
        name="Ada",
        order_url="http://shop.test/orders/y/",
    )
    path = default_storage.save("invoices/mailbox.pdf", ContentFile(b"%PDF-1.4 mailbox"))
    services.email_send(
        order_id=str(contact.order_id),
        kind="invoice_issued",
        context={"invoice": {"number": "INV-9", "totals": {"total": "5.00"}, "currency": "EUR"}},
        attachments=[services.Attachment(path, "invoice-INV-9.pdf")],
    )
    [path] = list(mailbox.directory.glob("*.eml"))
    return path.name


def test_list_detail_html_and_attachment(client, invoice_email):
    listing = client.get("/notifications/mailbox/")
    assert listing.status_code == 200
    for text in (b"Your invoice for order CF-000099", b"invoice_issued", b"invoice-INV-9.pdf"):
        assert text in listing.content
    # The emails must not reach base.html's django.contrib.messages notices (the context name
    # "messages" once collided with it and every email showed up as a raw dict in a notice box).
    assert b"{'file_name'" not in listing.content
    assert b"{&#x27;file_name&#x27;" not in listing.content  # the same, autoescaped
    assert b'class="messages"' not in listing.content
    assert b'<li class="message' not in listing.content

    filtered = client.get("/notifications/mailbox/?order=CF-000001")
    assert b"Your invoice for order" not in filtered.content

    detail = client.get(f"/notifications/mailbox/{invoice_email}/")
    assert detail.status_code == 200
    assert b"<iframe" in detail.content and b"sandbox=" in detail.content
    assert b"Your invoice INV-9 for order CF-000099 is attached" in detail.content  # plain text

    html = client.get(f"/notifications/mailbox/{invoice_email}/html/")
    assert html.status_code == 200
    assert html["X-Frame-Options"] == "SAMEORIGIN"
    assert html["Content-Security-Policy"].startswith("sandbox")
    assert b"<strong>INV-9</strong>" in html.content

    pdf = client.get(f"/notifications/mailbox/{invoice_email}/attachments/0/")
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert client.get(f"/notifications/mailbox/{invoice_email}/attachments/5/").status_code == 404
    assert client.get("/notifications/mailbox/nope.eml/").status_code == 404


def test_mailbox_is_hidden_without_debug(client, invoice_email, settings):
    settings.DEBUG = False
    assert client.get("/notifications/mailbox/").status_code == 404
    assert client.get(f"/notifications/mailbox/{invoice_email}/").status_code == 404
    assert client.get(f"/notifications/mailbox/{invoice_email}/html/").status_code == 404
