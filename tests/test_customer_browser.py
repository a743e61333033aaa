"""What the customer sees, in a real browser (Debian's Chromium through Playwright): the order
page after a partial refund (opened from the email's guest link), the mailbox with every email
and the refund email itself; the invoice and credit note PDFs as PNG. Screenshots and PNGs go to
test-artifacts/ (screenshots/<test>/ and documents/) to be looked at.

The pipeline runs in-process (Pipeline.drain) against the live server's database."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

# Playwright's sync API keeps an asyncio loop running in this thread (see
# tests/test_storefront_browser.py): the ORM is safe here, the loop never runs ORM code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from conftest import place_order
from invoicing.models import CreditNote, Invoice
from invoicing.tests.test_documents import png_of
from shipping.client import partner_session

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REASON = (
    "You told us the laptop arrived with a scratched lid. As agreed on the phone we refund part "
    "of the price and you keep the laptop; we are sorry it did not arrive in the state it should."
)


@pytest.fixture
def fast_partner(settings, partner):
    settings.SHIPPING_PARTNER_BACKOFF_FACTOR = 0.01
    settings.SHIPPING_PARTNER_BACKOFF_MAX = 0.05
    partner_session.cache_clear()
    yield partner
    partner_session.cache_clear()


def test_order_page_mailbox_and_documents_after_a_partial_refund(
    live_server, pipeline, catalog, mailbox, fast_partner, browser_page, settings
):
    settings.DEBUG = True  # the mailbox is a local tool
    created = place_order("browser-partial")
    pipeline.drain()
    staff = APIClient()
    staff.force_authenticate(
        get_user_model().objects.create_user("staff", "s@example.com", "pw", is_staff=True)
    )
    refund = staff.post(
        f"/api/v1/orders/{created['id']}/refunds/",
        {"amount": "30.00", "reason": REASON},
        format="json",
        HTTP_IDEMPOTENCY_KEY="browser-partial-refund",
    )
    assert refund.status_code == 201, refund.content
    pipeline.drain()

    # The guest link from the refund email, opened in the browser (on the live server).
    [email] = [m for m in mailbox.messages() if m["X-ChargeFlow-Kind"].startswith("partial")]
    text = email.get_body(preferencelist=("plain",)).get_content()
    link = urlsplit(re.search(r"https?://\S+/orders/\S+\?token=\S+", text).group(0))
    page = browser_page
    page.goto(f"{live_server.url}{link.path}?{link.query}")
    page.wait_for_selector("#order-net-paid")
    assert page.locator("#order-refunded").inner_text() == "−30.00 EUR"
    assert "Net paid" in page.inner_text("#order-live")
    assert "We refunded 30.00 EUR of this order" in page.inner_text("#refund-notice")
    timeline = page.inner_text("#order-timeline")
    assert "Refunded 30.00 EUR" in timeline and "Email sent: partial refund" in timeline
    page.shot("order-after-partial-refund")

    # The credit note link on the page opens the PDF (the session holds the grant).
    href = page.locator(".credit-note a").get_attribute("href")
    response = page.request.get(f"{live_server.url}{href}")
    assert response.status == 200 and response.body().startswith(b"%PDF")

    page.goto(f"{live_server.url}/notifications/mailbox/")
    for subject in (
        f"Thank you for your order {created['number']}",
        f"We refunded 30.00 EUR for your order {created['number']}",
    ):
        assert subject in page.inner_text("body")
    page.shot("mailbox")
    page.get_by_text(f"We refunded 30.00 EUR for your order {created['number']}").first.click()
    page.wait_for_selector("iframe")
    frame = page.frame_locator("iframe")
    assert "Net paid" in frame.locator("body").inner_text()
    page.shot("mailbox-partial-refund-email")

    page.goto(f"{live_server.url}/notifications/mailbox/")
    page.get_by_text(f"Thank you for your order {created['number']}").first.click()
    page.wait_for_selector("iframe")
    assert "Shipping to" in page.frame_locator("iframe").locator("body").inner_text()
    page.shot("mailbox-order-confirmation")

    invoice = Invoice.objects.get(order_id=created["id"])
    note = CreditNote.objects.get(invoice=invoice)
    assert png_of(invoice.pdf.name, "pipeline-invoice") is not None
    assert png_of(note.pdf.name, "pipeline-credit-note-partial") is not None
