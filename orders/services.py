"""Writes of the orders app: checkout, the one transition function, the facts others report."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

import outbox
from chargeflow.db import prepared_cursor
from chargeflow.errors import ApplicationError, ConflictError
from chargeflow.money import quantize
from orders.models import (
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    Order,
    OrderCreditNote,
    OrderLine,
    Product,
    TimelineEntry,
)
from orders.pricing import PriceLine
from orders.selectors import checkout_products, price_quote
from orders.tokens import order_link
from outbox import current_event, publish

logger = logging.getLogger(__name__)


class OutOfStockError(ConflictError):
    code = "out_of_stock"


@dataclass(frozen=True)
class CartItem:
    sku: str
    quantity: int


def request_fingerprint(payload) -> str:
    """What an idempotency key is bound to: a hash of the request, so the same key with another
    request is recognised as a conflict."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _merge_items(items: list[CartItem]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for item in items:
        if item.quantity < 1:
            raise ApplicationError("Quantity must be at least 1.", code="invalid_quantity")
        merged[item.sku] = merged.get(item.sku, 0) + item.quantity
    if not merged:
        raise ApplicationError("The order has no items.", code="empty_order")
    return merged


def order_checkout(
    *,
    email: str,
    shipping_address: dict[str, str],
    items: list[CartItem],
    payment_method: str,
    customer=None,
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> tuple[Order, bool]:
    """Place an order: snapshot prices, write the order and `order.placed`, reserve the stock,
    in one transaction. With an idempotency key, the same key returns the same order (and a
    different request under the same key is a conflict). Returns (order, created).

    The key is not looked up first: the order's unique key finds a replay when the order row is
    inserted (one round trip less for every new order; issue 11).

    On PostgreSQL, called with no transaction open (the API), the whole checkout is ONE
    statement sent in autocommit (`_order_place`): one round trip, commit included. Inside a
    transaction, and on SQLite, the ORM path below (`_order_create`) does the same writes."""
    one_statement = _one_statement_possible()
    for attempt in range(3):
        try:
            place = _order_place if one_statement else _order_create
            return place(
                email=email,
                shipping_address=shipping_address,
                items=items,
                payment_method=payment_method,
                customer=customer,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                fresh=attempt > 0,
            ), True
        except _CatalogChanged:
            if attempt == 2:
                raise ConflictError(
                    "The catalog changed while placing the order: try again.",
                    code="catalog_changed",
                ) from None
        except (IntegrityError, ApplicationError):
            # A replay, or a concurrent request with the same key that committed first (its
            # unique key blocks this insert until then): the same order. A replay also wins
            # over a product since sold out or withdrawn.
            existing = _order_for_key(idempotency_key, fingerprint) if idempotency_key else None
            if existing is None:
                raise
            return existing, False
    raise AssertionError("unreachable")


class _CatalogChanged(Exception):
    """A product's price, currency or availability changed between reading it and reserving
    its stock: the checkout is redone on the new catalog."""


def _order_for_key(key: str, fingerprint: str) -> Order | None:
    order = Order.objects.filter(idempotency_key=key).first()
    if order and order.request_fingerprint != fingerprint:
        raise ConflictError(
            "This Idempotency-Key was already used with a different request.",
            code="idempotency_key_reused",
        )
    return order


def _stock_reserve(products: list[Product], wanted: dict[str, int]) -> None:
    """Take the stock, all or nothing, as the last writes of the checkout's transaction: one
    conditional UPDATE per product in primary-key order (concurrent checkouts never deadlock).
    The UPDATE is the reservation (it cannot take stock below zero) and the row lock, held
    from here to the commit only, so buyers of one product queue for milliseconds instead of
    for the whole checkout (issue 11). It also re-checks the price read without a lock: the
    order's prices are the ones in force when its stock was taken."""
    short = []
    for product in products:
        quantity = wanted[product.sku]
        taken = Product.objects.filter(
            pk=product.pk,
            is_active=True,
            price=product.price,
            currency=product.currency,
            stock__gte=quantity,
        ).update(stock=F("stock") - quantity)
        if taken:
            continue
        now = Product.objects.filter(pk=product.pk).values(
            "is_active", "price", "currency", "stock"
        )
        now = now.first()
        if now is None or (now["is_active"], now["price"], now["currency"]) != (
            True,
            product.price,
            product.currency,
        ):
            raise _CatalogChanged
        short.append({"sku": product.sku, "requested": quantity, "available": now["stock"]})
    if short:
        by_sku = {p.sku: p for p in products}
        names = ", ".join(by_sku[s["sku"]].name for s in short)
        raise OutOfStockError(f"Not enough stock for: {names}.", extra={"items": short})


@transaction.atomic
def _order_create(
    *,
    email: str,
    shipping_address: dict[str, str],
    items: list[CartItem],
    payment_method: str,
    customer,
    idempotency_key: str | None,
    fingerprint: str,
    fresh: bool = True,
) -> Order:
    wanted = _merge_items(items)
    # Read without a lock: _stock_reserve locks each row last and briefly, and re-checks price.
    products = list(Product.objects.filter(sku__in=wanted, is_active=True).order_by("pk"))
    by_sku = {p.sku: p for p in products}
    unknown = sorted(set(wanted) - set(by_sku))
    if unknown:
        raise ApplicationError(
            f"Unknown product: {', '.join(unknown)}.", code="unknown_sku", extra={"skus": unknown}
        )
    if len({p.currency for p in products}) != 1:
        raise ApplicationError("All items must be in one currency.", code="mixed_currency")
    # The prices read here are the order's: _stock_reserve confirms them when it takes the stock.
    order = order_write(
        email=email,
        shipping_address=shipping_address,
        lines=[PriceLine(p.sku, p.name, wanted[p.sku], p.price) for p in map(by_sku.get, wanted)],
        currency=products[0].currency,
        payment_method=payment_method,
        customer=customer,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        products=by_sku,
    )
    _stock_reserve(products, wanted)
    return order


# --- The checkout in one statement (PostgreSQL, no transaction open: the API; issue 11) -------


def _one_statement_possible() -> bool:
    return (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and getattr(settings, "CHECKOUT_ONE_STATEMENT", True)
    )


_INSERTS: dict[type, tuple[str, list]] = {}


def _insert_of(model) -> tuple[str, list]:
    """(SQL, fields) of an INSERT of a model's rows given as one JSON array parameter: every
    concrete field, as Django's own INSERT names them, but an auto-incremented primary key.
    PostgreSQL turns the JSON into rows (`jsonb_populate_recordset`, each value through its
    column's type): one parameter per table, nothing for the ORM to compile."""
    if model not in _INSERTS:
        opts = model._meta
        fields = [
            f
            for f in opts.local_concrete_fields
            if not (f.primary_key and f.get_internal_type() in ("AutoField", "BigAutoField"))
            and not getattr(f, "generated", False)
        ]
        qn = connection.ops.quote_name
        columns = ", ".join(qn(f.column) for f in fields)
        table = qn(opts.db_table)
        sql = (
            f"INSERT INTO {table} ({columns}) SELECT {columns} "  # noqa: S608 (the model's names)
            f"FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)"
        )
        _INSERTS[model] = (sql, fields)
    return _INSERTS[model]


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()  # to the microsecond, as the ORM stores it
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    raise TypeError(f"{type(value).__name__} in a checkout row")


# How each inserted field's value is read and written into the row's JSON: as it is (JSON
# already, or `_json_value` decides), str() (UUID, Decimal), isoformat() (a datetime), or
# pre_save() first (auto_now, as Model.save() sets it).
_AS_IS, _STR, _ISO, _PRE_SAVE = range(4)
_ROW_SPECS: dict[type, list[tuple[str, str, int, Any]]] = {}


def _row_spec(model) -> list[tuple[str, str, int, Any]]:
    spec = _ROW_SPECS.get(model)
    if spec is None:
        spec = []
        for f in _insert_of(model)[1]:
            internal = f.get_internal_type()
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                kind = _PRE_SAVE
            elif internal == "DateTimeField":
                kind = _ISO
            elif internal in ("UUIDField", "DecimalField"):
                kind = _STR
            else:
                kind = _AS_IS
            spec.append((f.column, f.attname, kind, f))
        _ROW_SPECS[model] = spec
    return spec


def _insert_statement(model, instances: list) -> tuple[str, list]:
    """The INSERT of these unsaved instances (the values their fields hold, `auto_now` set as
    Model.save() sets it), with the rows as one JSON parameter. The same values as each field's
    pre_save() read through `_json_value`, with the conversion chosen once per field."""
    sql = _insert_of(model)[0]
    spec = _row_spec(model)
    rows = []
    for instance in instances:
        values = instance.__dict__
        row = {}
        for column, attname, kind, field in spec:
            value = field.pre_save(instance, True) if kind == _PRE_SAVE else values[attname]
            if kind == _STR:
                if isinstance(value, (uuid.UUID, Decimal)):
                    value = str(value)
            elif kind and isinstance(value, datetime):
                value = value.isoformat()
            row[column] = value
        rows.append(row)
    return sql, [json.dumps(rows, default=_json_value)]


_NEW_SPECS: dict[type, tuple[list, dict]] = {}


def _unsaved(model, **values):
    """`model(**values)`, built the way Django builds a row it read (`Model(*values)`, every
    concrete field in order, the ones not given from their defaults): the same instance for a
    third of the CPU of keyword arguments (the checkout builds an order of 35 fields; issue 11).
    A relation is given by name (`order=order`) or attname (`order_id=...`)."""
    spec = _NEW_SPECS.get(model)
    if spec is None:
        fields = list(model._meta.concrete_fields)
        relations = {f.name: f for f in fields if f.is_relation}
        spec = _NEW_SPECS[model] = (fields, relations)
    fields, relations = spec
    related = []
    for name in [name for name in values if name in relations]:
        field, obj = relations[name], values.pop(name)
        values[field.attname] = None if obj is None else getattr(obj, field.target_field.attname)
        related.append((field, obj))
    args = [values.pop(f.attname) if f.attname in values else f.get_default() for f in fields]
    if values:
        raise TypeError(f"{model.__name__} has no field(s) {', '.join(values)}")
    instance = model(*args)
    for field, obj in related:
        field.set_cached_value(instance, obj)  # as the descriptor does for `order=order`
    return instance


def _array_literal(values) -> str:
    """A PostgreSQL array literal of `values` (each quoted; the SQL casts it: `%s::text[]`):
    psycopg's array adaptation costs more CPU than the rest of the statement's parameters."""
    quoted = (str(v).replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


def _stock_missed(exc: DatabaseError) -> list[dict] | None:
    """The misses `orders_stock_take()` reported ([{id, changed, available}]), or None when the
    statement failed for another reason (e.g. the Idempotency-Key's unique index)."""
    diag = getattr(exc.__cause__, "diag", None)
    if diag is None or diag.message_primary != "orders_stock_take":
        return None
    return json.loads(diag.message_detail)


def _order_place(
    *,
    email: str,
    shipping_address: dict[str, str],
    items: list[CartItem],
    payment_method: str,
    customer,
    idempotency_key: str | None,
    fingerprint: str,
    fresh: bool,
) -> Order:
    """The checkout as one SQL statement in autocommit (its own transaction, one round trip):
    the order, its lines, its timeline row and `order.placed` (`outbox.publish_statement`) are
    inserted, then `orders_stock_take()` (orders migration 0007) takes the stock, the statement's
    last work: each product row is locked from its conditional UPDATE to the commit that
    follows at once. The products, tax rule and shipping zone come from this process's cache
    (orders.selectors); the UPDATE re-checks each product as read (active, SKU, name, price,
    currency) and a miss rolls everything back: `_CatalogChanged` (redone with `fresh` reads)
    or OutOfStockError. The same rows, values and event as `_order_create` + `order_write`."""
    wanted = _merge_items(items)
    by_sku = checkout_products(skus=wanted, fresh=fresh)
    unknown = sorted(set(wanted) - set(by_sku))
    if unknown:
        raise ApplicationError(
            f"Unknown product: {', '.join(unknown)}.", code="unknown_sku", extra={"skus": unknown}
        )
    products = sorted(by_sku.values(), key=lambda p: p.pk)
    if len({p.currency for p in products}) != 1:
        raise ApplicationError("All items must be in one currency.", code="mixed_currency")
    lines = [PriceLine(p.sku, p.name, wanted[p.sku], p.price) for p in map(by_sku.get, wanted)]
    quote = price_quote(
        lines=lines,
        country=shipping_address["country"],
        currency=products[0].currency,
        cached=True,
    )
    now = timezone.now()
    order = _unsaved(
        Order,
        email=email,
        customer=customer,
        ship_name=shipping_address["name"],
        ship_line1=shipping_address["line1"],
        ship_line2=shipping_address.get("line2", ""),
        ship_city=shipping_address["city"],
        ship_postal_code=shipping_address["postal_code"],
        ship_country=shipping_address["country"],
        payment_method=payment_method,
        currency=quote.currency,
        payment_status=Order.PaymentStatus.PENDING,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        subtotal=quote.subtotal,
        shipping_fee=quote.shipping,
        tax=quote.tax,
        total=quote.total,
        tax_name=quote.tax_name,
        tax_rate=quote.tax_rate,
        shipping_zone=quote.shipping_zone,
        prices_include_tax=quote.prices_include_tax,
        goods_shown=quote.goods_shown,
        shipping_shown=quote.shipping_shown,
        created_at=now,
        last_progress_at=now,
    )
    order_lines = [
        _unsaved(
            OrderLine,
            order=order,
            product_id=by_sku[line.sku].pk,
            sku=line.sku,
            name=line.name,
            unit_price=line.unit_price,
            quantity=line.quantity,
            line_total=quantize(line.unit_price * line.quantity),
        )
        for line in lines
    ]
    event = current_event()
    entry = _unsaved(
        TimelineEntry,
        order=order,
        type=TimelineEntry.Type.STATUS_CHANGED,
        at=event.occurred_at if event is not None else now,
        detail={"from": None, "to": order.status},
    )
    order_sql, order_params = _insert_statement(Order, [order])
    lines_sql, lines_params = _insert_statement(OrderLine, order_lines)
    entry_sql, entry_params = _insert_statement(TimelineEntry, [entry])
    event_sql, event_params = outbox.publish_statement(
        "order.placed", order.id, _order_placed_data(order, order_lines, quote)
    )
    # Statements built above from the models' names; every value is a parameter.
    sql = (
        f"WITH placed AS ({order_sql} RETURNING 1), lines AS ({lines_sql} RETURNING 1), "  # noqa: S608
        f"timeline AS ({entry_sql} RETURNING 1), event AS ({event_sql}) "
        # The counts make every insert run first: the stock is taken last, right before commit.
        "SELECT orders_stock_take(%s::bigint[], %s::integer[], %s::numeric[], %s::text[], "
        "%s::text[], %s::text) FROM (SELECT count(*) FROM placed) AS o, "
        "(SELECT count(*) FROM lines) AS l, (SELECT count(*) FROM timeline) AS t, "
        "(SELECT count(*) FROM event) AS e"
    )
    params = [
        *order_params,
        *lines_params,
        *entry_params,
        *event_params,
        _array_literal(p.pk for p in products),
        _array_literal(wanted[p.sku] for p in products),
        _array_literal(p.price for p in products),
        _array_literal(p.sku for p in products),
        _array_literal(p.name for p in products),
        products[0].currency,
    ]
    try:
        # Prepared per connection (server-side parameters): PostgreSQL parses and plans this
        # statement once per connection instead of for every order (chargeflow/db.py).
        with prepared_cursor() as cursor:
            cursor.execute(sql, params)
    except DatabaseError as exc:
        missed = _stock_missed(exc)
        if missed is None:
            raise
        if any(m["changed"] for m in missed):
            raise _CatalogChanged from None
        by_pk = {p.pk: p for p in products}
        short = [
            {
                "sku": by_pk[m["id"]].sku,
                "requested": wanted[by_pk[m["id"]].sku],
                "available": m["available"],
            }
            for m in sorted(missed, key=lambda m: m["id"])
        ]
        names = ", ".join(by_pk[m["id"]].name for m in sorted(missed, key=lambda m: m["id"]))
        raise OutOfStockError(f"Not enough stock for: {names}.", extra={"items": short}) from None
    logger.info("order %s (%s) placed", order.number, order.id)  # no email: PII stays out of logs
    order._state.adding = False
    order._state.db = connection.alias
    order._prefetched_objects_cache = {
        "lines": order_lines,
        "credit_notes": [],
        "timeline": [entry],
    }
    return order


def stock_take(wanted: dict[str, int]) -> list[Product]:
    """Take `wanted` units ({sku: quantity}) off the shelf, all or nothing (OutOfStockError), in
    the caller's transaction. Returns the products in the order asked. The product rows are
    locked in primary-key order, so concurrent checkouts never deadlock."""
    products = list(
        Product.objects.select_for_update(of=("self",))
        .filter(sku__in=wanted, is_active=True)
        .order_by("pk")
    )
    by_sku = {p.sku: p for p in products}
    unknown = sorted(set(wanted) - set(by_sku))
    if unknown:
        raise ApplicationError(
            f"Unknown product: {', '.join(unknown)}.", code="unknown_sku", extra={"skus": unknown}
        )
    short = []
    for product in products:
        # A conditional update is the reservation: it cannot take stock below zero.
        reserved = Product.objects.filter(pk=product.pk, stock__gte=wanted[product.sku]).update(
            stock=F("stock") - wanted[product.sku]
        )
        if not reserved:
            short.append(
                {"sku": product.sku, "requested": wanted[product.sku], "available": product.stock}
            )
    if short:
        names = ", ".join(by_sku[s["sku"]].name for s in short)
        raise OutOfStockError(f"Not enough stock for: {names}.", extra={"items": short})
    if len({p.currency for p in products}) != 1:
        raise ApplicationError("All items must be in one currency.", code="mixed_currency")
    return [by_sku[sku] for sku in wanted]


def stock_put_back(quantities: dict[str, int]) -> None:
    """Put units taken by `stock_take` back on the shelf (in the caller's transaction)."""
    for sku, quantity in sorted(quantities.items()):
        Product.objects.filter(sku=sku).update(stock=F("stock") + quantity)


def order_write(
    *,
    email: str,
    shipping_address: dict[str, str],
    lines: list[PriceLine],
    currency: str,
    customer,
    payment_method: str = "",
    payment_intent: str = "",
    order_id=None,
    number: str = "",
    idempotency_key: str | None = None,
    fingerprint: str = "",
    products: dict[str, Product] | None = None,
) -> Order:
    """Write a placed order whose stock is already taken, and publish `order.placed`, in the
    caller's transaction. Its totals are the quote of `lines` (their prices fixed when the stock
    was taken): the same calculation the cart and the checkout showed."""
    quote = price_quote(lines=lines, country=shipping_address["country"], currency=currency)
    extra = {"id": order_id, "number": number} if order_id else {}
    if products is None:
        products = {p.sku: p for p in Product.objects.filter(sku__in=[ln.sku for ln in lines])}
    order = Order.objects.create(
        **extra,
        email=email,
        customer=customer,
        ship_name=shipping_address["name"],
        ship_line1=shipping_address["line1"],
        ship_line2=shipping_address.get("line2", ""),
        ship_city=shipping_address["city"],
        ship_postal_code=shipping_address["postal_code"],
        ship_country=shipping_address["country"],
        payment_method=payment_method,
        payment_intent=payment_intent,
        currency=quote.currency,
        payment_status=Order.PaymentStatus.PENDING,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        subtotal=quote.subtotal,
        shipping_fee=quote.shipping,
        tax=quote.tax,
        total=quote.total,
        tax_name=quote.tax_name,
        tax_rate=quote.tax_rate,
        shipping_zone=quote.shipping_zone,
        prices_include_tax=quote.prices_include_tax,
        goods_shown=quote.goods_shown,
        shipping_shown=quote.shipping_shown,
    )
    order_lines = OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            product=products[line.sku],
            sku=line.sku,
            name=line.name,
            unit_price=line.unit_price,
            quantity=line.quantity,
            line_total=quantize(line.unit_price * line.quantity),
        )
        for line in lines
    )
    entries = [
        _timeline(order, TimelineEntry.Type.STATUS_CHANGED, {"from": None, "to": order.status})
    ]
    if payment_intent:
        entries.append(
            _timeline(
                order,
                TimelineEntry.Type.NOTE,
                {
                    "message": f"Card authorized for {order.total} {order.currency} at checkout; "
                    "it is charged when the invoice is issued."
                },
            )
        )
    publish("order.placed", order.id, _order_placed_data(order, order_lines, quote))
    logger.info("order %s (%s) placed", order.number, order.id)  # no email: PII stays out of logs
    # As order_detail_queryset() would read it back: the API answers without re-reading.
    order._prefetched_objects_cache = {
        "lines": order_lines,
        "credit_notes": [],
        "timeline": entries,
    }
    return order


