"""`next` values: only local paths of this site are followed.

`redirect("foo")` treats a bare word as a URL pattern name (NoReverseMatch: a 500), and
`url_has_allowed_host_and_scheme` alone accepts "foo" (a relative URL); so a target must also
start with a single "/"."""

from __future__ import annotations

from django.utils.http import url_has_allowed_host_and_scheme


def safe_local_path(request, target: str | None) -> str | None:
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return None
    return target


class SafeNextMixin:
    """For Django's auth views (RedirectURLMixin): a `next` that is not a local path is ignored
    (the default page instead)."""

    def get_redirect_url(self):
        return safe_local_path(self.request, super().get_redirect_url()) or ""
