"""The order desk page: renders for each state, shows what an operator needs, acts through the
pipeline's services (refund, restock, resend, retry) with the staff user on the timeline."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from billing.models import Payment
from desk.tests.conftest import order_in
from notifications.models import EmailLog
from orders.models import Order, Product
from outbox.models import FailedDelivery

pytestmark = pytest.mark.django_db


def page_of(client, order: Order, **kwargs):
    return client.get(f"/admin/desk/orders/{order.pk}/", **kwargs)


@pytest.mark.parametrize(
    ("state", "status_label"),
    [
        ("placed", "Placed"),
        ("shipped", "Shipped"),
        ("cancelled", "Cancelled"),
        ("refunded", "Refunded"),
        ("stuck", "Placed"),
    ],
)
def test_the_order_page_renders_for_each_state(
    state, status_label, staff_client, catalog, pipeline
):
    order = order_in(state, pipeline)
    response = page_of(staff_client, order)
    assert response.status_code == 200
    page = response.content.decode()
    assert order.number in page and order.email in page
    assert f'id="order-status">{status_label}</span>' in page
    for panel in ("money", "documents", "shipment", "emails", "timeline", "technical"):
        assert f'id="{panel}"' in page, panel
    # Raw technical fields only inside the collapsed section.
    before_technical = page.split('id="technical"')[0]
    assert "request_fingerprint" not in before_technical
    assert '<details class="technical"' in page
    assert "Delete" not in page
    if state == "stuck":
        assert 'id="stuck-flag"' in page and "Why it is stuck" in page
    if state == "shipped":
        assert "Handed to the carrier, tracking number" in page
        assert re.search(r'href="/api/v1/orders/[0-9a-f-]+/invoice\.pdf"', page)
    if state in ("cancelled", "refunded"):
        assert re.search(r'href="/api/v1/orders/[0-9a-f-]+/credit-notes/[^"]+\.pdf"', page)
    if state == "cancelled":
        # A shipment that never left reads as such, not "pending" forever.
        assert "Not shipped (order cancelled)" in page


def test_the_page_is_for_staff_only(client, catalog, pipeline, django_user_model):
    order = order_in("placed", pipeline)
    assert page_of(client, order).status_code == 302  # to the admin login
    customer = django_user_model.objects.create_user("c", "c@example.com", "pw")
    client.force_login(customer)
    assert page_of(client, order).status_code == 302


def test_the_admin_change_page_opens_the_desk(staff_client, catalog, pipeline):
    order = order_in("placed", pipeline)
    response = staff_client.get(f"/admin/orders/order/{order.pk}/change/")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/desk/orders/{order.pk}/"


def test_the_timeline_reads_in_sentences_in_event_order(staff_client, catalog, pipeline):
    order = order_in("shipped", pipeline)
    page = page_of(staff_client, order).content.decode()
    timeline = page.split('id="timeline"')[1].split("</section>")[0]
    sentences = re.findall(r"<td>([^<]+)</td>", timeline)
    assert sentences[0].strip() == "Order placed"
    assert any("Invoice" in s and "issued" in s for s in sentences)
    assert any("Payment received" in s for s in sentences)
    times = re.findall(r'<td class="when">([^<]+)</td>', timeline)
    assert times == sorted(times)
    assert "{&#x27;" not in timeline


# --- Refund from the order page --------------------------------------------------------------


def refund_form(client, order: Order) -> dict:
    page = page_of(client, order).content.decode()
    token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)
    return {"token": token}


def test_refund_errors_stay_on_the_order_page(staff_client, catalog, pipeline):
    order = order_in("shipped", pipeline)
    url = f"/admin/desk/orders/{order.pk}/refund/"

    no_reason = staff_client.post(url, {**refund_form(staff_client, order), "amount": "5.00"})
    assert no_reason.status_code == 400
    page = no_reason.content.decode()
    assert order.number in page and 'id="refund-form"' in page
    assert "This field is required." in page
    assert 'value="5.00"' in page  # what was typed is kept

    too_much = staff_client.post(
        url, {**refund_form(staff_client, order), "amount": "99999.00", "reason": "Broken"}
    )
    assert too_much.status_code == 400
    page = too_much.content.decode()
    assert 'id="refund-errors"' in page and "exceeds what is left to refund" in page
    assert order.number in page
    # The attempt is on the timeline: asked, refused, by whom.
    notes = [e.detail for e in order.timeline.filter(type="note")]
    assert any(n["message"].startswith("Refund refused: ") and n["by"] == "olga" for n in notes)

    restock_without_lines = staff_client.post(
        url, {**refund_form(staff_client, order), "reason": "x", "restock": "on"}
    )
    assert restock_without_lines.status_code == 400
    assert "say how many units of which lines" in restock_without_lines.content.decode()

    bad_quantity = staff_client.post(
        url,
        {**refund_form(staff_client, order), "reason": "x", f"line_{order.lines.first().pk}": 99},
    )
    assert bad_quantity.status_code == 400
    assert Payment.objects.get(order_id=order.pk).refunded_minor == 0


def test_refund_of_a_line_with_restock_goes_through_billing(staff_client, catalog, pipeline):
    order = order_in("shipped", pipeline)
    mouse = order.lines.get(sku="MOUSE-01")
    stock_before = Product.objects.get(sku="MOUSE-01").stock
    form = refund_form(staff_client, order)
    response = staff_client.post(
        f"/admin/desk/orders/{order.pk}/refund/",
        {**form, f"line_{mouse.pk}": 1, "restock": "on", "reason": "Arrived broken"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/admin/desk/orders/{order.pk}/#money"
    payment = Payment.objects.get(order_id=order.pk)
    assert payment.status == "partially_refunded"
    # One mouse as the customer paid for it: tax included, to the cent.
    if order.prices_include_tax:
        expected = mouse.unit_price
    else:
        expected = (mouse.unit_price * (1 + order.tax_rate)).quantize(Decimal("0.01"))
    assert payment.refunded_minor == int(expected * 100)
    assert Product.objects.get(sku="MOUSE-01").stock == stock_before + 1
    # The same form sent again (a double click) refunds once and restocks once.
    again = staff_client.post(
        f"/admin/desk/orders/{order.pk}/refund/",
        {**form, f"line_{mouse.pk}": 1, "restock": "on", "reason": "Arrived broken"},
    )
    assert again.status_code == 302
    payment.refresh_from_db()
    assert payment.refunds.count() == 1
    assert Product.objects.get(sku="MOUSE-01").stock == stock_before + 1

    pipeline.drain()
    page = page_of(staff_client, order).content.decode()
    assert "Put back in stock: 1 × MOUSE-01 (by olga)" in page
    timeline = page.split('id="timeline"')[1]
    asked = timeline.index("asked from the desk: Arrived broken (by olga)")
    assert asked < timeline.index(f"Refunded {expected}")  # asked, then done
    # The technical section shows no secret: no client secret, no guest link token.
    technical = page.split('id="technical"')[1]
    assert "token=" not in technical and "_secret_" not in technical
    order.refresh_from_db()
    assert order.refunded_amount == Decimal(payment.refunded_minor) / 100


def test_restock_never_exceeds_what_was_sold(staff_client, catalog, pipeline):
    from orders.services import RestockError, order_restock

    order = order_in("shipped", pipeline)
    mouse = order.lines.get(sku="MOUSE-01")
    assert order_restock(order_id=order.pk, quantities={mouse.pk: 2}, by="olga") == 2
    with pytest.raises(RestockError, match="only 0 of 2 left"):
        order_restock(order_id=order.pk, quantities={mouse.pk: 1}, by="olga")


def test_an_ended_order_restocked_by_an_operator_is_not_restocked_twice(catalog, pipeline):
    from orders.services import order_restock, order_transition

    order = order_in("shipped", pipeline)
    mouse = order.lines.get(sku="MOUSE-01")
    before = Product.objects.get(sku="MOUSE-01").stock
    order_restock(order_id=order.pk, quantities={mouse.pk: 1}, by="olga")
    order_transition(order_id=order.pk, to="refunded", reason="test")
    # The release at the end gives back only the unit not restocked already.
    assert Product.objects.get(sku="MOUSE-01").stock == before + 2


# --- Other actions ---------------------------------------------------------------------------


def test_resend_an_email_from_the_order_page(staff_client, catalog, pipeline, mailbox):
    order = order_in("shipped", pipeline)
    log = EmailLog.objects.filter(order_id=order.pk).order_by("id").first()
    response = staff_client.post(f"/admin/desk/orders/{order.pk}/resend/", {"email": log.pk})
    assert response.status_code == 302
    log.refresh_from_db()
    assert log.resend_requested_by == "olga"
    # The worker's task (or the beat's fallback) makes the attempt; the timeline names who asked.
    from notifications.services import email_retry

    email_retry(log_id=log.pk)
    assert log.attempt_rows.filter(forced=True, status="sent", requested_by="olga").exists()
    pipeline.drain()
    page = page_of(staff_client, order).content.decode()
    kind = log.kind.replace("_", " ")
    assert f"Email {kind} resent from the desk (by olga)" in page
    assert "Email sent again: " in page and "(asked by olga)" in page


def test_retry_the_stuck_step_names_the_operator(staff_client, catalog, pipeline):
    order = order_in("stuck", pipeline)
    FailedDelivery.objects.create(
        event_id="00000000-0000-0000-0000-000000000001",
        subscriber="billing.on_order_placed",
        event_type="order.placed",
        aggregate_id=str(order.pk),
        envelope={"id": "00000000-0000-0000-0000-000000000001", "type": "order.placed"},
        attempts=3,
        last_error="Traceback …\nConnectionError: Stripe did not answer",
    )
    page = page_of(staff_client, order).content.decode()
    assert "billing.on_order_placed failed on order.placed" in page
    assert "ConnectionError: Stripe did not answer" in page
    response = staff_client.post(f"/admin/desk/orders/{order.pk}/retry/")
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.stuck_since is None
    note = order.timeline.filter(type="note").last()
    assert note.detail["by"] == "olga"


def test_clearing_the_stuck_flag_in_the_admin_names_the_operator(staff_client, catalog, pipeline):
    order = order_in("stuck", pipeline)
    staff_client.post(
        "/admin/orders/order/",
        {"action": "clear_stuck", "_selected_action": [str(order.pk)]},
    )
    order.refresh_from_db()
    assert order.stuck_since is None
    note = order.timeline.filter(type="note").last()
    assert note.detail == {"message": "Stuck flag cleared.", "by": "olga"}
