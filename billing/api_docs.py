"""OpenAPI description of billing's staff API (drf-spectacular): `refund_representation`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from chargeflow.openapi import BODY, COMMON, error


class RefundPaymentOut(serializers.Serializer):
    status = serializers.CharField()
    refunded = serializers.DecimalField(max_digits=12, decimal_places=2)
    refundable = serializers.DecimalField(max_digits=12, decimal_places=2)


class RefundOut(serializers.Serializer):
    id = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    reason = serializers.CharField()
    status = serializers.CharField()
    stripe_refund_id = serializers.CharField(allow_null=True, allow_blank=True)
    payment = RefundPaymentOut()


REFUND = {
    "summary": "Refund an order (staff)",
    "parameters": [
        OpenApiParameter(
            "Idempotency-Key",
            str,
            OpenApiParameter.HEADER,
            required=True,
            description="Required: the same key again answers the same refund (200); with "
            "another amount 409. At most 80 characters.",
        )
    ],
    "responses": {
        201: RefundOut,
        200: RefundOut,
        **BODY,
        404: error("No payment for this order."),
        409: error("The same Idempotency-Key with another amount."),
        **COMMON,
    },
}