def _order_placed_data(order: Order, order_lines: list[OrderLine], quote) -> dict[str, Any]:
    """The `order.placed` payload (invoicing, billing, shipping and notifications consume it)."""
    payment = {"payment_intent": order.payment_intent} if order.payment_intent else {}
    if order.payment_method:
        payment["payment_method"] = order.payment_method
    return {
        "order_id": str(order.id),
        "number": order.number,
        "email": order.email,
        "currency": order.currency,
        "payment_method": order.payment_method,
        # How it pays (additive to version 1): an authorization from the checkout page
        # (`payment_intent`, captured after the invoice) or a `payment_method` to charge.
        "payment": payment,
        "shipping_address": order.shipping_address,
        "items": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "line_total": line.line_total,
            }
            for line in order_lines
        ],
        # Fixed here (additive to version 1): invoicing documents them, billing charges
        # exactly `totals.total`. Line prices are in the catalog's terms (`pricing`).
        "totals": quote.totals(),
        "pricing": quote.pricing(),
        "order_url": order_link(order),
    }


def _timeline(
    order: Order | None, type_: TimelineEntry.Type, detail: dict[str, Any], *, order_id=None
) -> TimelineEntry:
    """A timeline row, dated when its fact happened: while a subscriber handles an event, the
    event's `occurred_at` (a delivery retried for minutes must not put "payment received" after
    the email that reported it); otherwise now (checkout, an operator's action). `order_id`
    instead of the order: a row that needs nothing of the order (no lock, no read)."""
    row = _timeline_row(order, type_, detail, order_id=order_id)
    row.save(force_insert=True)
    return row


