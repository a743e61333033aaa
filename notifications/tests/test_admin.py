"""The email admin: a list that fits the screen, with the order number; attempts read-only."""

from __future__ import annotations

import re
import uuid

import pytest

from notifications import services

pytestmark = pytest.mark.django_db


def test_email_list_and_page(admin_client, mailbox):
    contact = services.contact_record(
        order_id=str(uuid.uuid4()),
        order_number="CF-000042",
        email="grace@example.com",
        name="Grace Hopper",
        order_url="http://shop.test/orders/abc/",
    )
    log = services.email_send(
        order_id=str(contact.order_id),
        kind="shipped",
        context={"shipment": {"carrier": "SimPost", "tracking_number": "SP1"}},
    )
    page = admin_client.get("/admin/notifications/emaillog/")
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', page.content.decode())
    assert headers == ["order_number", "kind", "recipient", "status", "updated_at"]
    assert b"CF-000042" in page.content
    assert str(contact.order_id).encode() not in page.content

    content = admin_client.get(f"/admin/notifications/emaillog/{log.pk}/change/").content.decode()
    assert str(contact.order_id) in content  # the order id is on the email's page
    assert 'name="attempt_rows-MAX_NUM_FORMS" value="0"' in content
    assert set(re.findall(r'name="attempt_rows-\d+-(\w+)"', content)) == {"id", "log"}
