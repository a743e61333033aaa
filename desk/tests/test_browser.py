"""The desk in Chromium: the order page (refund from the page, an error kept on it), the
dashboard and the dead-letter viewer. Screenshots in test-artifacts/screenshots/<test>/."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from desk.tests.conftest import order_in
from desk.tests.test_dead_letters import dead_letter
from orders.models import Order
from outbox.models import FailedDelivery, OutboxEvent
from outbox.registry import subscribers_for

# Playwright's sync API runs an event loop in this thread; the ORM calls here are ordinary sync
# test code (as in tests/test_storefront_browser.py).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def desk(live_server, browser_page):
    get_user_model().objects.create_user(
        "olga", "olga@example.com", "pw", is_staff=True, is_superuser=True
    )
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/desk/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")
    page.base = live_server.url
    return page


def test_the_order_page_in_a_browser(desk, catalog, pipeline, sqs):
    page = desk
    order = order_in("shipped", pipeline)
    page.goto(f"{page.base}/admin/desk/orders/{order.pk}/")
    page.wait_for_selector("#order-status")
    page.shot("order-shipped")
    assert not page.is_visible("#technical table")  # collapsed

    # An over-refund: the error stays on the order page, with what was typed.
    page.fill("#id_amount", "99999")
    page.fill("#id_reason", "Customer unhappy")
    page.click("#refund-form input[type=submit]")
    page.wait_for_selector("#refund-errors")
    assert order.number in page.inner_text("#order-desk")
    assert page.input_value("#id_reason") == "Customer unhappy"
    page.shot("refund-error-on-the-order-page")

    # One mouse back, restocked.
    mouse = order.lines.get(sku="MOUSE-01")
    page.fill("#id_amount", "")
    page.fill(f"#id_line_{mouse.pk}", "1")
    page.check("#id_restock")
    page.fill("#id_reason", "Arrived broken")
    page.click("#refund-form input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert "Refunded" in page.inner_text(".messagelist")
    pipeline.drain()
    page.reload()
    page.click("#technical summary")
    page.shot("order-after-refund")
    assert "Put back in stock: 1 × MOUSE-01 (by olga)" in page.inner_text("#timeline")


def test_the_dashboard_and_a_stuck_order_in_a_browser(desk, catalog, pipeline, sqs):
    page = desk
    for state in ("shipped", "cancelled", "refunded", "placed"):
        order_in(state, pipeline)
    stuck = order_in("stuck", pipeline)
    FailedDelivery.objects.create(
        event_id="00000000-0000-0000-0000-000000000009",
        subscriber="shipping.on_payment_succeeded",
        event_type="payment.succeeded",
        aggregate_id=str(stuck.pk),
        envelope={},
        attempts=4,
        last_error="Traceback (most recent call last):\n  ...\n"
        "PartnerError: 503 Service Unavailable",
    )
    OutboxEvent.objects.filter(aggregate_id=str(stuck.pk)).update(
        status="failing", attempts=2, last_error="ConnectionError: broker down"
    )
    Order.objects.filter(pk=stuck.pk).update(
        stuck_since=timezone.now() - timezone.timedelta(minutes=42)
    )
    page.goto(f"{page.base}/admin/desk/")
    page.wait_for_selector("#hourly-chart")
    page.shot("dashboard")
    assert stuck.number in page.inner_text("#stuck-orders")
    assert "PartnerError: 503" in page.inner_text("#stuck-orders")
    page.click(f"#stuck-orders a:has-text('{stuck.number}')")
    page.wait_for_selector("#stuck-flag")
    page.shot("stuck-order")
    assert "shipping.on_payment_succeeded failed on payment.succeeded" in page.inner_text(
        "#problems"
    )

    # The find box in the header takes what the customer quotes.
    page.fill("#desk-nav input[name=q]", stuck.number.lower())
    page.press("#desk-nav input[name=q]", "Enter")
    page.wait_for_selector("#order-status")
    assert stuck.number in page.inner_text(".summary")

    # The admin lists an operator scans: live failures stand out, order numbers, not UUIDs.
    page.goto(f"{page.base}/admin/outbox/faileddelivery/")
    page.shot("failed-deliveries")
    assert "Live" in page.inner_text("#result_list")
    assert stuck.number in page.inner_text("#result_list")
    page.goto(f"{page.base}/admin/outbox/outboxevent/?q={stuck.number}")
    page.shot("outbox-events-by-order-number")
    assert stuck.number in page.inner_text("#result_list")


def test_the_dead_letter_viewer_in_a_browser(desk, catalog, pipeline, sqs):
    page = desk
    sqs.purge()
    order = order_in("placed", pipeline)
    row = OutboxEvent.objects.get(aggregate_id=str(order.pk), type="order.placed")
    for sub in subscribers_for("order.placed")[:2]:
        app = next(a for a, q in settings.QUEUE_NAMES.items() if q == sub.queue)
        dead_letter(sqs, app, subscriber=sub.name, envelope=row.as_event().to_envelope())
    page.goto(f"{page.base}/admin/desk/dead-letters/")
    page.wait_for_selector("#dead-letter-table")
    page.shot("dead-letters")
    assert page.locator("#dead-letter-table tbody input[type=checkbox]").count() == 2
    page.locator("#dead-letter-table tbody input[type=checkbox]").first.check()
    page.click("input[name=send_selected]")
    page.wait_for_selector(".messagelist")
    assert "1 message(s) sent back" in page.inner_text(".messagelist")
    assert page.locator("#dead-letter-table tbody input[type=checkbox]").count() == 1
    page.shot("dead-letters-after-redrive")
    sqs.purge()