def _timeline_row(
    order: Order | None, type_: TimelineEntry.Type, detail: dict[str, Any], *, order_id=None
) -> TimelineEntry:
    """`_timeline`'s row, not saved yet (`_Writes`)."""
    event = current_event()
    at = event.occurred_at if event is not None else timezone.now()
    if order is None:
        return TimelineEntry(order_id=order_id, type=type_, at=at, detail=detail)
    return TimelineEntry(order=order, type=type_, at=at, detail=detail)


class _Writes:
    """What a fact and the move it causes write on one locked order, saved together: one
    UPDATE of the order's changed fields and one INSERT of its timeline rows (in order)."""

    def __init__(self, order: Order):
        self.order = order
        self.fields: list[str] = []
        self.rows: list[TimelineEntry] = []

    def update(self, *fields: str) -> None:
        self.fields += [f for f in fields if f not in self.fields]

    def timeline(self, type_: TimelineEntry.Type, detail: dict[str, Any]) -> None:
        self.rows.append(_timeline_row(self.order, type_, detail))

    def save(self) -> None:
        if self.fields:
            self.order.save(update_fields=[*self.fields, "updated_at"])
        if len(self.rows) == 1:
            self.rows[0].save(force_insert=True)
        elif self.rows:
            TimelineEntry.objects.bulk_create(self.rows)
        self.fields, self.rows = [], []


