"""Context bound to every log line written while handling a request or an event.

`bound(order_id=…, event_id=…)` adds fields for the duration of a block (a request, an event
delivery); `ContextFilter` copies them onto each log record, so a formatter prints them on every
line whatever logger wrote it, including the domain apps' plain `logger.info(...)` calls.
`JsonFormatter` (production) writes one JSON object per line; `KeyValueFormatter` (local,
LOG_FORMAT=plain) writes readable text with the bound fields at the end."""

from __future__ import annotations

import contextlib
import logging
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# The fields every line carries when known (None otherwise).
FIELDS = (
    "order_id",
    "event_id",
    "event_type",
    "correlation_id",
    "subscriber",
    "request_id",
    "task",
)

_context: ContextVar[dict[str, str]] = ContextVar("log_context", default={})  # noqa: B039


def current() -> dict[str, str]:
    return dict(_context.get())


@contextlib.contextmanager
def bound(**values: Any):
    """Bind `values` (None values are skipped) to every log line written inside the block."""
    token = _context.set(
        {**_context.get(), **{k: str(v) for k, v in values.items() if v not in (None, "")}}
    )
    try:
        yield
    finally:
        _context.reset(token)


def enter(**values: Any):
    """`bound` in two calls (for signal pairs such as Celery's task_prerun/task_postrun)."""
    return _context.set(
        {**_context.get(), **{k: str(v) for k, v in values.items() if v not in (None, "")}}
    )


def leave(token) -> None:
    try:
        _context.reset(token)
    except ValueError:  # set in another context (should not happen): start clean instead
        _context.set({})


def bind(**values: Any) -> None:
    """Add `values` to the context already bound (by `bound`) for the rest of its block."""
    _context.set(
        {**_context.get(), **{k: str(v) for k, v in values.items() if v not in (None, "")}}
    )


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for field in FIELDS:
            if getattr(record, field, None) is None:
                setattr(record, field, context.get(field))
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: timestamp, level, logger, message, the bound fields."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault(
            "rename_fields", {"levelname": "level", "name": "logger", "asctime": "time"}
        )
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_record, record, message_dict):
        super().add_fields(log_record, record, message_dict)
        for field in FIELDS:
            log_record.setdefault(field, getattr(record, field, None))


class KeyValueFormatter(logging.Formatter):
    """Readable locally: `time LEVEL logger message [order_id=… subscriber=…]`."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = " ".join(
            f"{field}={value}"
            for field in FIELDS
            if (value := getattr(record, field, None)) is not None
        )
        return f"{line} [{pairs}]" if pairs else line


class RequestContextMiddleware:
    """Binds a request id and the correlation id (the client's X-Correlation-ID or X-Request-ID
    when it sends a sane one, else a new one, echoed in the response) to every line the request
    writes, and the order id when the URL names an order (`order_id` in the view's arguments)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        import uuid

        # META, not request.headers: that builds a dict of every header on first use.
        meta = request.META
        quoted = meta.get("HTTP_X_CORRELATION_ID") or meta.get("HTTP_X_REQUEST_ID")
        correlation = quoted if quoted and _sane(quoted) else str(uuid.uuid4())
        with bound(request_id=uuid.uuid4().hex[:16], correlation_id=correlation):
            response = self.get_response(request)
        response.headers.setdefault("X-Correlation-ID", correlation)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        if view_kwargs.get("order_id"):
            bind(order_id=view_kwargs["order_id"])


def _sane(value: str) -> bool:
    return len(value) <= 64 and all(c.isalnum() or c in "-_." for c in value)
