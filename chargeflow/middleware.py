"""Request hygiene before any view runs.

A NUL byte cannot be stored by PostgreSQL ("A string literal cannot contain NUL characters"):
one that reaches a query is a 500. Forms refuse it (Django's ProhibitNullCharactersValidator),
but views also read the path, the query string and raw POST values; so a request carrying one
in any of those is answered 400 here, before a view can query with it."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from csp.middleware import CSPMiddleware as BaseCSPMiddleware
from django.conf import settings
from django.http import HttpResponseBadRequest, JsonResponse

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _has_nul(values) -> bool:
    return any("\x00" in value for value in values if isinstance(value, str))


def _refused(request):
    message = "NUL characters are not allowed."
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message, "code": "bad_request"}, status=400)
    return HttpResponseBadRequest(message)


class RejectNulBytesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or _has_nul(
            [key for key in request.GET]
            + [v for key in request.GET for v in request.GET.getlist(key)]
        ):
            return _refused(request)
        # The API parses JSON only (its fields refuse NUL); a form body there stays unread: 415.
        if (
            request.method == "POST"
            and request.content_type in FORM_TYPES
            and not request.path.startswith("/api/")
        ):
            post = request.POST
            if _has_nul(list(post) + [v for key in post for v in post.getlist(key)]):
                return _refused(request)
        return self.get_response(request)


def _origin(url: str) -> str | None:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def stripe_origins() -> tuple[list[str], list[str]]:
    """(script/connect origins, frame origins) of Stripe.js and the Stripe API, from the
    settings as they are now (the tests start the emulator on a free port)."""
    real = not settings.STRIPE_API_BASE
    origins = {_origin(settings.STRIPE_JS_URL), _origin(settings.STRIPE_API_BASE)}
    if real:
        origins |= {"https://js.stripe.com", "https://api.stripe.com"}
    origins.discard(None)
    frames = origins | ({"https://hooks.stripe.com"} if real else set())
    return sorted(origins), sorted(frames)


class CSPMiddleware(BaseCSPMiddleware):
    """django-csp's middleware, with Stripe's origins added to the policy of every response."""

    def get_policy_parts(self, request, response, report_only=False):
        parts = super().get_policy_parts(request, response, report_only)
        origins, frames = stripe_origins()
        stripe = {
            "script-src": origins,
            "connect-src": origins,
            "img-src": origins,
            "frame-src": frames,
            "form-action": frames,
        }
        update = dict(parts.update or {})
        for directive, values in stripe.items():
            update[directive] = [*update.get(directive, []), *values]
        return replace(parts, update=update)