def _lock(order_id) -> Order:
    return Order.objects.select_for_update(of=("self",)).get(pk=order_id)


@transaction.atomic
def order_transition(*, order_id, to: str, reason: str = "") -> bool:
    """The one way an order changes status: lock, check the move against ALLOWED_TRANSITIONS,
    write the timeline row, run the effects of entering the new status. Returns False (and
    changes nothing) for a move that is not allowed, e.g. a late event after a later status."""
    return _transition(_lock(order_id), to=to, reason=reason)


def _transition(order: Order, *, to: str, reason: str = "", writes: _Writes | None = None) -> bool:
    """`order_transition` on an order already locked in the caller's transaction (a fact and
    the move it causes, recorded under one lock: `then=` of the `order_record_*` services).
    `writes`: the fact's own writes, not saved yet: saved with the move's (or alone)."""
    writes = writes or _Writes(order)
    if to == order.status or to not in ALLOWED_TRANSITIONS[order.status]:
        if to != order.status:
            logger.info(
                "order %s: ignored move %s -> %s (%s)", order.id, order.status, to, reason or "-"
            )
        writes.save()
        return False
    previous = order.status
    order.status = to
    order.last_progress_at = timezone.now()
    order.stuck_since = None
    writes.update("status", "last_progress_at", "stuck_since")
    detail = {"from": previous, "to": to}
    if reason:
        detail["reason"] = reason
    writes.timeline(TimelineEntry.Type.STATUS_CHANGED, detail)
    writes.save()
    logger.info("order %s: %s -> %s", order.id, previous, to)

    if to in (Order.Status.CANCELLED, Order.Status.REFUNDED):
        _stock_release(order)
    if to == Order.Status.CANCELLED:
        publish(
            "order.cancelled",
            order.id,
            _order_summary(
                order,
                reason=reason,
                # Additive: whether a credit note follows (an invoice was issued) and whether a
                # declined payment is the cause (told in the same email).
                invoice_number=order.invoice_number,
                payment_failed=order.payment_status == "failed",
            ),
        )
    elif to == Order.Status.DELIVERED:
        publish("order.completed", order.id, _order_summary(order))
    return True


