"""HTTP client for the shipping partner (the simulator locally).

Connect and read timeouts on every call; retries with exponential backoff and jitter on
connection errors, timeouts and 5xx (POST included: each create carries an Idempotency-Key, so
the partner answers a retried create with the shipment it already made). A 4xx is permanent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


class PartnerError(Exception):
    def __init__(self, message: str, *, permanent: bool, code: str = ""):
        super().__init__(message)
        self.permanent = permanent
        self.code = code


@dataclass(frozen=True)
class PartnerShipment:
    id: str
    carrier: str
    tracking_number: str
    status: str


RETRY = Retry(
    total=5,
    connect=5,
    read=5,
    status=5,
    other=3,
    status_forcelist=(500, 502, 503, 504),
    allowed_methods=None,  # POST too: creates are idempotent by key
    backoff_factor=0.2,
    backoff_jitter=0.2,
    backoff_max=5,
    raise_on_status=False,
    respect_retry_after_header=True,
)


@lru_cache(maxsize=1)
def partner_session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=RETRY))
    session.mount("https://", HTTPAdapter(max_retries=RETRY))
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
        raise PartnerError(f"partner unreachable after retries: {exc}", permanent=False) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 500:
        raise PartnerError(
            f"partner answered {response.status_code} after retries",
            permanent=False,
            code="server_error",
        )
    if response.status_code >= 400:
        error = body.get("error") or {}
        raise PartnerError(
            error.get("message") or f"partner refused the request ({response.status_code})",
            permanent=True,
            code=error.get("code", str(response.status_code)),
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
