"""The order in Django's admin: readable timeline and credit notes, read-only inlines."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from orders.models import OrderCreditNote, TimelineEntry
from orders.tests.factories import ProductFactory, order_with_line

pytestmark = pytest.mark.django_db


def test_order_page_reads_its_timeline_and_offers_no_adding(admin_client):
    """The admin's order page is the desk's (desk/): the timeline in sentences, to the second,
    and nothing to add or edit by hand."""
    order = order_with_line(product=ProductFactory(stock=5), status="cancelled")
    TimelineEntry.objects.create(
        order=order,
        type="status_changed",
        detail={"from": "placed", "to": "cancelled", "reason": "payment failed"},
    )
    OrderCreditNote.objects.create(order=order, number="CN-2026-000009", amount=Decimal("41.87"))
    page = admin_client.get(f"/admin/orders/order/{order.pk}/change/", follow=True)
    page = page.content.decode()

    # Each row says what happened, at what second; no Python dicts.
    assert "Status: Placed → Cancelled (payment failed)" in page
    assert "Order placed" in page
    assert "{&#x27;from&#x27;" not in page and "{'from'" not in page
    times = re.findall(r'<td class="when">([^<]+)</td>', page)
    assert len(times) == 2 and all(
        re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", t) for t in times
    )
    # No admin form: nothing to add, save or delete on an order.
    for word in ('name="_save"', "-TOTAL_FORMS", "deletelink", "Add another"):
        assert word not in page, word


def test_timeline_entry_str_is_readable():
    order = order_with_line(product=ProductFactory(stock=5))
    entry = order.timeline.get()
    assert re.fullmatch(r"Status changed at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", str(entry))
    assert str(TimelineEntry(type="email_sent", at=None)) == "Email sent"
