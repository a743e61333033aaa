"""What the customer receives, read as the customer reads it: every email of the four paths (paid,
declined, 3-D Secure, refunded after a failed shipment) and a partial refund, and the order page
after money moved back.

The in-process pipeline (real inbox and handlers) against localstripe, the partner simulator and
the SMTP sink; orders are placed through the public API (`payment_method` path)."""

from __future__ import annotations

import re
from collections import Counter
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from billing.tests.helpers import card_payment_method
from conftest import place_order
from notifications import services as notifications
from notifications.models import EmailLog
from orders.models import Order
from shipping.client import partner_session

pytestmark = pytest.mark.django_db

REASON_200 = (
    "You told us the laptop arrived with a scratched lid. As agreed on the phone we refund part "
    "of the price and you keep the laptop; we are sorry it did not arrive in the state it should."
)
THREE_DS_CARD = "4000002500003155"
AMOUNT = re.compile(r"(?<![\d.\-])\d+\.\d{2}(?![\d.])")


@pytest.fixture
def fast_partner(settings, partner):
    settings.SHIPPING_PARTNER_BACKOFF_FACTOR = 0.01
    settings.SHIPPING_PARTNER_BACKOFF_MAX = 0.05
    partner_session.cache_clear()
    yield partner
    partner_session.cache_clear()


@pytest.fixture
def staff():
    client = APIClient()
    user = get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    client.force_authenticate(user)
    return client


def by_kind(mailbox) -> dict[str, EmailMessage]:
    messages = mailbox.messages()
    kinds = Counter(m["X-ChargeFlow-Kind"] for m in messages)
    assert all(n == 1 for n in kinds.values()), f"an email sent twice: {kinds}"
    return {m["X-ChargeFlow-Kind"]: m for m in messages}


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def attachments(message: EmailMessage) -> list[str]:
    return [part.get_filename() for part in message.iter_attachments()]


def check_common(message: EmailMessage, created: dict, client) -> None:
    """What every email does: text and HTML, the order link with its guest token (and the link
    works without an account), every amount with its currency, no internal text."""
    text, html = text_of(message), html_of(message)
    link = f"/orders/{created['id']}/?token="
    assert link in text and link in html.replace("&amp;", "&"), message["Subject"]
    url = re.search(r"https?://\S+" + re.escape(link) + r"[^\s\"<>]+", text).group(0)
    parts = urlsplit(url)
    page = client.get(f"{parts.path}?{parts.query}", follow=True)  # the link opens a session
    assert page.status_code == 200 and created["number"] in page.content.decode()
    for match in AMOUNT.finditer(text):
        after = text[match.end() : match.end() + 4]
        assert after == " EUR", f"{message['Subject']}: amount without currency: {match.group()}"
    for internal in ("undeliverable", "postal code 00000", "Traceback", "{{", "None"):
        assert internal not in text, f"{message['Subject']}: {internal!r}"
    assert "Hello Ada Lovelace" in text and "Hello Ada Lovelace" in html


def fetch(created: dict) -> dict:
    response = APIClient().get(
        f"/api/v1/orders/{created['id']}/", HTTP_X_ORDER_TOKEN=created["access_token"]
    )
    assert response.status_code == 200
    return response.json()


