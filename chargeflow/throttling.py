"""Rate limits (docs/security.md), counted in the cache (Redis in production).

Each limited action has a rate per client (the user when signed in, else the IP address) in
settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], e.g. "checkout": "10/min". Over it: 429 with
Retry-After. The API uses the classes below as DRF throttles; the storefront's checkout POST asks
the same throttle through `storefront_throttled()`, so both count against one budget."""

from __future__ import annotations

import math

from django.http import HttpResponse, JsonResponse
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or with NUM_PROXIES trusted proxies in front, the
    address the outermost trusted proxy saw (same rule as DRF's throttles)."""
    xff = request.META.get("HTTP_X_FORWARDED_FOR")
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = api_settings.NUM_PROXIES
    if proxies is not None and xff:
        if proxies == 0:
            return remote
        addrs = [a.strip() for a in xff.split(",") if a.strip()]
        if addrs:
            return addrs[-min(proxies, len(addrs))]
    return remote


class SettingsRateThrottle(SimpleRateThrottle):
    """Reads its rate from the settings at each request (DRF binds them at import), so that
    overridden settings apply; a scope without a rate (or an empty one) is not limited."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) or None


class ClientRateThrottle(SettingsRateThrottle):
    """Per user when signed in, per IP address otherwise; `scope` names the rate."""

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ident = f"user:{user.pk}"
        else:
            ident = f"ip:{client_ip(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class IPRateThrottle(SettingsRateThrottle):
    """Per IP address, signed in or not: many accounts from one address share one budget."""

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": f"ip:{client_ip(request)}"}


class CheckoutThrottle(ClientRateThrottle):
    scope = "checkout"


class CheckoutIPThrottle(IPRateThrottle):
    scope = "checkout_ip"


class OrderLookupThrottle(ClientRateThrottle):
    scope = "order_lookup"


class QuoteThrottle(ClientRateThrottle):
    scope = "quote"


class FindOrderThrottle(IPRateThrottle):
    """ "Find my order" (email + order number -> the link by email): per address, tight, so it
    can neither guess order numbers nor fill someone's inbox."""

    scope = "find_order"


FIND_ORDER_THROTTLES = (FindOrderThrottle,)


CHECKOUT_THROTTLES = (CheckoutThrottle, CheckoutIPThrottle)


def too_many_requests(wait: float | None, *, as_json: bool = False) -> HttpResponse:
    """429 with Retry-After (whole seconds); JSON like the API's other errors when asked."""
    seconds = max(1, math.ceil(wait or 1))
    message = f"Too many requests: try again in {seconds} s."
    if as_json:
        response = JsonResponse({"detail": message, "code": "throttled"}, status=429)
    else:
        response = HttpResponse(f"{message}\n", status=429, content_type="text/plain")
    response["Retry-After"] = str(seconds)
    return response


def storefront_throttled(request, throttles=CHECKOUT_THROTTLES) -> HttpResponse | None:
    """A 429 response when one of `throttles` refuses this request, else None (and counted)."""
    waits = []
    for throttle_class in throttles:
        throttle = throttle_class()
        if not throttle.allow_request(request, None):
            waits.append(throttle.wait())
    if waits:
        return too_many_requests(max(w or 1 for w in waits))
    return None
