"""HTTP client for the shipping partner (the simulator locally).

Connect and read timeouts on every call; retries with exponential backoff and jitter on
connection errors, timeouts, dropped connections, 429 and 5xx (POST included: each create carries
an Idempotency-Key, so the partner answers a retried create with the shipment it already made).
A 4xx about the request (400, 409, 422 `undeliverable`) is permanent; 401/403 mean our own
credentials are wrong and are never blamed on the order. See docs/shipping.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

RETRYABLE_STATUSES = (429, 500, 502, 503, 504)
# Our side is wrong (API key, account), not the order: never a reason to refund the customer.
CONFIGURATION_STATUSES = (401, 403)


class PartnerError(Exception):
    """A partner call that did not succeed.

    `permanent`: the partner refused this request for good (e.g. 422 `undeliverable`); retrying
    cannot help. Otherwise the failure is transient (retries exhausted on timeouts, dropped
    connections, 5xx, 429) or `misconfigured` (401/403: our API key or account).
    """

    def __init__(
        self, message: str, *, permanent: bool, code: str = "", misconfigured: bool = False
    ):
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.misconfigured = misconfigured


@dataclass(frozen=True)
class PartnerShipment:
    id: str
    carrier: str
    tracking_number: str
    status: str


def partner_retry() -> Retry:
    """urllib3's retry policy for partner calls, from settings.

    Backoff between retries is `factor * 2**(n-1)` seconds (the first retry is immediate),
    capped at SHIPPING_PARTNER_BACKOFF_MAX, plus up to `factor` seconds of random jitter; a
    Retry-After header is respected.
    """
    retries = settings.SHIPPING_PARTNER_RETRIES
    return Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=min(retries, 3),
        status_forcelist=RETRYABLE_STATUSES,
        allowed_methods=None,  # POST too: creates are idempotent by key
        backoff_factor=settings.SHIPPING_PARTNER_BACKOFF_FACTOR,
        backoff_jitter=settings.SHIPPING_PARTNER_BACKOFF_FACTOR,
        backoff_max=settings.SHIPPING_PARTNER_BACKOFF_MAX,
        raise_on_status=False,
        respect_retry_after_header=True,
    )


@lru_cache(maxsize=1)
def partner_session() -> requests.Session:
    """One pooled session per process (after changing settings: `partner_session.cache_clear()`)."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=partner_retry())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(
        {
            "Authorization": f"Bearer {settings.SHIPPING_PARTNER_API_KEY}",
            "User-Agent": "ChargeFlow/1.0",
        }
    )
    return session


def _timeout() -> tuple[float, float]:
    return (settings.SHIPPING_PARTNER_CONNECT_TIMEOUT, settings.SHIPPING_PARTNER_READ_TIMEOUT)


def _call(method: str, path: str, **kwargs) -> dict[str, Any]:
    url = f"{settings.SHIPPING_PARTNER_URL}{path}"
    try:
        response = partner_session().request(method, url, timeout=_timeout(), **kwargs)
    except requests.RequestException as exc:
        raise PartnerError(
            f"partner unreachable after retries: {type(exc).__name__}: {exc}",
            permanent=False,
            code="unreachable",
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = (body.get("error") if isinstance(body, dict) else None) or {}
    status = response.status_code
    if status in RETRYABLE_STATUSES:
        raise PartnerError(
            f"partner answered {status} after retries", permanent=False, code="server_error"
        )
    if status in CONFIGURATION_STATUSES:
        raise PartnerError(
            f"partner refused our credentials ({status}): "
            f"{error.get('message') or 'check SHIPPING_PARTNER_API_KEY'}",
            permanent=False,
            misconfigured=True,
            code=error.get("code") or "unauthorized",
        )
    if status >= 500:  # 501, 505 ...: not retried at once, not the order's fault either
        raise PartnerError(f"partner answered {status}", permanent=False, code="server_error")
    if status >= 400:
        raise PartnerError(
            error.get("message") or f"partner refused the request ({status})",
            permanent=True,
            code=error.get("code") or str(status),
        )
    return body


def _shipment(body: dict[str, Any]) -> PartnerShipment:
    return PartnerShipment(
        id=body["id"],
        carrier=body.get("carrier", ""),
        tracking_number=body.get("tracking_number", ""),
        status=body.get("status", "created"),
    )


def create_shipment(
    *, reference: str, recipient: dict[str, str], idempotency_key: str
) -> PartnerShipment:
    body = _call(
        "POST",
        "/v1/shipments",
        json={"reference": reference, "recipient": recipient},
        headers={"Idempotency-Key": idempotency_key},
    )
    return _shipment(body)


def get_shipment(shipment_id: str) -> PartnerShipment:
    return _shipment(_call("GET", f"/v1/shipments/{shipment_id}"))
