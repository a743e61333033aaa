"""Reads of the orders app."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from orders.models import Order, OrderCreditNote, OrderLine, Product, TimelineEntry
from orders.tokens import order_token_valid


def product_list(*, search: str = "") -> QuerySet[Product]:
    qs = Product.objects.filter(is_active=True).order_by("name", "id")
    if search:
        qs = qs.filter(name__icontains=search)
    return qs


def order_detail_queryset() -> QuerySet[Order]:
    return Order.objects.prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("id")),
        Prefetch("credit_notes", queryset=OrderCreditNote.objects.order_by("issued_at", "id")),
        Prefetch("timeline", queryset=TimelineEntry.objects.order_by("at", "id")),
    )


def order_for_viewer(*, order_id, user, token: str | None) -> Order | None:
    """The order if this viewer may see it (token holder, owner or staff), else None (-> 404)."""
    order = order_detail_queryset().filter(pk=order_id).first()
    if order is None:
        return None
    if order_token_valid(order.id, token):
        return order
    if (
        user is not None
        and user.is_authenticated
        and (user.is_staff or order.customer_id == user.pk)
    ):
        return order
    return None


def orders_of_customer(*, user) -> QuerySet[Order]:
    return Order.objects.filter(customer=user).prefetch_related("lines").order_by("-created_at")


def order_for_checkout_token(*, token: str) -> Order | None:
    """The order a storefront checkout form (its one-time token) already placed, if any."""
    return Order.objects.filter(idempotency_key=checkout_idempotency_key(token)).first()


def checkout_idempotency_key(token: str) -> str:
    return f"storefront-checkout:{token}"
