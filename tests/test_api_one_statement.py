"""The API checkout on PostgreSQL with no transaction open: ONE statement in autocommit
(orders.services `_order_place`, issue 11). Everything tests/test_api.py asserts holds on this
path too (its tests run here again), and it answers, writes and publishes exactly what the ORM
path (`_order_create`, used inside a transaction and on SQLite) does."""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from orders.models import Order, OrderLine, Product, TaxRate, TimelineEntry
from orders.services import CartItem, order_checkout
from outbox.models import OutboxEvent
from tests import test_api
from tests.test_api import BODY, create

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def api():
    return APIClient()


# tests/test_api.py's contract tests, run again on the one-statement path (its `db` tests run in
# a transaction, where the checkout takes the ORM path).
test_create_returns_the_order_with_its_access_token = (
    test_api.test_create_returns_the_order_with_its_access_token
)
test_create_with_net_prices_adds_the_tax_and_still_adds_up = (
    test_api.test_create_with_net_prices_adds_the_tax_and_still_adds_up
)
test_same_key_and_body_return_the_same_order = test_api.test_same_key_and_body_return_the_same_order
test_same_key_with_another_body_is_a_conflict = (
    test_api.test_same_key_with_another_body_is_a_conflict
)
test_invalid_input_is_a_400_naming_the_field = test_api.test_invalid_input_is_a_400_naming_the_field
test_quantity_above_stock_is_a_409_and_reserves_nothing = (
    test_api.test_quantity_above_stock_is_a_409_and_reserves_nothing
)
test_order_is_visible_with_its_token_and_404_for_anyone_else = (
    test_api.test_order_is_visible_with_its_token_and_404_for_anyone_else
)
test_staff_and_the_owner_see_the_order = test_api.test_staff_and_the_owner_see_the_order


def _place(api, body=None, key="key-1", *, one_statement=True, settings=None):
    settings.CHECKOUT_ONE_STATEMENT = one_statement
    try:
        return create(api, body, key)
    finally:
        settings.CHECKOUT_ONE_STATEMENT = True


def _normalised(data):
    """An order body or event payload without what differs between two orders of one body."""
    data = copy.deepcopy(data)
    for key in ("id", "order_id", "number", "access_token"):
        data.pop(key, None)
    for entry in data.get("timeline", []):
        entry.pop("at")
    if "order_url" in data:
        data["order_url"] = data["order_url"].split("/orders/")[0]
    return data


def test_one_statement_per_checkout_and_the_same_answer_as_a_reread(api, catalog):
    create(api, key="warm")  # the process's caches hold the products and the tax rules now
    with CaptureQueriesContext(connection) as queries:
        response = create(api, key="counted")
    assert response.status_code == 201, response.content
    assert len(queries.captured_queries) == 1
    assert queries.captured_queries[0]["sql"].startswith("WITH placed AS (INSERT INTO")
    body = response.json()
    again = api.get(f"/api/v1/orders/{body['id']}/", HTTP_X_ORDER_TOKEN=body["access_token"])
    assert again.json() == {k: v for k, v in body.items() if k != "access_token"}


def test_the_body_rows_and_event_are_the_orm_paths(api, catalog, settings):
    fast = _place(api, key="fast", settings=settings)
    orm = _place(api, key="orm", one_statement=False, settings=settings)
    assert fast.status_code == orm.status_code == 201
    assert _normalised(fast.json()) == _normalised(orm.json())
    # The rows: every column but the ids, numbers, keys and times.
    a, b = Order.objects.get(idempotency_key="fast"), Order.objects.get(idempotency_key="orm")
    skip = {"id", "number", "idempotency_key", "created_at", "updated_at", "last_progress_at"}
    fields = [f.attname for f in Order._meta.concrete_fields if f.attname not in skip]
    assert {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}
    assert a.created_at == a.last_progress_at <= a.updated_at
    line_fields = ("product_id", "sku", "name", "unit_price", "quantity", "line_total")
    assert list(OrderLine.objects.filter(order=a).values_list(*line_fields)) == list(
        OrderLine.objects.filter(order=b).values_list(*line_fields)
    )
    assert list(TimelineEntry.objects.filter(order=a).values("type", "detail")) == list(
        TimelineEntry.objects.filter(order=b).values("type", "detail")
    )
    # The event: the same payload (and envelope fields) for invoicing, billing, shipping and
    # notifications.
    ea = OutboxEvent.objects.get(type="order.placed", aggregate_id=str(a.id))
    eb = OutboxEvent.objects.get(type="order.placed", aggregate_id=str(b.id))
    assert _normalised(ea.data) == _normalised(eb.data)
    assert ea.data["order_id"] == str(a.id) and ea.data["number"] == a.number
    assert ea.data["order_url"].startswith(f"{settings.SITE_URL}/orders/{a.id}/?token=")
    for field in ("version", "status", "attempts", "last_error", "published_at"):
        assert getattr(ea, field) == getattr(eb, field)
    assert abs((ea.occurred_at - a.created_at).total_seconds()) < 5
    # The answer's timeline row is the stored one, to the microsecond.
    assert fast.json()["timeline"][0]["at"] == TimelineEntry.objects.get(order=a).at.isoformat()