def test_paid_order_then_a_partial_refund(pipeline, catalog, mailbox, fast_partner, staff, client):
    created = place_order("mail-paid")
    pipeline.drain()
    order = fetch(created)
    assert order["status"] == "shipped"
    total = order["totals"]["total"]

    response = staff.post(
        f"/api/v1/orders/{created['id']}/refunds/",
        {"amount": "30.00", "reason": REASON_200},
        format="json",
        HTTP_IDEMPOTENCY_KEY="mail-partial",
    )
    assert response.status_code == 201, response.content
    pipeline.drain()
    order = fetch(created)
    [credit_note] = order["credit_notes"]

    mails = by_kind(mailbox)
    assert set(mails) == {
        "order_confirmation",
        "invoice_issued",
        "payment_received",
        "shipped",
        f"partial_refund-{response.json()['id']}",
    }
    for message in mails.values():
        check_common(message, created, client)

    confirmation = mails["order_confirmation"]
    text = text_of(confirmation)
    assert confirmation["Subject"] == f"Thank you for your order {created['number']}"
    for expected in (
        "1 × Laptop at 999.99 EUR: 999.99 EUR",  # items, unit prices and line totals
        "2 × Mouse at 29.99 EUR: 59.98 EUR",
        f"Total: {total} EUR",  # the totals the checkout showed
        "Shipping (incl. VAT): Free",  # over the free-shipping threshold, as the cart said
        "12 Analytical Row",  # the address
        "N1 9GU London, United Kingdom",
        "Payment: by card",
    ):
        assert expected in text, text
    assert f"{total} EUR" in html_of(confirmation)

    invoice = mails["invoice_issued"]
    assert attachments(invoice) == [f"invoice-{order['invoice']['number']}.pdf"]
    assert f"{total} EUR" in text_of(invoice)

    assert f"{total} EUR" in text_of(mails["payment_received"])
    assert order["shipment"]["tracking_number"] in text_of(mails["shipped"])

    partial = mails[f"partial_refund-{response.json()['id']}"]
    text = text_of(partial)
    assert partial["Subject"] == f"We refunded 30.00 EUR for your order {created['number']}"
    assert "refunded in full" not in partial["Subject"] + text
    assert "We refunded 30.00 EUR of order" in text
    assert " ".join(REASON_200.split()) in " ".join(text.split())
    assert "Refunded so far: 30.00 EUR" in text
    net_paid = f"{Order.objects.get(pk=created['id']).total - 30:.2f}"
    assert f"Net paid: {net_paid} EUR" in text
    assert attachments(partial) == [f"credit-note-{credit_note['number']}.pdf"]

    # The order page after the partial refund: refunded and net paid in the totals, the credit
    # note listed with a working link, timeline amounts with their currency.
    page = client.get(f"/orders/{created['id']}/")  # this browser opened the email's link
    html = " ".join(page.content.decode().split())
    assert f'Total</dt> <dd class="strong" id="order-total">{total} EUR' in html
    assert 'id="order-shipping"> Free </dd>' in html  # as the checkout showed it, not "0.00 EUR"
    assert 'id="order-refunded">−30.00 EUR' in html
    assert f'id="order-net-paid">{net_paid} EUR' in html
    assert "We refunded 30.00 EUR of this order" in html
    assert f"{credit_note['number']} (PDF)</a> −30.00 EUR" in html
    assert "Refunded 30.00 EUR" in html
    assert f"Credit note {credit_note['number']} issued (30.00 EUR)" in html
    pdf = client.get(credit_note["pdf_url"])
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"

    # An operator resends the shipped email: the timeline says so, not a second "Email sent".
    log = EmailLog.objects.get(order_id=created["id"], kind="shipped")
    notifications.email_resend_request(log_id=log.pk, requested_by="ops")
    notifications.email_retry(log_id=log.pk)
    pipeline.drain()
    page = " ".join(client.get(f"/orders/{created['id']}/").content.decode().split())
    assert page.count("Email sent: shipped") == 1
    assert page.count("Email sent again: shipped") == 1
    kinds = [e["detail"] for e in fetch(created)["timeline"] if e["type"] == "email_sent"]
    # The API's timeline marks it as a resend, and says who asked (the desk's operator).
    assert {"kind": "shipped", "resend": True, "resent_by": "ops"} in kinds


def test_declined_payment_sends_one_email_with_the_credit_note(pipeline, catalog, mailbox, client):
    created = place_order("mail-declined", payment_method="pm_card_chargeCustomerFail")
    pipeline.drain(duplicate=True)
    order = fetch(created)
    assert order["status"] == "cancelled"
    [credit_note] = order["credit_notes"]
    mails = by_kind(mailbox)
    # Confirmation and invoice came before the charge; the decline is one email, not two.
    assert set(mails) == {"order_confirmation", "invoice_issued", "cancelled"}
    cancelled = mails["cancelled"]
    check_common(cancelled, created, client)
    text = text_of(cancelled)
    assert cancelled["Subject"] == (
        f"Your payment did not go through: order {created['number']} is cancelled"
    )
    assert "Your bank declined the payment." in text and "Nothing was charged" in text
    assert f"{credit_note['amount']} EUR" in text
    assert attachments(cancelled) == [f"credit-note-{credit_note['number']}.pdf"]


def test_three_d_secure_asks_once_with_a_working_link(pipeline, catalog, mailbox, client):
    created = place_order("mail-3ds", payment_method=card_payment_method(THREE_DS_CARD))
    pipeline.drain()
    assert fetch(created)["status"] == "action_required"
    mails = by_kind(mailbox)
    assert set(mails) == {"order_confirmation", "invoice_issued", "action_required"}
    check_common(mails["action_required"], created, client)
    assert "confirm the payment" in text_of(mails["action_required"])


def test_refund_after_a_failed_shipment(pipeline, catalog, mailbox, fast_partner, client):
    created = place_order("mail-undeliverable", postal_code="00000")
    pipeline.drain()
    order = fetch(created)
    assert order["status"] == "refunded"
    [credit_note] = order["credit_notes"]
    mails = by_kind(mailbox)
    assert set(mails) == {"order_confirmation", "invoice_issued", "payment_received", "refunded"}
    refunded = mails["refunded"]
    check_common(refunded, created, client)
    text = text_of(refunded)
    assert refunded["Subject"] == f"Your order {created['number']} was refunded in full"
    assert "Our shipping partner could not deliver to the address" in text
    assert f"We refunded {order['totals']['total']} EUR" in text
    assert attachments(refunded) == [f"credit-note-{credit_note['number']}.pdf"]
