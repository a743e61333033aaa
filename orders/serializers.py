"""API representations (DESIGN.md §6). Amounts are decimal strings."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.urls import reverse
from rest_framework import serializers

from orders.countries import COUNTRY_CODES
from orders.models import Order, Product
from orders.tokens import order_access_token


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ("id", "sku", "name", "description", "price", "currency", "stock")


class ShippingAddressSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=100)
    postal_code = serializers.CharField(max_length=20)
    country = serializers.CharField(max_length=2, min_length=2)

    def validate_country(self, value: str) -> str:
        code = value.upper()
        if code not in COUNTRY_CODES:
            raise serializers.ValidationError(
                f"Unknown country code {value!r} (ISO 3166-1 alpha-2)."
            )
        return code


class OrderItemInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=32)
    quantity = serializers.IntegerField(min_value=1, max_value=1000)

    # Whether the SKU exists is checked by the checkout itself, in the query that reads the
    # products (one round trip less per checkout: issue 11); the view answers 400 with the same
    # body this serializer would (unknown_sku_errors).


def unknown_sku_errors(items: list[dict], unknown: list[str]) -> dict:
    """The 400 body for SKUs that are not (or no longer) on sale, shaped like a field error on
    each offending item: {"items": [{}, {"sku": ["Unknown SKU 'X'."]}]}."""
    return {
        "items": [
            {"sku": [f"Unknown SKU {item['sku']!r}."]} if item["sku"] in unknown else {}
            for item in items
        ]
    }


class OrderCreateSerializer(serializers.Serializer):
    """`payment_method` (charged after the invoice, as in the first release), or `payment_intent`
    (already authorized for the order's exact total: see POST /api/v1/payment-intents/)."""

    email = serializers.EmailField()
    shipping_address = ShippingAddressSerializer()
    items = OrderItemInputSerializer(many=True, allow_empty=False, max_length=100)
    payment_method = serializers.RegexField(
        r"^pm_[A-Za-z0-9_]+$",
        max_length=255,
        required=False,
        error_messages={"invalid": "Expected a Stripe PaymentMethod id such as pm_card_visa."},
    )
    payment_intent = serializers.RegexField(
        r"^pi_[A-Za-z0-9_]+$",
        max_length=255,
        required=False,
        error_messages={
            "invalid": "Expected a Stripe PaymentIntent id (pi_…) from /api/v1/payment-intents/."
        },
    )

    def validate(self, attrs):
        if bool(attrs.get("payment_method")) == bool(attrs.get("payment_intent")):
            message = "Give exactly one of payment_method and payment_intent."
            raise serializers.ValidationError(
                {"payment_method": [message], "payment_intent": [message]}
            )
        return attrs


# --- The checkout's fast path (issue 11) ------------------------------------------------------
# Building OrderCreateSerializer costs more CPU per request than the rest of the API checkout.
# A body that is plainly valid and already in normal form (strings trimmed, a JSON integer for
# the quantity, `payment_method`) is checked here in a few microseconds and gives exactly the
# serializer's validated_data; anything else, valid or not, goes through the serializer, so every
# 400 body is the serializer's own (orders/tests/test_fast_input.py compares the two).

_UNSAFE = re.compile("[\x00\ud800-\udfff]")  # DRF's CharField refuses NUL and surrogates
_PAYMENT_METHOD = re.compile(r"^pm_[A-Za-z0-9_]+$")
_ADDRESS = (("name", 200), ("line1", 200), ("city", 100), ("postal_code", 20))


def _plain(value, max_length: int) -> bool:
    """A string DRF's CharField keeps as it is: not blank, trimmed, short enough, no NUL."""
    return (
        type(value) is str
        and 0 < len(value) <= max_length
        and value.strip() == value
        and not _UNSAFE.search(value)
    )


def order_create_fast(data) -> dict | None:
    """OrderCreateSerializer's validated_data for a plainly valid `payment_method` body, else
    None (then the serializer decides, and words any error)."""
    if type(data) is not dict or "payment_intent" in data:
        return None
    email, address, items = data.get("email"), data.get("shipping_address"), data.get("items")
    method = data.get("payment_method")
    if not (_plain(email, 320) and _plain(method, 255) and _PAYMENT_METHOD.search(method)):
        return None
    if type(address) is not dict or type(items) is not list or not 0 < len(items) <= 100:
        return None
    valid_address = {}
    for field, max_length in _ADDRESS:
        if not _plain(value := address.get(field), max_length):
            return None
        valid_address[field] = value
    line2 = address.get("line2", "")
    if not (line2 == "" or _plain(line2, 200)):
        return None
    country = address.get("country")
    if not _plain(country, 2) or len(country) != 2 or country.upper() not in COUNTRY_CODES:
        return None
    valid_items = []
    for item in items:
        if type(item) is not dict:
            return None
        sku, quantity = item.get("sku"), item.get("quantity")
        if not (_plain(sku, 32) and type(quantity) is int and 1 <= quantity <= 1000):
            return None
        valid_items.append({"sku": sku, "quantity": quantity})
    try:
        validate_email(email)
    except DjangoValidationError:
        return None
    return {
        "email": email,
        "shipping_address": {
            "name": valid_address["name"],
            "line1": valid_address["line1"],
            "line2": line2,
            "city": valid_address["city"],
            "postal_code": valid_address["postal_code"],
            "country": country.upper(),
        },
        "items": valid_items,
        "payment_method": method,
    }


class PaymentIntentCreateSerializer(serializers.Serializer):
    """A quote for a cart shipped to a country, with a PaymentIntent for its exact total."""

    items = OrderItemInputSerializer(many=True, allow_empty=False, max_length=100)
    country = serializers.CharField(max_length=2, min_length=2)

    def validate_country(self, value: str) -> str:
        return ShippingAddressSerializer().validate_country(value)


def _document_url(request, name: str, order: Order, **kwargs) -> str:
    return reverse(name, kwargs={"order_id": order.id, **kwargs})


class OrderSerializer(serializers.Serializer):
    """The order as clients see it. `access_token` is added by the create view only."""

    def to_representation(self, order: Order) -> dict:
        return order_representation(order, self.context.get("request"))


def order_representation(order: Order, request=None) -> dict:
    """OrderSerializer's representation, without building a serializer (the create view)."""
    totals = None
    if order.total is not None:
        totals = {
            "subtotal": str(order.subtotal),
            "shipping": str(order.shipping_fee),
            "tax": str(order.tax),
            "total": str(order.total),
            "currency": order.currency,
        }
    invoice = None
    if order.invoice_number:
        invoice = {
            "number": order.invoice_number,
            "pdf_url": _document_url(request, "api:order-invoice-pdf", order),
        }
    shipment = None
    if order.shipment_status:
        shipment = {
            "carrier": order.carrier or None,
            "tracking_number": order.tracking_number or None,
            "status": order.shipment_status,
        }
    return {
        "id": str(order.id),
        "number": order.number,
        "status": order.status,
        "email": order.email,
        "items": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": str(line.unit_price),
                "line_total": str(line.line_total),
            }
            for line in order.lines.all()
        ],
        "totals": totals,
        "invoice": invoice,
        "credit_notes": [
            {
                "number": note.number,
                "amount": str(note.amount),
                "pdf_url": _document_url(
                    request, "api:order-credit-note-pdf", order, number=note.number
                ),
            }
            for note in order.credit_notes.all()
        ],
        "payment": {"status": order.payment_status} if order.payment_status else None,
        "shipment": shipment,
        "timeline": [
            {"type": entry.type, "at": entry.at.isoformat(), "detail": entry.detail}
            for entry in order.timeline.all()
        ],
    }


def order_with_token(order: Order, context: dict) -> dict:
    data = order_representation(order, context.get("request"))
    return {**data, "access_token": order_access_token(order.id)}
