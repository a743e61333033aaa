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
from django.dispatch import receiver
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


# The policy of a response that carries no nonce and no per-view policy is the same for every
# such response: built once per process and per input (the Stripe origins it adds), again after
# a setting changes. django-csp builds it per response, deep-copying the whole policy twice: that
# was ~0.45 ms of CPU per request, the most expensive middleware here (issue 11).
_static_policies: dict[tuple, str] = {}
_PER_RESPONSE = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
)


@receiver(setting_changed)
def _policy_settings_changed(**kwargs) -> None:
    _static_policies.clear()


class CSPMiddleware(BaseCSPMiddleware):
    """django-csp's middleware, with Stripe's origins added to the policy of every response."""

    def process_response(self, request, response):
        nonce_used = getattr(request, "_csp_nonce", None) is not None
        if nonce_used or any(getattr(response, a, None) is not None for a in _PER_RESPONSE):
            return super().process_response(request, response)
        if response.status_code in (404, 500) and settings.DEBUG:
            return response  # django-csp leaves Django's debug pages alone
        for header, report_only, exempt, setting in (
            (HEADER, False, "_csp_exempt", "CONTENT_SECURITY_POLICY"),
            (HEADER_REPORT_ONLY, True, "_csp_exempt_ro", "CONTENT_SECURITY_POLICY_REPORT_ONLY"),
        ):
            key = (report_only, settings.STRIPE_JS_URL, settings.STRIPE_API_BASE)
            policy = _static_policies.get(key)
            if policy is None:
                parts = self.get_policy_parts(request, response, report_only)
                policy = _static_policies[key] = build_policy(
                    **asdict(parts), report_only=report_only
                )
            prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ()
            if (
                policy
                and header not in response
                and not getattr(response, exempt, False)
                and not request.path_info.startswith(tuple(prefixes))
            ):
                response[header] = policy
        # As django-csp does: a nonce asked for after the header was written is an error.
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
