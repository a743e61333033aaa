"""The base application error. The API maps it once (chargeflow.api.exception_handler)."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A failure the user can understand. `status` is the HTTP status the API answers with."""

    status = 400
    code = "invalid"

    def __init__(
        self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra or {}


class ConflictError(ApplicationError):
    status = 409
    code = "conflict"


class NotFoundError(ApplicationError):
    status = 404
    code = "not_found"
