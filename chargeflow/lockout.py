"""Login lockout: after LOGIN_LOCKOUT_FAILURES failed logins for one username from one IP address
within LOGIN_LOCKOUT_SECONDS, that username is locked for that address for LOGIN_LOCKOUT_SECONDS
(429 with Retry-After), even with the right password. Covers every login that goes through
`django.contrib.auth.authenticate` with a request: the storefront and admin login forms and the
API's Basic authentication. Counted in the cache (Redis in production), so it holds across
processes; a successful login clears the count.

Keyed on username + IP (not username alone), so an attacker cannot lock a customer out from
elsewhere; guesses across many usernames from one address are slowed by the API throttles."""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied

from chargeflow.throttling import client_ip, too_many_requests

logger = logging.getLogger(__name__)

LOCKED_ATTR = "_chargeflow_login_locked_until"


def _key(kind: str, request, username: str | None) -> str:
    """username None: the key of the address itself (every username tried from it)."""
    ident = (
        client_ip(request)
        if username is None
        else f"{username.strip().lower()}|{client_ip(request)}"
    )
    return f"login-lockout:{kind}:{hashlib.sha256(ident.encode()).hexdigest()}"


def _http_request(request):
    """DRF passes its Request wrapper; the middleware sees the Django request inside it."""
    return getattr(request, "_request", request)


def locked_until(request, username: str) -> float | None:
    now = time.time()
    untils = [
        cache.get(_key("locked", request, username)),
        cache.get(_key("locked", request, None)),
    ]
    until = max((u for u in untils if u and u > now), default=None)
    return until


def _count(key: str, window: int) -> int:
    cache.add(key, 0, timeout=window)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        return 1


def login_failed(request, username: str) -> None:
    window = settings.LOGIN_LOCKOUT_SECONDS
    limits = (
        (username, settings.LOGIN_LOCKOUT_FAILURES),  # this username from this address
        (None, settings.LOGIN_LOCKOUT_IP_FAILURES),  # any username from this address
    )
    for who, limit in limits:
        if not limit:
            continue
        failures = _count(_key("failures", request, who), window)
        if failures >= limit:
            cache.set(_key("locked", request, who), time.time() + window, timeout=window)
            cache.delete(_key("failures", request, who))
            logger.warning(
                "login locked for %s s after %s failures from %s (%s)",
                window,
                failures,
                client_ip(request),
                "one username" if who is not None else "any username",
            )


def login_succeeded(request, username: str) -> None:
    cache.delete(_key("failures", request, username))


class LockoutModelBackend(ModelBackend):
    """ModelBackend that refuses a locked username+IP and counts failures."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None or not settings.LOGIN_LOCKOUT_FAILURES:
            return super().authenticate(request, username=username, password=password, **kwargs)
        if username is None:
            from django.contrib.auth import get_user_model

            username = kwargs.get(get_user_model().USERNAME_FIELD)
        until = locked_until(request, username)
        if until:
            setattr(_http_request(request), LOCKED_ATTR, until)
            raise PermissionDenied("login locked")  # authenticate() stops and returns None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_failed(request, username)
            until = locked_until(request, username)
            if until:
                setattr(_http_request(request), LOCKED_ATTR, until)
        else:
            login_succeeded(request, username)
        return user


class LoginLockoutMiddleware:
    """Turns the answer to a locked login attempt (the form's error page, the API's 401/403)
    into 429 with Retry-After."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        until = getattr(request, LOCKED_ATTR, None)
        if until:
            return too_many_requests(
                math.ceil(until - time.time()), as_json=request.path.startswith("/api/")
            )
        return response