def _order_summary(order: Order, **extra) -> dict[str, Any]:
    return {
        "order_id": str(order.id),
        "number": order.number,
        "email": order.email,
        "status": order.status,
        **extra,
    }


def _stock_release(order: Order) -> None:
    """Give the order's reserved units back, once (stock_released_at guards it), less the units
    an operator already put back (`order_restock`)."""
    if order.stock_released_at:
        return
    restocked = restocked_quantities(order)
    for line in order.lines.order_by("product_id"):
        units = line.quantity - restocked.get(line.pk, 0)
        if units > 0:
            Product.objects.filter(pk=line.product_id).update(stock=F("stock") + units)
    order.stock_released_at = timezone.now()
    order.save(update_fields=["stock_released_at", "updated_at"])
    _timeline(order, TimelineEntry.Type.NOTE, {"message": "Reserved stock released."})


# Inside an event delivery's transaction, no savepoint of its own (a SAVEPOINT and a RELEASE
# round trip per call; a failure rolls the whole delivery back anyway); alone, a transaction.
@transaction.atomic(savepoint=False)
def order_record_invoice(
    *, order_id, number: str, pdf_path: str, totals: dict[str, Decimal | str], then: str = ""
) -> None:
    """The invoice's number and PDF. The totals are the order's own, fixed when it was placed;
    only an order placed before that existed takes them from the invoice. `then`: the status
    to move to afterwards, under the same lock (as `order_transition` would)."""
    order = _lock(order_id)
    writes = _Writes(order)
    order.invoice_number = number
    order.invoice_pdf_path = pdf_path
    update = ["invoice_number", "invoice_pdf_path"]
    invoiced = {k: Decimal(totals[k]) for k in ("subtotal", "shipping", "tax", "total")}
    if order.total is None:
        order.subtotal, order.shipping_fee = invoiced["subtotal"], invoiced["shipping"]
        order.tax, order.total = invoiced["tax"], invoiced["total"]
        update += ["subtotal", "shipping_fee", "tax", "total"]
    elif invoiced["total"] != order.total:
        logger.error(
            "order %s: invoice %s total %s differs from the order's %s",
            order.id,
            number,
            invoiced["total"],
            order.total,
        )
    writes.update(*update)
    writes.timeline(
        TimelineEntry.Type.INVOICE_ISSUED, {"number": number, "total": str(order.total)}
    )
    if then:
        _transition(order, to=then, writes=writes)
    else:
        writes.save()