def test_a_price_changed_behind_the_cache_is_the_price_charged(api, catalog):
    create(api, key="warm")
    # Another process changes the price: no signal reaches this process's cache.
    Product.objects.filter(sku="MOUSE-01").update(price=Decimal("31.50"))
    body = create(api, key="after").json()
    assert [i["unit_price"] for i in body["items"]] == ["999.99", "31.50"]
    assert OutboxEvent.objects.get(aggregate_id=body["id"]).data["items"][1]["unit_price"] == (
        "31.50"
    )


def test_a_renamed_product_is_ordered_under_its_new_name(api, catalog):
    create(api, key="warm")
    Product.objects.filter(sku="LAPTOP-14").update(name="Laptop Pro")
    body = create(api, key="after").json()
    assert body["items"][0]["name"] == "Laptop Pro"


def test_a_withdrawn_product_is_an_unknown_sku_even_when_cached(api, catalog):
    create(api, key="warm")
    Product.objects.filter(sku="MOUSE-01").update(is_active=False)
    response = create(api, key="after")
    assert response.status_code == 400
    assert response.json() == {"items": [{}, {"sku": ["Unknown SKU 'MOUSE-01'."]}]}
    assert Order.objects.count() == 1


def test_a_shortage_rolls_back_every_write_of_the_statement(api, catalog):
    create(api, key="warm")
    laptop, mouse = Product.objects.get(sku="LAPTOP-14"), Product.objects.get(sku="MOUSE-01")
    Product.objects.filter(pk=mouse.pk).update(stock=0)
    before = (Order.objects.count(), OutboxEvent.objects.count(), TimelineEntry.objects.count())
    response = create(api, key="short")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Not enough stock for: Mouse.",
        "code": "out_of_stock",
        "items": [{"sku": "MOUSE-01", "requested": 1, "available": 0}],
    }
    assert (Order.objects.count(), OutboxEvent.objects.count(), TimelineEntry.objects.count()) == (
        before
    )
    assert Product.objects.get(pk=laptop.pk).stock == laptop.stock  # the laptop was not taken


def test_a_tax_rate_edited_in_this_process_applies_at_once(api, catalog):
    create(api, key="warm")
    TaxRate.objects.update_or_create(country="US", defaults={"rate": Decimal("0.1000")})
    body = create(api, key="after").json()
    assert body["totals"]["tax"] == "93.63"  # 1029.98 x 0.1 / 1.1


def test_an_authenticated_customer_is_attached(api, catalog, django_user_model):
    user = django_user_model.objects.create_user("buyer", "b@example.com", "pw-123456!")
    api.force_authenticate(user)
    body = create(api).json()
    assert Order.objects.get(pk=body["id"]).customer_id == user.pk


def test_concurrent_requests_with_one_key_place_one_order(catalog):
    barrier = threading.Barrier(6)

    def buy(_i):
        try:
            barrier.wait(timeout=10)
            order, created = order_checkout(
                email="a@example.com",
                shipping_address=BODY["shipping_address"],
                items=[CartItem("MOUSE-01", 1)],
                payment_method="pm_card_visa",
                idempotency_key="same",
                fingerprint="f",
            )
            return order.id, created
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(buy, range(6)))
    assert len({order_id for order_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 5 + [True]
    assert Order.objects.count() == 1
    assert OutboxEvent.objects.filter(type="order.placed").count() == 1
    assert Product.objects.get(sku="MOUSE-01").stock == catalog["MOUSE-01"].stock - 1


def test_a_committed_checkout_wakes_a_listening_relay(api, catalog):
    from outbox.relay import Listener

    listener = Listener()
    try:
        assert create(api).status_code == 201
        woken = list(listener.conn.notifies(timeout=5, stop_after=1))
        assert [n.channel for n in woken] == ["chargeflow_outbox"]
    finally:
        listener.close()


def test_one_read_of_the_catalog_serves_every_sku(api, catalog):
    create(api, key="warm")  # the first miss reads the whole (small) catalog once
    body = copy.deepcopy(BODY)
    body["items"] = [{"sku": "HEAD-01", "quantity": 1}]
    with CaptureQueriesContext(connection) as queries:
        response = create(api, body, key="other-sku")
    assert response.status_code == 201, response.content
    assert len(queries.captured_queries) == 1


def test_the_checkout_statement_is_prepared_once_per_connection(api, catalog):
    """chargeflow/db.py: server-side parameters and one prepared statement per connection,
    still counted by Django (CaptureQueriesContext) and still answering the same."""
    from django.db import connection as conn

    create(api, key="warm")
    with CaptureQueriesContext(conn) as queries:
        answers = [create(api, key=f"prepared-{i}") for i in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len(queries.captured_queries) == 3
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), sum(generic_plans + custom_plans) FROM pg_prepared_statements"
            " WHERE statement LIKE 'WITH placed AS (INSERT INTO%%'"
        )
        statements, runs = cursor.fetchone()
    assert statements == 1 and runs >= 4
    # A shortage raised inside the prepared statement is still a 409 with the same body.
    stock = Product.objects.get(sku="MOUSE-01").stock
    Product.objects.filter(sku="MOUSE-01").update(stock=0)
    short = create(api, key="short")
    assert short.status_code == 409, short.content
    assert short.json()["items"] == [{"sku": "MOUSE-01", "requested": 1, "available": 0}]
    Product.objects.filter(sku="MOUSE-01").update(stock=stock)
    # Turned off: Django's own cursor, the same answer.
    from django.test import override_settings

    with override_settings(DATABASE_PREPARED=False):
        assert create(api, key="unprepared").status_code == 201
