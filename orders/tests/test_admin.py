"""The order in Django's admin: readable timeline and credit notes, read-only inlines."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from orders.models import OrderCreditNote, TimelineEntry
from orders.tests.factories import ProductFactory, order_with_line

pytestmark = pytest.mark.django_db


def test_order_page_reads_its_timeline_and_offers_no_adding(admin_client):
    order = order_with_line(product=ProductFactory(stock=5), status="cancelled")
    TimelineEntry.objects.create(
        order=order,
        type="status_changed",
        detail={"from": "placed", "to": "cancelled", "reason": "payment failed"},
    )
    OrderCreditNote.objects.create(order=order, number="CN-2026-000009", amount=Decimal("41.87"))
    page = admin_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    # Each row says what happened, at what second; no Python dicts as row headings.
    assert "Status: Placed → Cancelled (payment failed)" in page
    assert "Order placed" in page
    assert re.search(r"Status changed at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", page)
    assert "{&#x27;from&#x27;" not in page and "{'from'" not in page
    times = re.findall(r'<td class="field-time">\s*<p>([^<]+)</p>', page)
    assert len(times) == 2 and all(
        re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", t) for t in times
    )
    assert re.search(r'<td class="field-issued">\s*<p>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</p>', page)
    # Lines, credit notes and the timeline are the order's record: nothing to add by hand (the
    # admin's script offers "Add another …" only with an empty form and room for one more).
    for prefix in ("lines", "credit_notes", "timeline"):
        assert f'id="{prefix}-empty"' not in page, prefix
        assert f'name="{prefix}-MAX_NUM_FORMS" value="0"' in page, prefix


def test_timeline_entry_str_is_readable():
    order = order_with_line(product=ProductFactory(stock=5))
    entry = order.timeline.get()
    assert re.fullmatch(r"Status changed at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", str(entry))
    assert str(TimelineEntry(type="email_sent", at=None)) == "Email sent"