# Facts only move forward too: a late or duplicated event never overwrites a later fact (a
# payment.action_required delivered after payment.succeeded must not show "complete payment").
PAYMENT_STATUS_RANK = {
    "": 0,
    Order.PaymentStatus.PENDING: 1,
    Order.PaymentStatus.ACTION_REQUIRED: 2,
    Order.PaymentStatus.SUCCEEDED: 3,
    Order.PaymentStatus.FAILED: 3,
    Order.PaymentStatus.PARTIALLY_REFUNDED: 4,
    Order.PaymentStatus.REFUNDED: 5,
}
SHIPMENT_STATUS_RANK = {"": 0, "created": 1, "failed": 2, "delivered": 2}


def _is_forward(ranks: dict[str, int], current: str, new: str) -> bool:
    return ranks.get(new, 0) > ranks.get(current, 0)


@transaction.atomic(savepoint=False)  # as order_record_invoice
def order_record_payment(
    *,
    order_id,
    status: str,
    message: str = "",
    client_secret: str = "",
    then: str = "",
    reason: str = "",
) -> bool:
    """Record what billing reported about the payment. Returns False for a stale fact. `then`
    (with `reason`): the status to move to afterwards, stale fact or not, under the same lock
    (as `order_transition` would)."""
    order = _lock(order_id)
    writes = _Writes(order)
    recorded = _record_payment(writes, status=status, message=message, client_secret=client_secret)
    if then:
        _transition(order, to=then, reason=reason, writes=writes)
    else:
        writes.save()
    return recorded


