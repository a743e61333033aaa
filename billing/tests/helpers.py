"""Building blocks for billing tests: event payloads, signed webhooks, Stripe look-ups."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from decimal import Decimal

from django.conf import settings

from billing import services
from billing.stripe_client import stripe_client
from outbox.models import OutboxEvent

ITEMS = [
    {"sku": "LAPTOP-14", "name": "Laptop", "quantity": 1, "unit_price": "999.99",
     "line_total": "999.99"},
    {"sku": "MOUSE-01", "name": "Mouse", "quantity": 2, "unit_price": "29.99",
     "line_total": "59.98"},
]  # fmt: skip
TOTALS = {
    "subtotal": "1059.97",
    "shipping": "0.00",
    "tax_rate": "0.2000",
    "tax": "211.99",
    "total": "1271.96",
}


def prepare(
    *,
    payment_method: str = "pm_card_visa",
    email: str = "ada@example.com",
    totals: dict | None = TOTALS,
) -> str:
    """order.placed as billing sees it; `totals=None`: an event from before orders fixed them."""
    order_id = str(uuid.uuid4())
    services.payment_prepare(
        order_id=order_id,
        order_number=f"CF-{order_id[:6]}",
        email=email,
        payment_method=payment_method,
        currency="EUR",
        items=ITEMS,
        totals=totals,
        order_url=f"/orders/{order_id}/",
    )
    return order_id


def charge(order_id: str, totals: dict | None = None):
    return services.payment_charge(
        order_id=order_id, invoice_number="2026-000001", totals=totals or TOTALS, currency="EUR"
    )


def invoice_issued_envelope(order_id: str, *, event_id: str | None = None) -> dict:
    return {
        "id": event_id or str(uuid.uuid4()),
        "type": "invoice.issued",
        "version": 1,
        "occurred_at": "2026-01-01T00:00:00+00:00",
        "aggregate_id": order_id,
        "correlation_id": str(uuid.uuid4()),
        "data": {"number": "2026-000001", "currency": "EUR", "totals": TOTALS},
    }


def intents_for(order_id: str) -> list:
    page = stripe_client().v1.payment_intents.list(params={"limit": 100})
    return [i for i in page.auto_paging_iter() if i.metadata.get("order_id") == order_id]


def events(kind: str, order_id: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(type=kind, aggregate_id=order_id).order_by("id"))


def card_payment_method(number: str) -> str:
    """A PaymentMethod for a test card number (localstripe accepts raw numbers; Stripe.js would
    make this in the browser)."""
    return (
        stripe_client()
        .v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
            }
        )
        .id
    )


def signed_webhook(event: dict, secret: str | None = None) -> tuple[str, str]:
    body = json.dumps(event)
    timestamp = int(time.time())
    signature = hmac.new(
        (secret or settings.STRIPE_WEBHOOK_SECRET).encode(),
        f"{timestamp}.{body}".encode(),
        hashlib.sha256,
    ).hexdigest()
    return body, f"t={timestamp},v1={signature}"


def intent_event(intent, event_type: str, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": event_type,
        "data": {"object": dict(intent)},
    }


def minor(amount: str) -> int:
    return int(Decimal(amount) * 100)
