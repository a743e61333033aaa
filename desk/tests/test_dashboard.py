"""The dashboard: numbers per status and per hour, what needs attention, each number a link to
the list behind it (and every link works: the admin answers a bad filter with ?e=1)."""

from __future__ import annotations

import html
import re

import pytest

from desk.tests.conftest import order_in
from outbox.models import FailedDelivery

pytestmark = pytest.mark.django_db


def test_every_number_links_to_its_filtered_list(staff_client, catalog, pipeline, sqs):
    shipped = order_in("shipped", pipeline)
    cancelled = order_in("cancelled", pipeline)
    stuck = order_in("stuck", pipeline)
    FailedDelivery.objects.create(
        event_id="00000000-0000-0000-0000-000000000003",
        subscriber="billing.on_order_placed",
        event_type="order.placed",
        aggregate_id=str(stuck.pk),
        envelope={},
        attempts=2,
        last_error="Traceback\nStripeError: down",
    )
    page = staff_client.get("/admin/desk/").content.decode()
    assert re.search(
        r'href="/admin/orders/order/\?status__exact=shipped">\s*<span class="n">1<', page
    )
    assert re.search(r'href="/admin/orders/order/\?stuck=yes">\s*<span class="n">1<', page)
    assert "StripeError: down" in page and stuck.number in page
    assert 'id="hourly-chart"' in page and "3 orders" in page
    links = {html.unescape(h) for h in re.findall(r'href="(/admin/[^"]+)"', page)}
    assert len(links) > 15
    for link in links:
        response = staff_client.get(link)
        assert response.status_code == 200, link
        assert "?e=1" not in response.get("Location", ""), link
    listing = staff_client.get("/admin/outbox/faileddelivery/?state=live").content.decode()
    assert stuck.number in listing
    by_status = staff_client.get("/admin/orders/order/?status__exact=cancelled").content.decode()
    assert cancelled.number in by_status and shipped.number not in by_status


def test_the_dashboard_says_when_sqs_does_not_answer(staff_client, settings):
    settings.CELERY_BROKER_URL = "sqs://test:test@127.0.0.1:9"
    page = staff_client.get("/admin/desk/").content.decode()
    assert "dead letters: SQS did not answer" in page