def _record_payment(writes: _Writes, *, status: str, message: str, client_secret: str) -> bool:
    order = writes.order
    if not _is_forward(PAYMENT_STATUS_RANK, order.payment_status, status):
        logger.info(
            "order %s: ignored stale payment fact %s (now %s)",
            order.id,
            status,
            order.payment_status,
        )
        return False
    order.payment_status = status
    order.payment_message = message[:500]
    writes.update("payment_status", "payment_message")
    if client_secret:
        order.payment_client_secret = client_secret
        writes.update("payment_client_secret")
    detail = {"status": status}
    if message:
        detail["message"] = message
    writes.timeline(TimelineEntry.Type.PAYMENT, detail)
    return True


@transaction.atomic
def order_record_refund(*, order_id, amount: Decimal, full: bool, reason: str = "") -> None:
    order = _lock(order_id)
    order.refunded_amount = quantize(order.refunded_amount + Decimal(amount))
    # A partial refund reported after the full one does not un-refund the order.
    full = full or order.payment_status == Order.PaymentStatus.REFUNDED
    order.payment_status = (
        Order.PaymentStatus.REFUNDED if full else Order.PaymentStatus.PARTIALLY_REFUNDED
    )
    order.save(update_fields=["refunded_amount", "payment_status", "updated_at"])
    _timeline(order, TimelineEntry.Type.REFUND, {"amount": str(quantize(amount)), "reason": reason})


@transaction.atomic(savepoint=False)  # as order_record_invoice
def order_record_shipment(
    *,
    order_id,
    status: str,
    carrier: str = "",
    tracking_number: str = "",
    reason: str = "",
    then: str = "",
) -> bool:
    """Record what shipping reported. Returns False for a stale fact (nothing changes). `then`:
    the status to move to afterwards, stale fact or not, under the same lock (as
    `order_transition` would)."""
    order = _lock(order_id)
    writes = _Writes(order)
    recorded = _record_shipment(
        writes, status=status, carrier=carrier, tracking_number=tracking_number, reason=reason
    )
    if then:
        _transition(order, to=then, writes=writes)
    else:
        writes.save()
    return recorded


def _record_shipment(
    writes: _Writes, *, status: str, carrier: str, tracking_number: str, reason: str
) -> bool:
    order = writes.order
    if not _is_forward(SHIPMENT_STATUS_RANK, order.shipment_status, status):
        logger.info(
            "order %s: ignored stale shipment fact %s (now %s)",
            order.id,
            status,
            order.shipment_status,
        )
        return False
    order.shipment_status = status
    writes.update("shipment_status")
    if carrier:
        order.carrier = carrier
        order.tracking_number = tracking_number
        writes.update("carrier", "tracking_number")
    detail = {"status": status}
    if tracking_number:
        detail["tracking_number"] = tracking_number
    if reason:
        detail["reason"] = reason
    writes.timeline(TimelineEntry.Type.SHIPMENT, detail)
    return True


@transaction.atomic
def order_record_credit_note(*, order_id, number: str, amount: Decimal, pdf_path: str) -> None:
    order = _lock(order_id)
    OrderCreditNote.objects.get_or_create(
        number=number, defaults={"order": order, "amount": Decimal(amount), "pdf_path": pdf_path}
    )
    _timeline(
        order, TimelineEntry.Type.CREDIT_NOTE_ISSUED, {"number": number, "amount": str(amount)}
    )


@transaction.atomic
def order_record_authorization_released(*, order_id, amount: str, currency: str) -> None:
    order = _lock(order_id)
    _timeline(
        order,
        TimelineEntry.Type.NOTE,
        {"message": f"Card authorization of {amount} {currency} released: nothing was charged."},
    )


def order_record_email(*, order_id, kind: str, resend: bool = False, resent_by: str = "") -> None:
    """An email went to the customer: a timeline row (`email_sent`); an operator's resend is
    marked as one (`resend: true`, and who asked: `resent_by`), not told as a second email of
    its kind. One INSERT (atomic by itself): the row changes nothing of the order, so the order
    is neither locked nor read (the foreign key still refuses an unknown order)."""
    detail: dict[str, Any] = {"kind": kind}
    if resend:
        detail["resend"] = True
    if resent_by:
        detail["resent_by"] = resent_by
    _timeline(None, TimelineEntry.Type.EMAIL_SENT, detail, order_id=order_id)


def stuck_cutoff():
    return timezone.now() - timezone.timedelta(minutes=settings.STUCK_ORDER_MINUTES)


@transaction.atomic
def orders_flag_stuck() -> int:
    """Flag orders that made no progress for STUCK_ORDER_MINUTES (shown in the admin)."""
    return (
        Order.objects.exclude(status__in=FINAL_STATUSES)
        .filter(last_progress_at__lt=stuck_cutoff(), stuck_since__isnull=True)
        .update(stuck_since=timezone.now())
    )


