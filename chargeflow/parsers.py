"""The API's JSON parser, with limits: a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE is not
read (413), and a document nested deeper than API_JSON_MAX_DEPTH is refused (400).

DRF's own JSONParser reads the whole stream (Django's upload limit applies only to
`request.body` and form parsing) and lets the decoder's RecursionError through (a 500)."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


def _reject_constant(value: str):
    raise ValueError(f"{value} is not valid JSON")


def json_depth_exceeds(document, limit: int) -> bool:
    """True when containers nest deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def body_limit() -> int | None:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def read_limited(stream, request_meta) -> bytes:
    """The body, or PayloadTooLarge when it is (or announces to be) over the limit."""
    limit = body_limit()
    if limit is None:
        return stream.read()
    try:
        announced = int(request_meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        announced = 0
    if announced > limit:
        raise PayloadTooLarge(f"Request body too large (over {limit} bytes).")
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"Request body too large (over {limit} bytes).")
    return raw


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        request = parser_context.get("request")
        meta = request.META if request is not None else {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = read_limited(stream, meta) if stream is not None else b""
        try:
            document = json.loads(raw.decode(encoding), parse_constant=_reject_constant)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if json_depth_exceeds(document, settings.API_JSON_MAX_DEPTH):
            raise ParseError(
                f"JSON parse error - nested deeper than {settings.API_JSON_MAX_DEPTH} levels."
            )
        return document
