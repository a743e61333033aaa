"""Request hygiene before any view runs.

A NUL byte cannot be stored by PostgreSQL ("A string literal cannot contain NUL characters"):
one that reaches a query is a 500. Forms refuse it (Django's ProhibitNullCharactersValidator),
but views also read the path, the query string and raw POST values; so a request carrying one
in any of those is answered 400 here, before a view can query with it."""

from __future__ import annotations

from django.http import HttpResponseBadRequest

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _has_nul(values) -> bool:
    return any("\x00" in value for value in values if isinstance(value, str))


class RejectNulBytesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or _has_nul(
            [key for key in request.GET]
            + [v for key in request.GET for v in request.GET.getlist(key)]
        ):
            return HttpResponseBadRequest("NUL characters are not allowed.")
        # The API parses JSON only (its fields refuse NUL); a form body there stays unread: 415.
        if (
            request.method == "POST"
            and request.content_type in FORM_TYPES
            and not request.path.startswith("/api/")
        ):
            post = request.POST
            if _has_nul(list(post) + [v for key in post for v in post.getlist(key)]):
                return HttpResponseBadRequest("NUL characters are not allowed.")
        return self.get_response(request)
