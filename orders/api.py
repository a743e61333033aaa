"""The customer-facing REST API (DESIGN.md §6)."""

from __future__ import annotations

import uuid

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from chargeflow.errors import ApplicationError
from chargeflow.throttling import CHECKOUT_THROTTLES, OrderLookupThrottle
from orders import api_docs, selectors
from orders.checkout import checkout_place_for_api, checkout_quote
from orders.serializers import (
    OrderCreateSerializer,
    OrderSerializer,
    PaymentIntentCreateSerializer,
    ProductSerializer,
    order_create_fast,
    order_with_token,
    unknown_sku_errors,
)
from orders.services import CartItem, order_checkout, request_fingerprint
from orders.tokens import session_allows

TOKEN_HEADER = "HTTP_X_ORDER_TOKEN"


def request_token(request) -> str | None:
    """The access token, from the X-Order-Token header only: never in a URL (access logs)."""
    return request.META.get(TOKEN_HEADER)


def _document_order(request, order_id):
    """The order whose document is asked for: owner, staff, X-Order-Token, or a browser session
    holding a grant for it (the order page's PDF links)."""
    order = selectors.order_for_viewer(
        order_id=order_id, user=request.user, token=request_token(request)
    )
    if order is None and session_allows(request.session, order_id):
        order = selectors.order_detail_queryset().filter(pk=order_id).first()
    return order


@extend_schema_view(get=extend_schema(**api_docs.PRODUCTS))
class ProductListView(generics.ListAPIView):
    serializer_class = ProductSerializer

    def get_queryset(self):
        return selectors.product_list(search=self.request.query_params.get("search", ""))


class OrderCreateView(APIView):
    throttle_classes = CHECKOUT_THROTTLES

    @extend_schema(request=OrderCreateSerializer, **api_docs.CREATE)
    def post(self, request):
        data = order_create_fast(request.data)
        if data is None:  # anything but a plainly valid body: the serializer checks and words it
            serializer = OrderCreateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        key = request.headers.get("Idempotency-Key", "").strip() or None
        if key and (len(key) > 255 or not (key.isascii() and key.isprintable())):
            return Response(
                {"Idempotency-Key": ["At most 255 printable ASCII characters."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        place = dict(
            email=data["email"],
            shipping_address=dict(data["shipping_address"]),
            items=[CartItem(sku=i["sku"], quantity=i["quantity"]) for i in data["items"]],
            customer=request.user if request.user.is_authenticated else None,
            idempotency_key=key,
            fingerprint=request_fingerprint(request.data),
        )
        try:
            if data.get("payment_intent"):
                order, created = checkout_place_for_api(
                    payment_intent=data["payment_intent"], **place
                )
                order = selectors.order_detail_queryset().get(pk=order.pk)
            else:
                order, created = order_checkout(payment_method=data["payment_method"], **place)
        except ApplicationError as exc:
            if exc.code != "unknown_sku":
                raise
            return Response(
                unknown_sku_errors(data["items"], exc.extra["skus"]),
                status=status.HTTP_400_BAD_REQUEST,
            )
        if not created:  # a new order comes back as written, with its lines and timeline
            order = selectors.order_detail_queryset().get(pk=order.pk)
        response = Response(order_with_token(order, {"request": request}), status=201)
        if not created:
            response["Idempotent-Replayed"] = "true"
        return response


class PaymentIntentCreateView(APIView):
    """A quote and an authorization to confirm: the exact totals of `items` shipped to
    `country`, the stock held for CHECKOUT_HOLD_MINUTES, and a PaymentIntent for the total (manual
    capture). Confirm it with Stripe (3-D Secure included), then POST /api/v1/orders/ with its
    id as `payment_intent`. The same Idempotency-Key and body again: the same quote and intent."""

    throttle_classes = CHECKOUT_THROTTLES

    @extend_schema(request=PaymentIntentCreateSerializer, **api_docs.PAYMENT_INTENT_CREATE)
    def post(self, request):
        serializer = PaymentIntentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key = request.headers.get("Idempotency-Key", "").strip()
        if key and (len(key) > 255 or not (key.isascii() and key.isprintable())):
            return Response(
                {"Idempotency-Key": ["At most 255 printable ASCII characters."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            hold = checkout_quote(
                token=f"api:{key or uuid.uuid4()}",
                items=[CartItem(sku=i["sku"], quantity=i["quantity"]) for i in data["items"]],
                country=data["country"],
            )
        except ApplicationError as exc:
            if exc.code != "unknown_sku":
                raise
            return Response(
                unknown_sku_errors(data["items"], exc.extra["skus"]),
                status=status.HTTP_400_BAD_REQUEST,
            )
        checkout = hold.checkout
        totals = selectors.checkout_totals(checkout=checkout)
        return Response(
            {
                "payment_intent": hold.authorization.payment_intent,
                "client_secret": hold.authorization.client_secret,
                "amount": str(checkout.total),
                "currency": checkout.currency,
                "totals": totals,
                "expires_at": checkout.expires_at.isoformat(),
            },
            status=status.HTTP_201_CREATED,
        )


class OrderDetailView(APIView):
    throttle_classes = (OrderLookupThrottle,)

    @extend_schema(**api_docs.DETAIL)
    def get(self, request, order_id):
        order = selectors.order_for_viewer(
            order_id=order_id, user=request.user, token=request_token(request)
        )
        if order is None:
            raise Http404
        return Response(OrderSerializer(order, context={"request": request}).data)


def _document_response(path: str, filename: str) -> FileResponse:
    if not path or not default_storage.exists(path):
        raise Http404
    return FileResponse(
        default_storage.open(path, "rb"), content_type="application/pdf", filename=filename
    )


# Documents are plain Django views (no API content negotiation): browsers and clients alike.
def invoice_pdf(request, order_id):
    order = _document_order(request, order_id)
    if order is None or not order.invoice_number:
        raise Http404
    return _document_response(order.invoice_pdf_path, f"invoice-{order.invoice_number}.pdf")


def credit_note_pdf(request, order_id, number):
    order = _document_order(request, order_id)
    note = order.credit_notes.filter(number=number).first() if order else None
    if note is None:
        raise Http404
    return _document_response(note.pdf_path, f"credit-note-{note.number}.pdf")
