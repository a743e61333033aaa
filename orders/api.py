"""The customer-facing REST API (DESIGN.md §6)."""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.exceptions import Throttled
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from chargeflow.errors import ApplicationError
from chargeflow.parsers import SafeJSONParser, json_depth_exceeds
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
    """POST /api/v1/orders/. A plainly valid anonymous JSON request is answered by
    `_plain_checkout` without DRF's request, negotiation and response machinery (the same
    status, headers and body: tests/test_api_lean.py); everything else by `post` below."""

    throttle_classes = CHECKOUT_THROTTLES

    @classmethod
    def as_view(cls, **initkwargs):
        drf_view = super().as_view(**initkwargs)
        headers = _lean_headers(cls)

        def view(request, *args, **kwargs):
            plain = None
            if headers is not None and getattr(settings, "API_CHECKOUT_LEAN", True):
                plain = _plain_request(request)
            if plain is None:
                return drf_view(request, *args, **kwargs)
            return _plain_checkout(request, *plain, headers=headers)

        # What Django and drf-spectacular read off DRF's view (csrf_exempt, the schema).
        view.__dict__.update(drf_view.__dict__)
        view.__name__, view.__doc__ = drf_view.__name__, drf_view.__doc__
        return view

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


# --- The lean checkout (issue 11) -------------------------------------------------------------
# DRF's view, request, negotiation and response cost about as much CPU per checkout as the
# checkout's own Python work. The common request (anonymous, a JSON body that is plainly valid,
# JSON accepted, no query string) needs none of what they decide: it is answered here, with
# DRF's throttles, the same service, and the same status, headers and body as `post` (compared
# byte for byte in tests/test_api_lean.py). Anything else, or any answer but a new order, goes
# through DRF: a request that is not plain before the throttles are counted goes to
# `OrderCreateView.post`; once they are counted, `_Answer` renders what was decided.

_JSON_ACCEPTS = frozenset(("*/*", "application/json"))
_JSON_TYPES = frozenset(("application/json", "application/json; charset=utf-8"))


def _lean_headers(view_class) -> tuple[tuple[str, str], ...] | None:
    """The headers DRF's finalize_response adds to this view's JSON answer (Vary, then
    Allow), or None when its JSON is not what `_plain_checkout` writes (another first
    renderer, or JSON settings changed): then every request goes through DRF."""
    view = view_class()
    if (
        not view.renderer_classes
        or view.renderer_classes[0] is not JSONRenderer
        or not (api_settings.COMPACT_JSON and api_settings.UNICODE_JSON)
        or not api_settings.STRICT_JSON
        or list(view.parser_classes) != [SafeJSONParser]
        # The user is Django's session user, or Basic authentication (an Authorization
        # header: DRF's path); another authentication class: DRF decides.
        or list(view.authentication_classes) != [SessionAuthentication, BasicAuthentication]
    ):
        return None
    headers = view.default_response_headers
    vary = headers.pop("Vary", None)
    return (*((("Vary", vary),) if vary else ()), *headers.items())


def _reject_constant(value: str):
    raise ValueError(value)


def _plain_request(request):
    """(data, body, key) when `OrderCreateView.post` would take the fast input path with no
    authenticated user and answer JSON; else None (and nothing is counted or written)."""
    meta = request.META
    if (
        request.method != "POST"
        or meta.get("QUERY_STRING")
        or meta.get("CONTENT_TYPE", "").lower() not in _JSON_TYPES
        or meta.get("HTTP_ACCEPT", "*/*") not in _JSON_ACCEPTS
        or "HTTP_AUTHORIZATION" in meta
        # DRF's test client authenticates this way (None when it does not).
        or getattr(request, "_force_auth_user", None) is not None
        or getattr(request, "_force_auth_token", None) is not None
    ):
        return None
    try:
        length = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if not 0 < length <= (limit if limit is not None else length):
        return None
    key = meta.get("HTTP_IDEMPOTENCY_KEY", "").strip() or None
    if key and (len(key) > 255 or not (key.isascii() and key.isprintable())):
        return None
    try:
        body = json.loads(request.body.decode(), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if json_depth_exceeds(body, settings.API_JSON_MAX_DEPTH):
        return None
    data = order_create_fast(body)
    if data is None or request.user.is_authenticated:  # as DRF's SessionAuthentication reads it
        return None
    return data, body, key


class _Answer(APIView):
    """Renders, as `OrderCreateView` would, an answer the lean checkout decided after counting
    the throttles (an error, a replay): DRF's exception handler, negotiation and headers."""

    throttle_classes = ()
    renderer_classes = OrderCreateView.renderer_classes

    def post(self, request, answer):
        if isinstance(answer, Exception):
            raise answer
        return answer


_answer = _Answer.as_view()


def _plain_checkout(request, data: dict, body, key: str | None, *, headers):
    """`OrderCreateView.post` for a plain request (`_plain_request`), throttles included."""
    waits = [
        throttle.wait()
        for throttle in (throttle_class() for throttle_class in CHECKOUT_THROTTLES)
        if not throttle.allow_request(request, None)
    ]
    if waits:
        known = [wait for wait in waits if wait is not None]
        return _answer(request, answer=Throttled(max(known, default=None)))
    try:
        order, created = order_checkout(
            email=data["email"],
            shipping_address=dict(data["shipping_address"]),
            items=[CartItem(sku=i["sku"], quantity=i["quantity"]) for i in data["items"]],
            payment_method=data["payment_method"],
            customer=None,
            idempotency_key=key,
            fingerprint=request_fingerprint(body),
        )
    except ApplicationError as exc:
        if exc.code != "unknown_sku":
            return _answer(request, answer=exc)
        errors = unknown_sku_errors(data["items"], exc.extra["skus"])
        return _answer(request, answer=Response(errors, status=status.HTTP_400_BAD_REQUEST))
    except Exception as exc:  # what DRF's handler makes of it (logged, a JSON 500)
        return _answer(request, answer=exc)
    if not created:
        order = selectors.order_detail_queryset().get(pk=order.pk)
        response = Response(order_with_token(order, {"request": request}), status=201)
        response["Idempotent-Replayed"] = "true"
        return _answer(request, answer=response)
    # DRF's JSONRenderer, as configured (compact, UTF-8, no NaN, U+2028/9 escaped).
    content = json.dumps(
        order_with_token(order, {"request": request}),
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    )
    content = content.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    response = HttpResponse(content.encode(), status=201, content_type="application/json")
    for header, value in headers:
        response[header] = value
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
