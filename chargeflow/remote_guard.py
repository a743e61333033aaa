"""A guard that fails when a remote call starts while a database transaction is open.

The rule (DESIGN.md §3, docs/architecture.md): no transaction open and no row locked while the
shipping partner, the email provider, object storage or Stripe is being called. This module makes
the rule checkable: once `install()`ed, every outgoing HTTP request and every SMTP connection or
send first looks at the calling thread's database connections and raises
`RemoteCallInTransaction` if one of them is inside an atomic block.

What it hooks (everything we call out with ends in one of these):

- `http.client.HTTPConnection.putrequest`: the start of every HTTP request on a connection, new
  or reused from a pool. `requests` (shipping partner, Stripe's client), urllib3, botocore
  (S3 through django-storages, SES through anymail, SQS through kombu) and `urllib.request` all
  send through it (urllib3's `HTTPConnection.putrequest` calls it with `super()`). Hooking
  `connect` instead would miss requests on pooled keep-alive connections.
- `smtplib.SMTP.connect` and `smtplib.SMTP.sendmail` (Django's SMTP backend).

Atomic blocks that a test case opened around the test (pytest-django's `db` fixture: Django's
TestCase marks them `_from_testcase = True`) are not counted: only what the code under test opened.

Used by the root conftest.py for the whole test suite (an autouse fixture). A violation raises at
the call, and is also remembered, so that code which swallows the exception (a broad
`except Exception`) still fails the test at teardown.
"""

from __future__ import annotations

import contextlib
import http.client
import smtplib
import sys
import threading
from dataclasses import dataclass, field

from django.db import connections


class RemoteCallInTransaction(AssertionError):
    """A remote call started inside a database transaction."""


# Modules that still call out inside a transaction, each with the reason. A call made while one
# of them is on the stack is recorded in `Guard.exempted` instead of raising. Keep this short
# and temporary; every entry is a known breach of the rule, not a permission.
EXEMPT_CALLERS: dict[str, str] = {
    # The relay claims outbox rows FOR UPDATE SKIP LOCKED, sends them to the broker and marks
    # them published in one transaction (docs/architecture.md, "Why hold the row locks while
    # sending"). It locks only its own outbox rows, never business rows.
    "outbox.relay": "relay: claim, send, mark in one transaction (by design)",
}


@dataclass
class Guard:
    violations: list[str] = field(default_factory=list)
    exempted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    originals: dict[str, object] = field(default_factory=dict)
    allowed: threading.local = field(default_factory=threading.local)


_guard = Guard()


def open_atomic_blocks() -> list[str]:
    """Aliases of this thread's connections that are inside an atomic block opened by code (not
    by the test case around the test)."""
    found = []
    for conn in connections.all(initialized_only=True):
        blocks = [a for a in conn.atomic_blocks if not getattr(a, "_from_testcase", False)]
        if blocks:
            found.append(conn.alias)
    return found


def _exempt_caller() -> str | None:
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name in EXEMPT_CALLERS:
            return name
        frame = frame.f_back
    return None


def check(what: str) -> None:
    """Raise `RemoteCallInTransaction` if a transaction is open in this thread (see module doc)."""
    if getattr(_guard.allowed, "depth", 0):
        return
    aliases = open_atomic_blocks()
    if not aliases:
        return
    exempt = _exempt_caller()
    message = f"{what} started inside an open transaction (database {', '.join(aliases)})"
    with _guard.lock:
        if exempt:
            _guard.exempted.append(f"{message} [exempt: {exempt}]")
            return
        _guard.violations.append(message)
    raise RemoteCallInTransaction(
        f"{message}: commit first, call out with no transaction open, record the answer in a "
        "new transaction (docs/architecture.md, atomic phases)"
    )


@contextlib.contextmanager
def allowed():
    """Let remote calls inside a transaction through in this thread (tests that set up a
    situation on purpose, e.g. a test's own HTTP call to a component inside `atomic()`)."""
    _guard.allowed.depth = getattr(_guard.allowed, "depth", 0) + 1
    try:
        yield
    finally:
        _guard.allowed.depth -= 1


def _putrequest(self, method, url, *args, **kwargs):
    check(f"HTTP {method} {self.host}:{self.port}{url.split('?')[0]}")
    return _guard.originals["putrequest"](self, method, url, *args, **kwargs)


def _smtp_connect(self, host="localhost", port=0, *args, **kwargs):
    check(f"SMTP connect {host}:{port}")
    return _guard.originals["connect"](self, host, port, *args, **kwargs)


def _smtp_sendmail(self, from_addr, to_addrs, *args, **kwargs):
    check("SMTP sendmail")
    return _guard.originals["sendmail"](self, from_addr, to_addrs, *args, **kwargs)


def install() -> None:
    """Hook HTTP and SMTP (idempotent)."""
    if _guard.originals:
        return
    _guard.originals = {
        "putrequest": http.client.HTTPConnection.putrequest,
        "connect": smtplib.SMTP.connect,
        "sendmail": smtplib.SMTP.sendmail,
    }
    http.client.HTTPConnection.putrequest = _putrequest
    smtplib.SMTP.connect = _smtp_connect
    smtplib.SMTP.sendmail = _smtp_sendmail


def uninstall() -> None:
    if not _guard.originals:
        return
    http.client.HTTPConnection.putrequest = _guard.originals["putrequest"]
    smtplib.SMTP.connect = _guard.originals["connect"]
    smtplib.SMTP.sendmail = _guard.originals["sendmail"]
    _guard.originals = {}


def installed() -> bool:
    return bool(_guard.originals)


def take_violations() -> list[str]:
    """The violations recorded since the last call (and forget them)."""
    with _guard.lock:
        found, _guard.violations = _guard.violations, []
    return found


def exempted() -> dict[str, int]:
    """How many calls inside a transaction each exempt module made (see EXEMPT_CALLERS)."""
    counts: dict[str, int] = {}
    with _guard.lock:
        for entry in _guard.exempted:
            module = entry.rsplit("[exempt: ", 1)[-1].rstrip("]")
            counts[module] = counts.get(module, 0) + 1
    return counts
