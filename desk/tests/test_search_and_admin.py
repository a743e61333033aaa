"""Find an order by whatever is quoted, in the desk and in every admin list; no fact can be
deleted or freely edited in the admin."""

from __future__ import annotations

import pytest
from django.contrib import admin

from billing.models import Payment
from desk.admin import FACTS
from desk.tests.conftest import order_in
from invoicing.models import CreditNote, Invoice
from orders.models import Order
from outbox.models import FailedDelivery
from shipping.models import Shipment

pytestmark = pytest.mark.django_db


def quoted_references(order: Order) -> dict[str, str]:
    payment = Payment.objects.get(order_id=order.pk)
    shipment = Shipment.objects.filter(order_id=order.pk).first()
    refs = {
        "order number": order.number,
        "order number, lower case": order.number.lower(),
        "invoice number": Invoice.objects.get(order_id=order.pk).number,
        "PaymentIntent id": payment.stripe_payment_intent_id,
    }
    if shipment is not None and shipment.tracking_number:
        refs["tracking number"] = shipment.tracking_number
    note = CreditNote.objects.filter(invoice__order_id=order.pk).first()
    if note is not None:
        refs["credit-note number"] = note.number
    return refs


@pytest.mark.parametrize("state", ["shipped", "refunded"])
def test_the_desk_finds_an_order_by_each_quoted_kind(state, staff_client, catalog, pipeline):
    order = order_in(state, pipeline)
    refs = quoted_references(order)
    assert ("tracking number" in refs) == (state == "shipped")
    assert ("credit-note number" in refs) == (state == "refunded")
    for kind, term in refs.items():
        response = staff_client.get("/admin/desk/find/", {"q": f"  {term} "})
        assert response.status_code == 302, kind
        assert response["Location"] == f"/admin/desk/orders/{order.pk}/", kind
        # The order list's search finds it too.
        listing = staff_client.get("/admin/orders/order/", {"q": term}).content.decode()
        assert order.number in listing, kind
    # An email usually names several orders: they are listed.
    second = order_in("placed", pipeline)
    listing = staff_client.get("/admin/desk/find/", {"q": "ADA@example.com"}).content.decode()
    assert "2 orders" in listing and order.number in listing and second.number in listing
    assert "0 orders" in staff_client.get("/admin/desk/find/", {"q": "CF-NOPE"}).content.decode()


def test_related_lists_show_and_find_the_order_number(staff_client, catalog, pipeline):
    order = order_in("shipped", pipeline)
    other = order_in("placed", pipeline)
    FailedDelivery.objects.create(
        event_id="00000000-0000-0000-0000-000000000002",
        subscriber="shipping.on_payment_succeeded",
        event_type="payment.succeeded",
        aggregate_id=str(order.pk),
        envelope={},
        attempts=1,
        last_error="Traceback\nPartnerError: 503",
    )
    for url in (
        "/admin/outbox/outboxevent/",
        "/admin/outbox/faileddelivery/",
        "/admin/outbox/inboxmessage/",
        "/admin/notifications/emaillog/",
        "/admin/billing/payment/",
        "/admin/shipping/shipment/",
        "/admin/invoicing/invoice/",
    ):
        page = staff_client.get(url, {"q": order.number}).content.decode()
        assert order.number in page, url
        assert other.number not in page, url
        if url.startswith("/admin/outbox/"):
            # The number, linked to the desk, where a wrapped UUID used to be.
            assert f'class="field-order"><a href="/admin/desk/orders/{order.pk}/">' in page, url
            assert "field-aggregate_id" not in page, url
    failures = staff_client.get("/admin/outbox/faileddelivery/").content.decode()
    assert "Live" in failures and "PartnerError: 503" in failures
    by_pi = staff_client.get(
        "/admin/outbox/outboxevent/",
        {"q": Payment.objects.get(order_id=order.pk).stripe_payment_intent_id},
    ).content.decode()
    assert order.number in by_pi


def test_no_fact_can_be_deleted_or_saved(staff_client, catalog, pipeline):
    order = order_in("shipped", pipeline)
    rows = {
        Order: order,
        Payment: Payment.objects.get(order_id=order.pk),
        Invoice: Invoice.objects.get(order_id=order.pk),
        Shipment: Shipment.objects.get(order_id=order.pk),
    }
    for model in FACTS:
        model_admin = admin.site._registry.get(model)
        if model_admin is None:
            continue
        opts = model._meta
        assert not model_admin.has_delete_permission(None), model
        changelist = staff_client.get(f"/admin/{opts.app_label}/{opts.model_name}/")
        assert changelist.status_code == 200, model
        assert 'value="delete_selected"' not in changelist.content.decode(), model
    for model, row in rows.items():
        opts = model._meta
        delete = staff_client.get(f"/admin/{opts.app_label}/{opts.model_name}/{row.pk}/delete/")
        assert delete.status_code in (403, 302), model
        if model is Order:
            continue  # opens the desk page (tested above)
        change = staff_client.get(f"/admin/{opts.app_label}/{opts.model_name}/{row.pk}/change/")
        page = change.content.decode()
        assert change.status_code == 200, model
        assert 'name="_save"' not in page and "deletelink" not in page, model
    assert Order.objects.filter(pk=order.pk).exists()
