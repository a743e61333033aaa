"""The shipment admin list fits the screen: what an operator scans, details on the page."""

from __future__ import annotations

import re
import uuid

import pytest

from shipping.models import Shipment

pytestmark = pytest.mark.django_db


def test_shipment_list_columns(admin_client):
    shipment = Shipment.objects.create(
        order_id=uuid.uuid4(),
        order_number="CF-000123",
        status=Shipment.Status.FAILED,
        idempotency_key="k",
        attempts=3,
        failure_reason="The partner refused the address: " + "x" * 200,
    )
    page = admin_client.get("/admin/shipping/shipment/")
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', page.content.decode())
    assert headers == ["order_number", "status", "carrier", "tracking_number", "updated_at"]
    assert b"The partner refused" not in page.content
    detail = admin_client.get(f"/admin/shipping/shipment/{shipment.pk}/change/")
    assert b"The partner refused the address" in detail.content
