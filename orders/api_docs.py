"""OpenAPI descriptions of the orders API (drf-spectacular). The order representation is built
by `OrderSerializer.to_representation`; these serializers only describe it."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from chargeflow.openapi import BODY, COMMON, IDEMPOTENCY_KEY, ORDER_TOKEN, URL_ERRORS, error
from orders.serializers import ProductSerializer


class OrderItemOut(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    line_total = serializers.DecimalField(max_digits=12, decimal_places=2)


class TotalsOut(serializers.Serializer):
    subtotal = serializers.DecimalField(max_digits=12, decimal_places=2)
    shipping = serializers.DecimalField(max_digits=12, decimal_places=2)
    tax = serializers.DecimalField(max_digits=12, decimal_places=2)
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()


class InvoiceOut(serializers.Serializer):
    number = serializers.CharField()
    pdf_url = serializers.CharField(help_text="A path on this host (or an absolute URL).")


class CreditNoteOut(serializers.Serializer):
    number = serializers.CharField()
    amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="The positive amount credited."
    )
    pdf_url = serializers.CharField()


class PaymentOut(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[
            "pending",
            "succeeded",
            "failed",
            "action_required",
            "refunded",
            "partially_refunded",
        ]
    )


class ShipmentOut(serializers.Serializer):
    carrier = serializers.CharField(allow_null=True)
    tracking_number = serializers.CharField(allow_null=True)
    status = serializers.CharField()


class TimelineEntryOut(serializers.Serializer):
    type = serializers.CharField(help_text="`status_changed`, `email_sent`, ...")
    at = serializers.DateTimeField()
    detail = serializers.JSONField(
        help_text="`{from, to}` for a status change, `{kind}` for an email."
    )


class OrderOut(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.CharField()
    status = serializers.CharField(
        help_text="placed, invoiced, action_required, paid, shipped, delivered, cancelled, refunded"
    )
    email = serializers.EmailField()
    items = OrderItemOut(many=True)
    totals = TotalsOut(allow_null=True)
    invoice = InvoiceOut(allow_null=True)
    credit_notes = CreditNoteOut(many=True)
    payment = PaymentOut(allow_null=True)
    shipment = ShipmentOut(allow_null=True)
    timeline = TimelineEntryOut(many=True)


class OrderCreatedOut(OrderOut):
    access_token = serializers.CharField(
        help_text="Send it as `X-Order-Token` to read the order as a guest (this response only)."
    )


ORDER_EXAMPLE = {
    "email": "ada@example.com",
    "shipping_address": {
        "name": "Ada Lovelace",
        "line1": "12 Analytical Row",
        "line2": "",
        "city": "London",
        "postal_code": "N1 9GU",
        "country": "GB",
    },
    "items": [{"sku": "LAPTOP-14", "quantity": 1}],
    "payment_method": "pm_card_visa",
}

CREATE = {
    "summary": "Place an order",
    "parameters": [IDEMPOTENCY_KEY],
    "examples": [OpenApiExample("A guest order", value=ORDER_EXAMPLE, request_only=True)],
    "responses": {
        201: OpenApiResponse(
            OrderCreatedOut,
            description="The order, with its final totals and its access token. A replay of "
            "the same Idempotency-Key and body answers the same order with the header "
            "`Idempotent-Replayed: true`.",
        ),
        **BODY,
        402: error(
            "With `payment_intent`: the intent is not authorized for exactly this order's total "
            "(codes payment_not_authorized, amount_mismatch, quote_mismatch, "
            "unknown_payment_intent)."
        ),
        409: error(
            "More than the available stock, the Idempotency-Key was used with another body, or "
            "the payment_intent already paid for another order (payment_intent_used)."
        ),
        **COMMON,
    },
}

DETAIL = {
    "summary": "Read an order",
    "parameters": [ORDER_TOKEN],
    "responses": {
        200: OrderOut,
        **URL_ERRORS,
        404: error("No such order, or not yours (no or a wrong X-Order-Token)."),
        **COMMON,
    },
}

PRODUCTS = {
    "summary": "The catalog",
    "parameters": [
        OpenApiParameter("search", str, description="Part of the product name."),
    ],
    "responses": {
        200: ProductSerializer(many=True),
        **URL_ERRORS,
        404: error("No such page."),
        **COMMON,
    },
}


class PaymentIntentOut(serializers.Serializer):
    payment_intent = serializers.CharField(help_text="The Stripe PaymentIntent id (pi_…).")
    client_secret = serializers.CharField(
        help_text="Confirm the intent with it (Stripe.js confirmCardPayment, 3-D Secure included)."
    )
    amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="The exact total the card is authorized for."
    )
    currency = serializers.CharField()
    totals = TotalsOut()
    expires_at = serializers.DateTimeField(
        help_text="Until then the stock is held; place the order before it."
    )


PAYMENT_INTENT_CREATE = {
    "summary": "Quote an order and open its card authorization",
    "description": (
        "The exact totals of `items` shipped to `country`, the stock held for "
        "CHECKOUT_HOLD_MINUTES, and a PaymentIntent for the total with manual capture. Confirm "
        "it with Stripe, then POST /api/v1/orders/ with its id as `payment_intent`: the order is "
        "placed only if it is authorized for exactly that total, and captured after the invoice."
    ),
    "parameters": [IDEMPOTENCY_KEY],
    "examples": [
        OpenApiExample(
            "Two mice to France",
            value={"items": [{"sku": "MOUSE-01", "quantity": 2}], "country": "FR"},
            request_only=True,
        )
    ],
    "responses": {
        201: PaymentIntentOut,
        **BODY,
        409: error("More than the available stock (out_of_stock)."),
        **COMMON,
    },
}
