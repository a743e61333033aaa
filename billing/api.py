"""Staff refunds through the API: POST /api/v1/orders/{order_id}/refunds/."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import api_docs, services
from billing.models import Refund
from chargeflow.money import from_minor


class RefundRequestSerializer(serializers.Serializer):
    amount = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    reason = serializers.CharField(max_length=255)


def refund_representation(refund: Refund) -> dict:
    payment = refund.payment
    return {
        "id": refund.pk,
        "amount": str(from_minor(refund.amount_minor)),
        "currency": payment.currency,
        "reason": refund.reason,
        "status": refund.status,
        "stripe_refund_id": refund.stripe_refund_id,
        "payment": {
            "status": payment.status,
            "refunded": str(from_minor(payment.refunded_minor)),
            "refundable": str(from_minor(payment.refundable_minor)),
        },
    }


class OrderRefundView(APIView):
    """Staff only. `Idempotency-Key` is required: the same key again returns the same refund
    (200), with another amount 409; an over-refund is 400 with code `over_refund`."""

    permission_classes = (IsAdminUser,)

    @extend_schema(request=RefundRequestSerializer, **api_docs.REFUND)
    def post(self, request, order_id):
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key or len(key) > 80:
            return Response(
                {"Idempotency-Key": ["Required, at most 80 characters."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        body = RefundRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        refund, created = services.refund_create(
            order_id=str(order_id),
            source=f"api:{key}",
            reason=body.validated_data["reason"],
            amount=body.validated_data.get("amount"),
        )
        return Response(
            refund_representation(refund),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