@dataclass(frozen=True)
class RetryResult:
    """What a retry did, in counts (the desk and the admin show them)."""

    redelivered: int
    rearmed: int
    republished: int = 0

    @property
    def anything(self) -> bool:
        return bool(self.redelivered or self.rearmed or self.republished)


@transaction.atomic
def order_retry_stuck(*, order_id, by: str = "") -> RetryResult:
    """Retry the step an order is stuck on through the outbox (`outbox.redeliver`: failed
    deliveries sent again, unpublished events made due, or, with neither, every event of the
    order published again; the inbox keeps a handled step from running twice), and record it on
    the timeline (with who retried, `by`)."""
    order = _lock(order_id)
    result = outbox.redeliver(order.id)
    order.stuck_since = None
    order.last_progress_at = timezone.now()
    order.save(update_fields=["stuck_since", "last_progress_at", "updated_at"])
    _timeline(
        order,
        TimelineEntry.Type.NOTE,
        {
            "message": "Operator retried the stuck step.",
            **({"by": by} if by else {}),
            "redelivered": list(result.redelivered),
            "rearmed_events": result.rearmed,
            "republished_events": result.republished,
        },
    )
    logger.info(
        "order %s: retry of the stuck step, %s redelivery(ies), %s event(s) re-armed, "
        "%s published again",
        order.id,
        len(result.redelivered),
        result.rearmed,
        result.republished,
    )
    return RetryResult(
        redelivered=len(result.redelivered),
        rearmed=result.rearmed,
        republished=result.republished,
    )


# --- Operator actions (the desk) -------------------------------------------------------------

RESTOCK = TimelineEntry.Type.RESTOCK


class RestockError(ApplicationError):
    code = "restock_refused"


def restocked_quantities(order: Order) -> dict[int, int]:
    """{line id: units an operator put back} from the order's restock timeline rows."""
    done: dict[int, int] = {}
    for entry in order.timeline.filter(type=RESTOCK):
        for line_id, units in (entry.detail.get("lines") or {}).items():
            done[int(line_id)] = done.get(int(line_id), 0) + int(units)
    return done


@transaction.atomic
def order_note_add(*, order_id, message: str, by: str, **detail: Any) -> TimelineEntry:
    """A timeline row saying what an operator did (refund asked, email resent …) and who."""
    order = _lock(order_id)
    return _timeline(order, TimelineEntry.Type.NOTE, {"message": message, "by": by, **detail})


@transaction.atomic
def order_restock(*, order_id, quantities: dict[int, int], by: str, reason: str = "") -> int:
    """Put units of the order's lines back into stock (an operator's refund with "restock"):
    never more of a line than was sold, and nothing once the order's whole reservation was given
    back (a cancelled or refunded order). Returns the units put back; writes a timeline row."""
    order = _lock(order_id)
    wanted = {int(k): int(v) for k, v in quantities.items() if int(v) > 0}
    if not wanted:
        return 0
    if order.stock_released_at:
        raise RestockError(
            f"Order {order.number}'s stock was already given back when it ended "
            f"({order.get_status_display().lower()}): nothing to restock."
        )
    lines = {line.pk: line for line in order.lines.order_by("product_id")}
    done = restocked_quantities(order)
    for line_id, units in wanted.items():
        line = lines.get(line_id)
        if line is None:
            raise RestockError(f"Line {line_id} is not a line of order {order.number}.")
        left = line.quantity - done.get(line_id, 0)
        if units > left:
            raise RestockError(
                f"{line.sku}: {units} unit(s) asked, "
                f"only {left} of {line.quantity} left to restock."
            )
    for line_id in sorted(wanted, key=lambda pk: lines[pk].product_id):
        Product.objects.filter(pk=lines[line_id].product_id).update(
            stock=F("stock") + wanted[line_id]
        )
    units = sum(wanted.values())
    _timeline(
        order,
        RESTOCK,
        {
            "lines": {str(k): v for k, v in wanted.items()},
            "skus": {lines[k].sku: v for k, v in wanted.items()},
            "by": by,
            "reason": reason,
        },
    )
    logger.info("order %s: %s unit(s) restocked by %s", order.id, units, by)
    return units


@transaction.atomic
def order_link_request(*, order_id) -> None:
    """Someone asked "find my order" with this order's number and email address: publish
    `order.link_requested` with a fresh guest link; notifications emails it to the order's
    address (never to whoever asked), at most once per ORDER_LINK_EMAIL_COOLDOWN_MINUTES."""
    order = Order.objects.get(pk=order_id)
    publish(
        "order.link_requested",
        order.id,
        {
            "order_id": str(order.id),
            "number": order.number,
            "email": order.email,
            "order_url": order_link(order),
        },
    )


def order_unflag_stuck(*, order_id, by: str) -> bool:
    """An operator fixed the cause and clears the stuck flag; the timeline says who."""
    order = _lock(order_id)
    if order.stuck_since is None:
        return False
    order.stuck_since = None
    order.last_progress_at = timezone.now()
    order.save(update_fields=["stuck_since", "last_progress_at", "updated_at"])
    _timeline(order, TimelineEntry.Type.NOTE, {"message": "Stuck flag cleared.", "by": by})
    return True
