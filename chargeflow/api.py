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


def _wants_json(request) -> bool:
    return request.path.startswith("/api/")


def json_error(message: str, status_code: int, code: str):
    from django.http import JsonResponse

    return JsonResponse({"detail": message, "code": code}, status=status_code)


def page_not_found(request, exception=None):
    """handler404: JSON under /api/ (a path the API's routes do not match), HTML elsewhere."""
    if _wants_json(request):
        return json_error("Not found.", 404, "not_found")
    from django.views.defaults import page_not_found as html_404

    return html_404(request, exception)


def bad_request(request, exception=None):
    """handler400: JSON under /api/ (e.g. a request Django itself refuses), HTML elsewhere."""
    if _wants_json(request):
        return json_error("Bad request.", 400, "bad_request")
    from django.views.defaults import bad_request as html_400

    return html_400(request, exception)


def server_error(request):
    """handler500: JSON under /api/ like the API's own error handler, HTML elsewhere."""
    if _wants_json(request):
        return json_error("Internal error; it has been logged.", 500, "internal_error")
    # The shop's own page (templates/500.html, in the shop's layout), rendered with as little
    # as possible (no context processors: something may be broken); plain text if even that
    # fails.
    from django.conf import settings
    from django.http import HttpResponseServerError
    from django.template.loader import render_to_string

    try:
        html = render_to_string("500.html", {"SHOP_NAME": settings.SHOP_NAME})
    except Exception:
        logger.exception("the 500 page could not be rendered")
        return HttpResponseServerError("Server error. Please try again later.\n", "text/plain")
    return HttpResponseServerError(html)
