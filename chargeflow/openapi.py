"""Shared pieces of the OpenAPI document (drf-spectacular): error bodies, the headers of the
contract (DESIGN.md §6) and the responses every endpoint can give. docs/security.md, docs/api.md.

Each API view declares its schema with `extend_schema`; `manage.py spectacular --validate
--fail-on-warn` (tests/test_openapi.py) fails on a view that does not."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """An error with a message (404, 409, 413, 415, 429, ...); `code` names the kind when the
    application raised it (e.g. `conflict`, `out_of_stock`, `throttled`)."""

    detail = serializers.CharField()
    code = serializers.CharField(required=False)


ValidationErrorSchema = inline_serializer(
    name="ValidationError",
    fields={
        "detail": serializers.CharField(required=False),
    },
)

IDEMPOTENCY_KEY = OpenApiParameter(
    name="Idempotency-Key",
    type=str,
    location=OpenApiParameter.HEADER,
    description=(
        "Makes the request safe to retry: the same key and body again answer the first result;"
        " the same key with another body is 409. At most 255 printable ASCII characters."
    ),
)

ORDER_TOKEN = OpenApiParameter(
    name="X-Order-Token",
    type=str,
    location=OpenApiParameter.HEADER,
    description=(
        "The order's `access_token` (from the create response) for guests; not needed by the"
        " signed-in owner or staff."
    ),
)


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


VALIDATION = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description=(
        "Invalid input: an object whose keys name the offending fields (lists of messages), or"
        " `detail` for a body that is not JSON, too deep or otherwise unreadable."
    ),
)
AUTH = {
    401: error("Credentials were sent and are wrong (Basic authentication)."),
    403: error("Not allowed (wrong credentials, or not staff where staff is required)."),
}
THROTTLED = error(
    "Too many requests (rate limit or login lockout): the `Retry-After` header says when to retry."
)
COMMON = {**AUTH, 429: THROTTLED}
# Requests refused before any view runs (chargeflow/middleware.py), on every operation.
URL_ERRORS = {400: error("A NUL character in the path or the query string.")}
BODY = {400: VALIDATION, 413: error("The request body is too large."), 415: error("Not JSON.")}
