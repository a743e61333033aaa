"""API error mapping: every error is JSON with a `detail`, and field errors name the fields."""

from __future__ import annotations

import logging

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from chargeflow.errors import ApplicationError

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status)
    response = drf_exception_handler(exc, context)
    if response is None:
        view = context.get("view").__class__.__name__ if context.get("view") else "?"
        logger.exception("unhandled API error in %s", view)
        return Response(
            {"detail": "Internal error; it has been logged.", "code": "internal_error"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    return response
