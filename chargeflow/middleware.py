"""Request hygiene before any view runs.

A NUL byte cannot be stored by PostgreSQL ("A string literal cannot contain NUL characters"):
one that reaches a query is a 500. Forms refuse it (Django's ProhibitNullCharactersValidator),
but views also read the path, the query string and raw POST values; so a request carrying one
in any of those is answered 400 here, before a view can query with it."""

from __future__ import annotations

from dataclasses import asdict, replace
from urllib.parse import urlsplit

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as BaseCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
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


# The policy of a response with no nonce and no per-view override depends on the settings only:
# built once (django-csp builds it again for every response: ~10% of an API checkout's CPU,
# issue 11), and again whenever a setting changes (tests).
_OVERRIDES = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt",
    "_csp_exempt_ro",
)
_built: dict[tuple, tuple[str, str]] = {}


def _clear_built(**_kwargs) -> None:
    _built.clear()


setting_changed.connect(_clear_built, dispatch_uid="chargeflow.middleware.csp")


class CSPMiddleware(BaseCSPMiddleware):
    """django-csp's middleware, with Stripe's origins added to the policy of every response.
    The same headers as django-csp's `process_response`; the common policy is built once."""

    def process_response(self, request, response):
        if (
            getattr(request, "_csp_nonce", None) is not None
            or response.status_code in (404, 500)  # django-csp's DEBUG exemption: its own way
            or any(hasattr(response, name) for name in _OVERRIDES)
        ):
            return super().process_response(request, response)
        # Keyed by what the policy is made of (tests also assign settings without the signal).
        key = (
            id(getattr(settings, "CONTENT_SECURITY_POLICY", None)),
            id(getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)),
            settings.STRIPE_JS_URL,
            settings.STRIPE_API_BASE,
        )
        if key not in _built:
            if len(_built) > 16:
                _built.clear()
            _built[key] = (
                build_policy(**asdict(self.get_policy_parts(request, response))),
                build_policy(
                    **asdict(self.get_policy_parts(request, response, report_only=True)),
                    report_only=True,
                ),
            )
        csp, csp_ro = _built[key]
        for header, value, setting in (
            (HEADER, csp, "CONTENT_SECURITY_POLICY"),
            (HEADER_REPORT_ONLY, csp_ro, "CONTENT_SECURITY_POLICY_REPORT_ONLY"),
        ):
            if not value or header in response:
                continue
            prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ()
            if not request.path_info.startswith(tuple(prefixes)):
                response[header] = value
        # As django-csp: a nonce asked for after the header is written is an error.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response

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
